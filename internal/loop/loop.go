// Package loop is the shape of every control loop of the manager, after
// controller-runtime and client-go: a store watch feeds a keyed,
// deduplicating work queue (Queue), and a reconciler is called per key,
// Reconcile(ctx, key) (Result, error), to make that key's part of the
// world match the store. The decisions stay pure functions of the state
// (orchestrator.Reconcile, scheduler.Schedule); a Loop is the I/O around
// them, and gives every loop the same behaviour on:
//
//   - events: the reconciler's Observe keeps its view of the store and adds
//     the keys an event concerns; a key added many times is reconciled
//     once. Every event already delivered is taken in before the next key
//     is reconciled, so a burst of events costs one reconciliation per key
//     and each sees the state they bring.
//   - timers: a reconciliation asks to run again later (Result.RequeueAfter)
//     or at once (Result.Requeue, a bounded plan with more to do).
//   - errors: a failed key is retried on its own exponential backoff; an
//     event that adds it retries it at once (the state changed). Conflicts
//     (store.ErrConflict: someone wrote first) are not logged.
//   - restores: when the store's state is replaced by a snapshot
//     (store.ActionRestore), the watch is opened afresh on the new state,
//     the reconciler's Resync rebuilds its view from it and adds every key,
//     and every waiting key is made ready: everything is reconciled again.
//     It is the only restore policy, and the one a new leader starts with.
package loop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/apiary-io/apiary/internal/backoff"
	"github.com/apiary-io/apiary/store"
)

// Result says when a key wants to be reconciled again, besides when an
// event adds it.
type Result struct {
	// Requeue reconciles the key again once the keys ready before it are
	// done: the reconciliation stopped at a bound with more to do.
	Requeue bool
	// RequeueAfter, when positive, reconciles the key again after this
	// long (a restart delay, a heartbeat deadline, a backoff of its own).
	RequeueAfter time.Duration
}

// Reconciler is what a loop is made of. The Loop calls its methods from one
// goroutine, never concurrently, so they share the reconciler's state
// without locks.
type Reconciler[K comparable] interface {
	// Resync rebuilds the reconciler's view of the store from a snapshot
	// and adds the keys to reconcile: every key, and those of its
	// previous view that the snapshot may have lost. It runs when the
	// loop starts and after every restore of the store.
	Resync(tx store.ReadTx, q *Queue[K]) error
	// Observe takes in one event (commit events too; never a restore):
	// it keeps the view and adds the keys the event concerns.
	Observe(ev store.Event, q *Queue[K])
	// Reconcile makes one key's part of the world match the store.
	Reconcile(ctx context.Context, key K) (Result, error)
}

// Config configures a Loop.
type Config struct {
	// Name names the loop in its logs and errors ("orchestrator").
	Name string
	// Store is watched, and passed to Resync.
	Store *store.MemoryStore
	// Filters choose the events the loop takes in (store.ByKinds...);
	// they must accept store.ActionRestore events.
	Filters []store.EventFilter
	// Shared watches with store.ViewAndWatchShared: events and the
	// snapshot's objects are the stored ones, which the reconciler must
	// never modify. Loops that keep many objects (100,000 tasks) hold
	// them once, with the store, rather than a copy each.
	Shared bool
	// Retry is the backoff of a key whose reconciliation failed; without
	// a Base it is DefaultRetry.
	Retry backoff.Config
	// Log is the loop's logger (slog.Default when nil).
	Log *slog.Logger
}

// DefaultRetry retries a failing key after 100 ms, then twice as long
// each time, up to 10 s.
var DefaultRetry = backoff.Config{Base: 100 * time.Millisecond, Max: 10 * time.Second}

// Loop runs a Reconciler over the keys a store watch brings.
type Loop[K comparable] struct {
	cfg   Config
	r     Reconciler[K]
	queue *Queue[K]
	log   *slog.Logger
}

// New returns a loop of r; Run runs it.
func New[K comparable](cfg Config, r Reconciler[K]) *Loop[K] {
	if cfg.Retry.Base <= 0 {
		cfg.Retry = DefaultRetry
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Loop[K]{cfg: cfg, r: r, queue: NewQueue[K](cfg.Retry), log: log}
}

// Queue returns the loop's queue, for adding keys from elsewhere (a
// session that starts, say): it may be used from any goroutine.
func (l *Loop[K]) Queue() *Queue[K] { return l.queue }

// Run runs the loop until ctx ends (it then returns nil) or the store is
// closed. It may run once.
func (l *Loop[K]) Run(ctx context.Context) error {
	w, err := l.watch()
	if err != nil {
		return err
	}
	defer func() { w.Close() }()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	// take takes in one event; after a restore it opens the watch afresh.
	take := func(ev store.Event, ok bool) error {
		if !ok {
			return fmt.Errorf("%s: store watch closed", l.cfg.Name)
		}
		if ev.Action != store.ActionRestore {
			l.r.Observe(ev, l.queue)
			return nil
		}
		// The events still queued behind the restore are part of the
		// new snapshot: drop them with the watch.
		l.log.Info("store restored: reconciling everything", "loop", l.cfg.Name)
		w.Close()
		l.queue.resync()
		fresh, err := l.watch()
		if err != nil {
			return err
		}
		w = fresh
		return nil
	}

	for {
		if ctx.Err() != nil {
			return nil
		}
		// Take in every event already delivered: the next reconciliation
		// then sees the state they bring, and a burst costs one per key.
		for w.Pending() > 0 {
			select {
			case ev, ok := <-w.Events():
				if err := take(ev, ok); err != nil {
					return err
				}
			case <-ctx.Done():
				return nil
			}
		}
		key, ok, due := l.queue.next(time.Now())
		if ok {
			res, err := l.r.Reconcile(ctx, key)
			if err != nil && ctx.Err() != nil {
				return nil
			}
			if err != nil {
				if errors.Is(err, store.ErrConflict) {
					l.log.Debug("reconcile conflicted; retrying", "loop", l.cfg.Name, "key", key, "err", err)
				} else {
					l.log.Warn("reconcile failed", "loop", l.cfg.Name, "key", key, "err", err)
				}
			}
			l.queue.done(key, res, err)
			continue
		}
		var fire <-chan time.Time
		if !due.IsZero() {
			timer.Reset(time.Until(due))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events():
			if err := take(ev, ok); err != nil {
				return err
			}
		case <-l.queue.wake:
		case <-fire:
		}
		timer.Stop()
	}
}

// watch opens the store watch on a snapshot that Resync reads.
func (l *Loop[K]) watch() (*store.Watcher, error) {
	resync := func(tx store.ReadTx) error { return l.r.Resync(tx, l.queue) }
	var w *store.Watcher
	var err error
	if l.cfg.Shared {
		w, err = l.cfg.Store.ViewAndWatchShared(resync, l.cfg.Filters...)
	} else {
		w, err = l.cfg.Store.ViewAndWatch(resync, l.cfg.Filters...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: watch store: %w", l.cfg.Name, err)
	}
	return w, nil
}
