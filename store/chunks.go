package store

import (
	"context"
	"errors"
	"fmt"
)

// UpdateInChunks writes n items, in order, in transactions of at most
// MaxChangesPerTransaction items each: write(tx, lo, hi) makes the changes
// of items [lo, hi), reading what it changes in tx. A transaction too
// large for one proposal (ErrTooLarge: items with large specs) is split in
// halves until it fits; a transaction that lost a race with another writer
// (ErrConflict) runs again on fresh state. It stops at the first other
// error and returns how many items were written before it: those stay
// written, as the transactions that hold them committed.
//
// For writers of many independent items (status reports, tasks released
// or orphaned), whose one transaction would grow without bound.
func (s *MemoryStore) UpdateInChunks(ctx context.Context, n int, write func(tx Tx, lo, hi int) error) (written int, err error) {
	for written < n {
		hi := min(written+MaxChangesPerTransaction, n)
		done, err := s.updateRange(ctx, written, hi, write)
		written += done
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// updateRange writes items [lo, hi) in one transaction, or in halves when
// that is too large, and returns how many it wrote.
func (s *MemoryStore) updateRange(ctx context.Context, lo, hi int, write func(tx Tx, lo, hi int) error) (int, error) {
	for {
		err := s.UpdateContext(ctx, func(tx Tx) error { return write(tx, lo, hi) })
		switch {
		case errors.Is(err, ErrConflict) && ctx.Err() == nil:
			continue
		case errors.Is(err, ErrTooLarge) && hi-lo > 1:
			mid := lo + (hi-lo)/2
			done, err := s.updateRange(ctx, lo, mid, write)
			if err != nil {
				return done, err
			}
			more, err := s.updateRange(ctx, mid, hi, write)
			return done + more, err
		case err != nil:
			return 0, fmt.Errorf("write items %d to %d of a chunked update: %w", lo, hi, err)
		}
		return hi - lo, nil
	}
}
