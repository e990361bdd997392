package store

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apiary-io/apiary/swarm/api"
)

// watcherBuffer is the channel buffer between a watcher's queue and its
// reader: it only saves goroutine hand-offs; the queue is what never fills.
const watcherBuffer = 64

// maxReusedQueue bounds the capacity of a drained queue that a watcher
// keeps for the next events.
const maxReusedQueue = 4096

// Watcher delivers the store's events, in commit order, to one reader.
//
// Events are queued without bound: a slow reader never loses an event and
// never slows a writer down, at the price of memory while it lags. A
// goroutine per watcher moves the queue into the channel; Close stops it.
type Watcher struct {
	store   *MemoryStore
	filters []EventFilter
	out     chan Event
	// shared: the events carry the stored objects themselves, not copies
	// (ViewAndWatchShared).
	shared bool

	mu    sync.Mutex
	queue []Event
	// spare is an emptied queue kept for the next swap: run sends one
	// batch while the writers fill the other, so that under steady load
	// neither is allocated afresh (a fresh queue per batch was a twentieth
	// of the leader's allocated bytes at 64 writers).
	spare []Event
	// unsent counts events queued or being moved, not yet in out.
	unsent atomic.Int64

	wake     chan struct{} // capacity 1: "the queue is not empty"
	done     chan struct{} // closed by stop
	exited   chan struct{} // closed when the goroutine has returned
	stopOnce sync.Once
}

// Events returns the event stream. It is closed when the watcher or the
// store is closed; events still queued then are dropped.
func (w *Watcher) Events() <-chan Event { return w.out }

// Pending returns how many events are waiting for the reader: queued or in
// the channel; it may count one fewer (an event being handed over), never
// more. A loop that acts once it has caught up (to batch its work
// over many events) checks Pending() == 0 rather than the channel's length,
// which misses the queue behind it.
func (w *Watcher) Pending() int { return int(w.unsent.Load()) + len(w.out) }

// Close stops the watcher and waits for its goroutine to end. It is safe to
// call more than once and concurrently with the store's writers.
func (w *Watcher) Close() {
	if w.store != nil {
		w.store.mu.Lock()
		if w.store.watchers != nil {
			delete(w.store.watchers, w)
		}
		w.store.mu.Unlock()
	}
	w.stop()
}

func (w *Watcher) stop() {
	w.stopOnce.Do(func() { close(w.done) })
	<-w.exited
}

func newWatcher(s *MemoryStore, filters []EventFilter, shared bool) *Watcher {
	w := &Watcher{
		store:   s,
		filters: slices.Clone(filters),
		shared:  shared,
		out:     make(chan Event, watcherBuffer),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	go w.run()
	return w
}

// Watch returns a watcher of every event committed from now on that all
// filters accept. On a closed store the watcher's channel is closed at once.
func (s *MemoryStore) Watch(filters ...EventFilter) *Watcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watchLocked(filters, false)
}

func (s *MemoryStore) watchLocked(filters []EventFilter, shared bool) *Watcher {
	w := newWatcher(s, filters, shared)
	if s.closed {
		w.stop()
		return w
	}
	s.watchers[w] = struct{}{}
	return w
}

// ViewAndWatch runs fn on a snapshot and returns a watcher whose first event
// is the first commit after that snapshot: together they see every change
// exactly once. fn runs without a lock. When fn fails, the watcher is closed
// and fn's error returned.
func (s *MemoryStore) ViewAndWatch(fn func(ReadTx) error, filters ...EventFilter) (*Watcher, error) {
	return s.viewAndWatch(fn, false, filters)
}

// ViewAndWatchShared is ViewAndWatch whose events carry the stored objects
// themselves instead of copies: they are shared with the store and every
// other reader, so the reader must never modify them. It is for loops that
// keep many of the objects they are told of (the orchestrator's and the
// placer's views of the tasks): they then hold each object once, with the
// store, instead of a copy each (100,000 tasks are ~160 MB a copy), and
// the watcher makes no garbage per event.
func (s *MemoryStore) ViewAndWatchShared(fn func(ReadTx) error, filters ...EventFilter) (*Watcher, error) {
	return s.viewAndWatch(fn, true, filters)
}

