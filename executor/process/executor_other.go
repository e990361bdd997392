//go:build !unix

package process

import (
	"context"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// Executor runs tasks as OS processes on Unix; here New makes none, and its
// methods exist so that code holding an *Executor builds on every system.
type Executor struct{}

var (
	_ executor.Executor   = (*Executor)(nil)
	_ executor.TaskLister = (*Executor)(nil)
)

// New returns ErrNotSupported: this system is not Unix.
func New(cfg Config) (*Executor, error) { return nil, ErrNotSupported }

// Close returns ErrNotSupported.
func (e *Executor) Close() error { return ErrNotSupported }

// Describe returns ErrNotSupported.
func (e *Executor) Describe(ctx context.Context) (api.NodeDescription, error) {
	return api.NodeDescription{}, ErrNotSupported
}

// Controller returns ErrNotSupported.
func (e *Executor) Controller(t *api.Task) (executor.Controller, error) { return nil, ErrNotSupported }

// ListTasks returns ErrNotSupported.
func (e *Executor) ListTasks(ctx context.Context) ([]*api.Task, error) { return nil, ErrNotSupported }
