package store

import (
	"context"
	"fmt"
	"time"
)

// Batch groups many small transactions (b.Update) into few proposals of at
// most MaxChangesPerTransaction changes each, for writes too large for one
// raft entry: creating thousands of tasks, say. Each b.Update is atomic
// (all of its changes land in the same proposal, so one that makes more
// than MaxChangesPerTransaction changes is proposed alone), but the batch as
// a whole is not: proposals committed before a failure stay committed.
type Batch struct {
	store *MemoryStore
	ctx   context.Context
	// view is a private snapshot of the store with the pending changes
	// applied: what the next b.Update reads.
	view    *dbState
	pending []action
	err     error
}

// Batch runs fn with a Batch and commits what its b.Update calls leave
// pending. It returns the first error: fn's own, or a failed proposal's
// (after which b.Update returns that error too and does nothing).
func (s *MemoryStore) Batch(fn func(*Batch) error) error {
	return s.BatchContext(context.Background(), fn)
}

// BatchContext is Batch with a context bounding each proposal.
func (s *MemoryStore) BatchContext(ctx context.Context, fn func(*Batch) error) error {
	if s.isClosed() {
		return ErrClosed
	}
	b := &Batch{store: s, ctx: ctx, view: s.current()}
	if err := fn(b); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	_, err := b.flush()
	return err
}

// Update runs fn as one transaction of the batch: it sees the store as of
// the batch's last proposal plus the batch's pending changes. When fn fails
// its changes are dropped and its error returned; the batch goes on.
func (b *Batch) Update(fn func(Tx) error) error {
	if b.err != nil {
		return b.err
	}
	t := newTx(b.view, time.Now().UTC())
	if err := fn(t); err != nil {
		t.abort()
		return err
	}
	if len(t.actions) == 0 {
		t.abort()
		return nil
	}
	if len(b.pending) > 0 && len(b.pending)+len(t.actions) > MaxChangesPerTransaction {
		// Propose what is pending without this transaction, then carry
		// this one over to a view of the new committed state.
		t.abort()
		prev := b.pending
		index, err := b.flush()
		if err != nil {
			return err
		}
		rebase(t.actions, prev, index)
		if err := b.replay(t.actions); err != nil {
			b.err = fmt.Errorf("batch: carry a transaction over to the next proposal: %w", err)
			return err
		}
	} else {
		b.view = t.view() // into the private view only
	}
	b.pending = append(b.pending, t.actions...)
	if len(b.pending) >= MaxChangesPerTransaction {
		if _, err := b.flush(); err != nil {
			return err
		}
	}
	return nil
}

// flush proposes the pending changes and starts a fresh view of the store.
func (b *Batch) flush() (uint64, error) {
	if len(b.pending) == 0 {
		return b.store.Index(), nil
	}
	index, err := b.store.commit(b.ctx, b.pending)
	b.pending = nil
	if err != nil {
		b.err = err
		return 0, err
	}
	// Propose returns after the local Apply, so the committed state now
	// holds the batch's changes with their final versions.
	b.view = b.store.current()
	return index, nil
}

// rebase updates actions, made on a view where prev was pending, for the
// state after prev committed at index: the objects prev wrote now have
// version index, so that is what these actions expect where they write
// such an object without creating it first.
func rebase(actions, prev []action, index uint64) {
	inPrev := make(map[key]bool, len(prev))
	for _, a := range prev {
		inPrev[key{a.kind, a.id}] = true
	}
	carried := make(map[key]bool)
	for i := range actions {
		a := &actions[i]
		k := key{a.kind, a.id}
		on, seen := carried[k]
		if !seen {
			on = inPrev[k] && a.op != ActionCreate
		}
		if a.op == ActionCreate {
			on = false // a new object: its version is 0 until it commits
		}
		carried[k] = on
		if on {
			a.base = index
			if a.obj != nil {
				m := a.obj.GetMeta()
				m.Version = index
				a.obj.SetMeta(m)
			}
		}
	}
}

// replay writes actions into a fresh view of the store, without checks:
// the commit validates them.
func (b *Batch) replay(actions []action) error {
	w := b.store.current().writer()
	for _, a := range actions {
		ki, err := lookupKind(a.kind)
		if err != nil {
			return err
		}
		if a.op == ActionDelete {
			w.remove(ki, a.id)
		} else {
			w.put(ki, a.obj)
		}
	}
	b.view = w.commit()
	return nil
}
