package loop

import (
	"fmt"
	"testing"
	"time"
)

// A key that is added and then waits again, over and over (a service
// touched by every event that also waits for a restart delay), leaves
// stale entries in the heap; they are dropped before they pile up.
func TestQueueHeapStaysBounded(t *testing.T) {
	q := NewQueue[string](DefaultRetry)
	now := time.Now()
	for i := range 10000 {
		q.Add("k")
		if _, ok, _ := q.next(now); !ok {
			t.Fatal("the added key is not ready")
		}
		q.done("k", Result{RequeueAfter: time.Hour + time.Duration(i)}, nil)
		q.AddAfter("other", time.Duration(10000-i)*time.Minute)
	}
	if len(q.heap) > 64 {
		t.Fatalf("heap holds %d entries for 2 waiting keys", len(q.heap))
	}
	if q.Len() != 2 {
		t.Fatalf("Len = %d, want 2", q.Len())
	}
	// The soonest wait of each key is kept.
	if got, want := q.waits["other"], now.Add(time.Minute); got.Sub(want) > time.Second || want.Sub(got) > time.Second {
		t.Fatalf("other waits until %v, want about %v", got, want)
	}
}

// A queue that never empties (keys added as fast as they are taken) does
// not keep every key it ever held.
func TestQueueReadySliceStaysBounded(t *testing.T) {
	q := NewQueue[string](DefaultRetry)
	now := time.Now()
	for i := range 100 {
		q.Add(fmt.Sprint(i))
	}
	for i := 100; i < 100000; i++ {
		k, ok, _ := q.next(now)
		if !ok {
			t.Fatal("queue ran dry")
		}
		if want := fmt.Sprint(i - 100); k != want {
			t.Fatalf("took %q, want %q: keys are reconciled in the order they became ready", k, want)
		}
		q.done(k, Result{}, nil)
		q.Add(fmt.Sprint(i))
	}
	if cap(q.ready) > 1024 {
		t.Fatalf("ready slice grew to %d for 100 keys", cap(q.ready))
	}
}

// A key whose reconciliation failed and that is changed meanwhile is tried
// at once, yet its next failure still waits longer than the first.
func TestQueueFailureCountSurvivesAnAdd(t *testing.T) {
	q := NewQueue[string](DefaultRetry)
	now := time.Now()
	q.Add("k")
	q.next(now)
	q.done("k", Result{}, fmt.Errorf("boom")) // waits 100ms
	q.Add("k")                                // changed: ready now
	if _, ok, _ := q.next(now); !ok {
		t.Fatal("an added key waits for its backoff")
	}
	before := time.Now()
	q.done("k", Result{}, fmt.Errorf("boom"))
	if wait := q.waits["k"].Sub(before); wait < 200*time.Millisecond {
		t.Fatalf("second failure waits %v, want 200ms", wait)
	}
}
