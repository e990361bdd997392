// Package controlapi is the manager's API: the operations a user (the Go
// client, apiaryctl, later the Docker API layer) performs on services, tasks,
// nodes and the cluster. It validates every request before it writes, so bad
// input changes nothing, and it turns concurrent edits into clear conflict
// errors through the store's optimistic concurrency. The same Server is called
// in-process by the embedding API and, over gRPC, by remote clients.
package controlapi

import (
	"fmt"
	"sort"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// Server implements the control API over a store.
type Server struct {
	store      *store.MemoryStore
	membership Membership
	logs       LogSource
	ca         CA
	sched      *scheduler.Scheduler
}

// Options are what a Server reaches beyond its store. Each is optional:
// without it, the methods that need it answer with its error
// (ErrNoMembership, ErrNoLogSource, ErrNoCA). They are fixed when the
// Server is made, before it serves anyone.
type Options struct {
	// Membership changes the managers' raft group (JoinManager, and the
	// quorum check of a demotion).
	Membership Membership
	// Logs opens the output of tasks on their nodes (ServiceLogs).
	Logs LogSource
	// CA is the cluster's certificate authority (RotateRootCA,
	// RootCAStatus).
	CA CA
	// Scheduler is the manager's scheduler, whose placements PlanService
	// foresees (scheduler.DefaultConfig's when nil).
	Scheduler *scheduler.Scheduler
}

// New returns a Server writing to s, reaching what opts gives it.
func New(s *store.MemoryStore, opts Options) *Server {
	sched := opts.Scheduler
	if sched == nil {
		sched = scheduler.New(scheduler.DefaultConfig())
	}
	return &Server{store: s, membership: opts.Membership, logs: opts.Logs, ca: opts.CA, sched: sched}
}

// ErrInvalidArgument marks errors caused by bad input; test with errors.Is.
var ErrInvalidArgument = control.ErrInvalidArgument

var _ control.API = (*Server)(nil)

// ErrNotFound marks a lookup that found nothing; test with errors.Is.
var ErrNotFound = store.ErrNotFound

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// lookup resolves a reference (full ID, name, or unique ID prefix) the way
// the Docker CLI does: exact ID first, then exact name, then prefix.
func lookup[T api.Object](kind string, ref string, get func(string) T, find func(store.By) ([]T, error)) (T, error) {
	var zero T
	if ref == "" {
		return zero, invalid("%s reference is empty", kind)
	}
	if o := get(ref); !isNil(o) {
		return o, nil
	}
	if byName, err := find(store.ByName(ref)); err == nil && len(byName) == 1 {
		return byName[0], nil
	}
	byPrefix, err := find(store.ByIDPrefix(ref))
	if err != nil {
		return zero, err
	}
	switch len(byPrefix) {
	case 0:
		return zero, fmt.Errorf("%s %q: %w", kind, ref, ErrNotFound)
	case 1:
		return byPrefix[0], nil
	}
	return zero, invalid("%s %q is ambiguous: it prefixes %d IDs", kind, ref, len(byPrefix))
}

func isNil(o api.Object) bool {
	switch v := o.(type) {
	case *api.Service:
		return v == nil
	case *api.Node:
		return v == nil
	case *api.Task:
		return v == nil
	case *api.Network:
		return v == nil
	case *api.Cluster:
		return v == nil
	case *api.Secret:
		return v == nil
	case *api.Config:
		return v == nil
	}
	return o == nil
}

// sortByName orders objects by name, then ID, for stable listings.
func sortByName[T any](xs []T, name func(T) string, id func(T) string) {
	sort.Slice(xs, func(i, j int) bool {
		a, b := name(xs[i]), name(xs[j])
		if a != b {
			return a < b
		}
		return id(xs[i]) < id(xs[j])
	})
}