func (s *MemoryStore) viewAndWatch(fn func(ReadTx) error, shared bool, filters []EventFilter) (*Watcher, error) {
	// Snapshot and subscribe under the apply lock, so no commit falls
	// between them; fn can then read the snapshot after the lock is gone.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	db := s.currentLocked()
	w := s.watchLocked(filters, shared)
	s.mu.Unlock()
	if err := fn(readTx{db: db}); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// publishLocked queues events for every watcher. Called under s.mu, in
// commit order. Filters run here, on the writer's goroutine, so that a
// watcher that wants few events does not queue the others.
func (s *MemoryStore) publishLocked(events []Event) {
	for w := range s.watchers {
		w.enqueue(events)
	}
}

func (w *Watcher) enqueue(events []Event) {
	w.mu.Lock()
	n := len(w.queue)
	for _, ev := range events {
		if w.accepts(ev) {
			if len(w.queue) == cap(w.queue) {
				// Double, as append does only for small slices: a
				// large transaction's events would otherwise be copied
				// again and again by growth of a quarter.
				w.queue = slices.Grow(w.queue, max(cap(w.queue), 16))
			}
			w.queue = append(w.queue, ev)
		}
	}
	added := len(w.queue) > n
	w.unsent.Add(int64(len(w.queue) - n))
	w.mu.Unlock()
	if added {
		select {
		case w.wake <- struct{}{}:
		default: // already signalled
		}
	}
}

func (w *Watcher) accepts(ev Event) bool {
	for _, f := range w.filters {
		if !f(ev) {
			return false
		}
	}
	return true
}

// run moves queued events into the channel until the watcher stops.
func (w *Watcher) run() {
	defer close(w.exited)
	defer close(w.out)
	for {
		w.mu.Lock()
		batch := w.queue
		if len(batch) > 0 {
			w.queue, w.spare = w.spare, nil
		}
		w.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-w.wake:
				continue
			case <-w.done:
				return
			}
		}
		for i := range batch {
			// Queued events hold the stored objects, which are shared and
			// immutable; the reader gets its own copies (unless it shares
			// them), made here on the watcher's goroutine rather than the
			// writer's.
			ev := batch[i]
			if ev.Object != nil && !w.shared {
				ev.Object = ev.Object.CopyObject()
			}
			if ev.Old != nil && !w.shared {
				ev.Old = ev.Old.CopyObject()
			}
			batch[i] = Event{} // let the stored objects go as soon as they are sent
			// Uncount the event before it can reach the reader: a reader
			// that has it must never still see it as pending, or it would
			// wait for events that are not coming. Counting it nowhere
			// while it is in hand only makes a reader act early.
			w.unsent.Add(-1)
			select {
			case w.out <- ev:
			case <-w.done:
				return
			}
		}
		// Reuse the emptied batch for the next events, unless it grew
		// large (a burst): a watcher that keeps up then queues without
		// allocating.
		if cap(batch) <= maxReusedQueue {
			w.mu.Lock()
			switch {
			case w.queue == nil:
				w.queue = batch[:0]
			case w.spare == nil:
				w.spare = batch[:0]
			}
			w.mu.Unlock()
		}
	}
}

// Event filters. The object filters (ByKinds, TaskOfService, TaskOnNode)
// accept commit and restore events, which carry no object, so that a
// watcher of some kinds still sees where each transaction ends and when the
// state was replaced. Filters run on the writer's goroutine under the
// store's apply lock: they must be fast, must not modify the event's
// objects, and must not call the store.

// ByKinds accepts events of objects of these kinds, and commit and restore
// events.
func ByKinds(kinds ...api.Kind) EventFilter {
	set := slices.Clone(kinds)
	return func(e Event) bool {
		return e.Object == nil || slices.Contains(set, e.Object.Kind())
	}
}

// ByActions accepts events whose action is one of these. Unlike the object
// filters, it drops commit and restore events unless they are listed.
func ByActions(actions ...Action) EventFilter {
	set := slices.Clone(actions)
	return func(e Event) bool { return slices.Contains(set, e.Action) }
}

// TaskOfService accepts the events of the tasks of a service, and commit
// and restore events.
func TaskOfService(serviceID string) EventFilter {
	return taskFilter(func(t *api.Task) bool { return t.ServiceID == serviceID })
}

// TaskOnNode accepts the events of tasks on a node, including the update
// that moves a task off it (its Old was on the node), and commit and restore
// events.
func TaskOnNode(nodeID string) EventFilter {
	return taskFilter(func(t *api.Task) bool { return t.NodeID == nodeID })
}

func taskFilter(match func(*api.Task) bool) EventFilter {
	return func(e Event) bool {
		if e.Object == nil {
			return true
		}
		t, ok := e.Object.(*api.Task)
		if !ok {
			return false
		}
		if match(t) {
			return true
		}
		old, ok := e.Old.(*api.Task)
		return ok && match(old)
	}
}
