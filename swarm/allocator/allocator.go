// Package allocator gives services and tasks the network resources they
// need before they may be scheduled: today the published ports of the
// routing mesh (explicit ones checked, dynamic ones chosen from 30000-32767).
// A task leaves NEW for PENDING only once its service's endpoint is
// allocated, so no task is ever placed with its ports undecided. Virtual IPs
// and task addresses join here with the mesh.
//
// The allocator is a loop.Loop keyed by service ID: a service's key is
// reconciled when its endpoint spec changes, when one of its tasks is NEW,
// and, for a service waiting for ports, when another service frees some.
// A store restore reconciles every service again.
package allocator

import (
	"context"
	"log/slog"

	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// Allocator is the loop that allocates endpoints and releases new tasks.
type Allocator struct {
	store *store.MemoryStore
	log   *slog.Logger
}

// New returns an allocator over s.
func New(s *store.MemoryStore, log *slog.Logger) *Allocator {
	if log == nil {
		log = slog.Default()
	}
	return &Allocator{store: s, log: log.With("component", "allocator")}
}

// Run allocates until ctx ends (it then returns nil) or the store closes.
func (a *Allocator) Run(ctx context.Context) error {
	return loop.New[string](loop.Config{
		Name:    "allocator",
		Store:   a.store,
		Filters: []store.EventFilter{store.ByKinds(api.KindService, api.KindTask, api.KindNetwork)},
		// The view keeps task IDs and reads the events' objects, never
		// changing them: shared, not copied.
		Shared: true,
		Log:    a.log,
	}, newReconciler(a.store, a.log)).Run(ctx)
}
