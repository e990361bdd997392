package loop

import (
	"container/heap"
	"sync"
	"time"

	"github.com/apiary-io/apiary/internal/backoff"
)

// Queue is a keyed, deduplicating work queue, after client-go's workqueue:
// a key is waiting to be reconciled at most once however often it is
// added, is never reconciled twice at the same time, and may wait for a
// time (AddAfter) or for its retry backoff after a failure. Its one consumer
// is the Loop that owns it; anyone may add keys, from any goroutine.
//
// A key is in at most one of three places: ready (reconciled in the order
// it became ready), waiting for a time, or being reconciled. Add makes a
// key ready at once and drops its wait: the reconciliation it triggers
// returns the key's next wait anyway (Result). Adding a key while it is
// reconciled runs it once more afterwards, so a change that lands during a
// reconciliation is never lost.
type Queue[K comparable] struct {
	mu sync.Mutex

	ready  []K // FIFO from head
	head   int
	queued map[K]bool // the keys in ready

	waits map[K]time.Time // the keys waiting, and until when
	heap  waitHeap[K]     // the waits in time order, with stale entries

	busy    bool // a key is being reconciled
	current K
	again   bool // current was added while it was reconciled

	retry    backoff.Config
	failures map[K]*backoff.Backoff // the keys whose last reconciliation failed

	wake chan struct{} // capacity 1: "a key was added"
}

// NewQueue returns an empty queue whose failed keys are retried on retry's
// backoff, each key on its own.
func NewQueue[K comparable](retry backoff.Config) *Queue[K] {
	return &Queue[K]{
		queued:   map[K]bool{},
		waits:    map[K]time.Time{},
		failures: map[K]*backoff.Backoff{},
		retry:    retry,
		wake:     make(chan struct{}, 1),
	}
}

// Add makes key ready to be reconciled now.
func (q *Queue[K]) Add(key K) {
	q.mu.Lock()
	q.addLocked(key)
	q.mu.Unlock()
	q.signal()
}

func (q *Queue[K]) addLocked(key K) {
	delete(q.waits, key)
	if q.busy && q.current == key {
		q.again = true
		return
	}
	if q.queued[key] {
		return
	}
	q.queued[key] = true
	q.ready = append(q.ready, key)
}

// AddAfter makes key ready once d has passed, or sooner if it was to be
// sooner already (an earlier AddAfter, or it is ready now).
func (q *Queue[K]) AddAfter(key K, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	q.addAfterLocked(key, time.Now().Add(d))
	q.mu.Unlock()
	q.signal()
}

func (q *Queue[K]) addAfterLocked(key K, at time.Time) {
	if q.queued[key] {
		return
	}
	if cur, ok := q.waits[key]; ok && !at.Before(cur) {
		return
	}
	q.waits[key] = at
	heap.Push(&q.heap, wait[K]{at: at, key: key})
	// Entries left behind by keys added since or waiting sooner are
	// skipped when they come up; drop them before they outnumber the
	// live ones, or a key added on every event would grow the heap
	// without bound.
	if len(q.heap) > 64 && len(q.heap) > 4*len(q.waits) {
		q.heap = q.heap[:0]
		for k, at := range q.waits {
			q.heap = append(q.heap, wait[K]{at: at, key: k})
		}
		heap.Init(&q.heap)
	}
}

// Len returns how many keys are ready or waiting.
func (q *Queue[K]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ready) - q.head + len(q.waits)
}

func (q *Queue[K]) signal() {
	select {
	case q.wake <- struct{}{}:
	default: // already signalled
	}
}

// next takes the first ready key, once the waits due by now are ready,
// and marks it being reconciled. Without one, it returns when the next
// wait is due (zero when nothing waits).
func (q *Queue[K]) next(now time.Time) (key K, ok bool, due time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.heap) > 0 {
		w := q.heap[0]
		if at, ok := q.waits[w.key]; !ok || !at.Equal(w.at) {
			heap.Pop(&q.heap) // stale
			continue
		}
		if w.at.After(now) {
			due = w.at
			break
		}
		heap.Pop(&q.heap)
		delete(q.waits, w.key)
		if !q.queued[w.key] {
			q.queued[w.key] = true
			q.ready = append(q.ready, w.key)
		}
	}
	if q.head == len(q.ready) {
		return key, false, due
	}
	key = q.ready[q.head]
	var zero K
	q.ready[q.head] = zero
	q.head++
	if q.head == len(q.ready) {
		q.ready, q.head = q.ready[:0], 0
	} else if q.head > 64 && q.head > len(q.ready)/2 {
		// Never empty for long: move the rest to the front so the
		// slice does not grow with every key ever added.
		n := copy(q.ready, q.ready[q.head:])
		clear(q.ready[n:])
		q.ready, q.head = q.ready[:n], 0
	}
	delete(q.queued, key)
	q.busy, q.current, q.again = true, key, false
	return key, true, time.Time{}
}

// done ends the reconciliation of key: it is retried on its backoff after
// an error, reconciled again as res says after a success, and at once if it
// was added meanwhile.
func (q *Queue[K]) done(key K, res Result, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	again := q.again
	var zero K
	q.busy, q.current, q.again = false, zero, false
	switch {
	case err != nil:
		b := q.failures[key]
		if b == nil {
			b = backoff.New(q.retry)
			q.failures[key] = b
		}
		if again {
			// Changed meanwhile: try the fresh state now, but keep the
			// count of failures, as another failure waits longer.
			q.addLocked(key)
		} else {
			q.addAfterLocked(key, time.Now().Add(b.Next()))
		}
		return
	}
	delete(q.failures, key)
	switch {
	case again || res.Requeue:
		q.addLocked(key)
	case res.RequeueAfter > 0:
		q.addAfterLocked(key, time.Now().Add(res.RequeueAfter))
	}
}

// resync makes every waiting key ready and forgets every failure: the
// state they were computed from is gone.
func (q *Queue[K]) resync() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for key := range q.waits {
		q.addLocked(key)
	}
	q.heap = q.heap[:0]
	clear(q.failures)
}

type wait[K comparable] struct {
	at  time.Time
	key K
}

// waitHeap orders waits by time (container/heap).
type waitHeap[K comparable] []wait[K]

func (h waitHeap[K]) Len() int           { return len(h) }
func (h waitHeap[K]) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h waitHeap[K]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitHeap[K]) Push(x any)        { *h = append(*h, x.(wait[K])) }
func (h *waitHeap[K]) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}
