// Package executor defines how a worker runs tasks: an Executor describes the
// node and makes a Controller for each task; the Controller drives that task's
// process or container through its life. Implementations live in
// subpackages: process (OS processes, the embedded default), docker (real
// containers) and fake (instant and scriptable, for tests and simulation).
package executor

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// Executor runs tasks on one node.
type Executor interface {
	// Describe reports the node: hostname, platform, resources, engine
	// labels and the executor kind.
	Describe(ctx context.Context) (api.NodeDescription, error)
	// Controller returns the controller of a task. It is cheap and does
	// nothing yet; asking twice for the same task ID returns a controller of
	// the same process or container, so a restarted agent can adopt what it
	// started before.
	Controller(t *api.Task) (Controller, error)
}

// Controller drives one task. Every method is idempotent: calling it again
// after it succeeded does nothing and returns nil, so an agent can retry after
// a crash or a lost status report.
type Controller interface {
	// Prepare makes everything ready to start (image present, log files,
	// working directory) without starting.
	Prepare(ctx context.Context) error
	// Start starts the task. A task already running (or already exited) is
	// left alone: a task is started at most once. Start prepares the task
	// first when Prepare was not called.
	Start(ctx context.Context) error
	// Wait blocks until the task exits and reports how, or until ctx ends
	// (then it returns ctx.Err()). It may be called again after an exit and
	// returns the same status.
	Wait(ctx context.Context) (ExitStatus, error)
	// Shutdown stops the task gracefully: SIGTERM, then SIGKILL once the
	// task's stop grace period ran out.
	Shutdown(ctx context.Context) error
	// Terminate kills the task at once.
	Terminate(ctx context.Context) error
	// Remove releases everything the task held (container, records); logs
	// may be kept. The task is stopped first if it still runs.
	Remove(ctx context.Context) error
	// Status reports what runs the task now (container ID or PID).
	Status(ctx context.Context) (api.ContainerStatus, error)
}

// ExitStatus is how a task ended.
type ExitStatus struct {
	ExitCode int
	// Signal names the signal that killed the task, if one did.
	Signal    string
	OOMKilled bool
	// Message explains the exit in a few words ("exit status 2", "killed").
	Message string
}

// Failed reports whether the exit counts as a failure (non-zero, killed).
func (e ExitStatus) Failed() bool { return e.ExitCode != 0 || e.Signal != "" || e.OOMKilled }

// HealthChecker is implemented by controllers that check the health of their
// task themselves (Docker's own HEALTHCHECK). The agent runs HealthConfig
// checks for the others.
type HealthChecker interface {
	Health(ctx context.Context) (string, error)
}

// LogOptions select log output.
type LogOptions struct {
	// Follow keeps the stream open for new output until ctx ends.
	Follow bool
	// Tail limits the output to the last N lines; 0 means all.
	Tail int
	// Since drops lines written before it.
	Since time.Time
}

// LogReader is implemented by controllers that keep the task's output.
type LogReader interface {
	// Logs returns the task's combined stdout and stderr.
	Logs(ctx context.Context, opts LogOptions) (io.ReadCloser, error)
}

// TaskLister is implemented by executors that keep what they started across
// agent restarts. A restarted agent lists the tasks the executor still holds
// (started or prepared, and not removed yet), then adopts those it is still
// assigned (through Controller) and removes the others.
type TaskLister interface {
	// ListTasks returns the tasks as they were when the executor took them.
	ListTasks(ctx context.Context) ([]*api.Task, error)
}

// Dependencies are the secrets and configs one task references (issue
// 16), as its node received them: the data of every reference in the
// task's spec (TaskSpec.Secrets, Configs), matched by ID. The agent holds
// them in memory only.
type Dependencies struct {
	Secrets []*api.Secret
	Configs []*api.Config
}

// Secret returns the secret of that ID, or nil.
func (d Dependencies) Secret(id string) *api.Secret {
	for _, s := range d.Secrets {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Config returns the config of that ID, or nil.
func (d Dependencies) Config(id string) *api.Config {
	for _, c := range d.Configs {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// DependencyUser is implemented by controllers that give their task its
// secrets and configs as files. The agent calls SetDependencies before
// Prepare (and on adopting a task after a restart) with the data of every
// reference of the task's spec; the controller writes them when it
// prepares the task and deletes them when it is removed, and never puts
// their data in the task's environment, its records or logs. The agent
// rejects a task with references whose controller does not implement it.
type DependencyUser interface {
	SetDependencies(Dependencies)
}

// ErrNotStarted is returned by Wait when the task was never started.
var ErrNotStarted = errors.New("task not started")

// ErrRuntimeMismatch is returned by Controller for a task whose spec needs
// another runtime than this executor's.
var ErrRuntimeMismatch = errors.New("task runtime not supported by this executor")

// ErrRemoved is returned by Prepare, Start and Logs of a task that was
// removed: a removed task cannot run again and its records are gone.
var ErrRemoved = errors.New("task removed")
