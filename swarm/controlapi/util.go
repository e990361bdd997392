package controlapi

import (
	"context"
	"errors"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// viewResult reads what a method returns as it is. Served over RPC
// (rpc.Serving), the result is only encoded for the wire, so it is read
// shared: the stored objects themselves, with no copy (a service read back
// after its write was a tenth of the leader's allocation per write, docs/
// benchmarks.md, issue 14). Called in this process, the caller owns what
// it gets and may change it, so it gets copies. fn must not change what
// it reads.
func (s *Server) viewResult(ctx context.Context, fn func(store.ReadTx)) {
	if rpc.Serving(ctx) {
		s.store.ViewShared(fn)
		return
	}
	s.store.View(fn)
}

func isConflict(err error) bool { return errors.Is(err, store.ErrConflict) }

// maxConflictRetries bounds updateRetrying's runs: each conflict follows
// another writer's commit, so every run makes progress, but a writer
// rewriting the same object without pause must not hold the caller
// forever.
const maxConflictRetries = 32

// updateRetrying runs fn in a transaction, again on store.ErrConflict: for
// a write whose outcome does not depend on the version the caller saw (a
// removal by name), where another writer's change to the object meanwhile
// (a node marked down, a service's endpoint) is no reason to fail.
func (s *Server) updateRetrying(ctx context.Context, fn func(tx store.Tx) error) error {
	err := s.store.UpdateContext(ctx, fn)
	for try := 0; try < maxConflictRetries && isConflict(err) && ctx.Err() == nil; try++ {
		err = s.store.UpdateContext(ctx, fn)
	}
	return err
}

func nowUTC() time.Time { return time.Now().UTC() }
