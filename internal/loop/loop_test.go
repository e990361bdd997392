package loop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// nodes is a reconciler keyed by node ID: its view holds the nodes'
// hostnames, and a reconciliation records the hostname it saw.
type nodes struct {
	mu      sync.Mutex
	view    map[string]string
	runs    []string // "id=hostname@elapsed"
	resyncs int
	start   time.Time
	// result decides a reconciliation's outcome (nil: success).
	result func(id string, n int) (loop.Result, error)
	counts map[string]int
	// during runs inside a reconciliation (to add keys meanwhile).
	during func(id string)
}

func newNodes() *nodes {
	return &nodes{view: map[string]string{}, counts: map[string]int{}, start: time.Now()}
}

func (r *nodes) Resync(tx store.ReadTx, q *loop.Queue[string]) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resyncs++
	for id := range r.view {
		q.Add(id) // gone or not
	}
	clear(r.view)
	ns, err := tx.FindNodes(store.All)
	if err != nil {
		return err
	}
	for _, n := range ns {
		r.view[n.ID] = n.Description.Hostname
		q.Add(n.ID)
	}
	return nil
}

func (r *nodes) Observe(ev store.Event, q *loop.Queue[string]) {
	n, ok := ev.Object.(*api.Node)
	if !ok {
		return
	}
	r.mu.Lock()
	if ev.Action == store.ActionDelete {
		delete(r.view, n.ID)
	} else {
		r.view[n.ID] = n.Description.Hostname
	}
	r.mu.Unlock()
	q.Add(n.ID)
}

func (r *nodes) Reconcile(_ context.Context, id string) (loop.Result, error) {
	r.mu.Lock()
	r.counts[id]++
	n := r.counts[id]
	host, ok := r.view[id]
	if !ok {
		host = "gone"
	}
	r.runs = append(r.runs, fmt.Sprintf("%s=%s@%v", id, host, time.Since(r.start)))
	result, during := r.result, r.during
	r.mu.Unlock()
	if during != nil {
		during(id)
	}
	if result == nil {
		return loop.Result{}, nil
	}
	return result(id, n)
}

// set replaces the outcome of the next reconciliations.
func (r *nodes) set(result func(id string, n int) (loop.Result, error)) {
	r.mu.Lock()
	r.result = result
	r.mu.Unlock()
}

// took returns the reconciliations so far, and forgets them.
func (r *nodes) took() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.runs
	r.runs = nil
	return out
}

func node(id, host string) *api.Node {
	return &api.Node{ID: id, Spec: api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
		Description: &api.NodeDescription{Hostname: host}}
}

func create(t *testing.T, s *store.MemoryStore, ns ...*api.Node) {
	t.Helper()
	if err := s.Update(func(tx store.Tx) error {
		for _, n := range ns {
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, s *store.MemoryStore, id, host string) {
	t.Helper()
	if err := s.Update(func(tx store.Tx) error {
		n := tx.GetNode(id)
		n.Description.Hostname = host
		return tx.UpdateNode(n)
	}); err != nil {
		t.Fatal(err)
	}
}

// run starts a loop of r over a new store, inside the test's bubble, and
// stops it when the test ends, checking it returned nil.
func run(t *testing.T, r *nodes, cfg loop.Config) (*store.MemoryStore, *loop.Loop[string]) {
	t.Helper()
	s := cfg.Store
	if s == nil {
		s = store.NewMemoryStore(nil)
		cfg.Store = s
	}
	cfg.Name = "test"
	cfg.Filters = []store.EventFilter{store.ByKinds(api.KindNode)}
	if cfg.Log == nil {
		cfg.Log = testutil.DiscardLogger()
	}
	l := loop.New[string](cfg, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})
	return s, l
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestEverythingOnceAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := store.NewMemoryStore(nil)
		create(t, s, node("a", "ha"), node("b", "hb"))
		r := newNodes()
		run(t, r, loop.Config{Store: s})
		synctest.Wait()
		got := r.took()
		slices.Sort(got)
		same(t, "reconciled", got, []string{"a=ha@0s", "b=hb@0s"})
	})
}

// Many events about one key, delivered before the loop gets to it, make one
// reconciliation, which sees the last of them.
func TestBurstOfEventsIsOneReconciliation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newNodes()
		s, _ := run(t, r, loop.Config{})
		synctest.Wait()
		// One transaction of many changes: the loop takes in all of
		// them before reconciling.
		if err := s.Update(func(tx store.Tx) error {
			for i := range 50 {
				if err := tx.CreateNode(node(fmt.Sprintf("n%02d", i), "h")); err != nil {
					return err
				}
			}
			n := tx.GetNode("n07")
			n.Description.Hostname = "last"
			return tx.UpdateNode(n)
		}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		got := r.took()
		if len(got) != 50 {
			t.Fatalf("reconciled %d times, want 50 (one per key): %q", len(got), got)
		}
		if !slices.Contains(got, "n07=last@0s") {
			t.Fatalf("n07 was not reconciled once with its last state: %q", got)
		}
	})
}

func TestRequeueAfterAndRequeue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newNodes()
		r.result = func(id string, n int) (loop.Result, error) {
			switch {
			case id == "later" && n < 3:
				return loop.Result{RequeueAfter: 10 * time.Second}, nil
			case id == "more" && n < 3:
				return loop.Result{Requeue: true}, nil
			}
			return loop.Result{}, nil
		}
		s := store.NewMemoryStore(nil)
		create(t, s, node("later", "l"), node("more", "m"))
		run(t, r, loop.Config{Store: s})
		synctest.Wait()
		got := r.took()
		slices.Sort(got)
		same(t, "at once", got, []string{"later=l@0s", "more=m@0s", "more=m@0s", "more=m@0s"})
		time.Sleep(10*time.Second - time.Nanosecond)
		synctest.Wait()
		same(t, "just before the wait", r.took(), nil)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		same(t, "after the waits", r.took(), []string{"later=l@10s", "later=l@20s"})
	})
}

// An event about a waiting key reconciles it at once, and its wait is then
// what that reconciliation returns.
func TestAddReplacesTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newNodes()
		r.result = func(string, int) (loop.Result, error) { return loop.Result{RequeueAfter: time.Minute}, nil }
		s := store.NewMemoryStore(nil)
		create(t, s, node("a", "1"))
		run(t, r, loop.Config{Store: s})
		synctest.Wait()
		time.Sleep(30 * time.Second)
		rename(t, s, "a", "2")
		synctest.Wait()
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		same(t, "reconciled", r.took(), []string{"a=1@0s", "a=2@30s", "a=2@1m30s"})
	})
}

// A key added sooner than it waits is reconciled at the sooner time; a
// later AddAfter does not delay it.
func TestAddAfterKeepsTheSoonest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newNodes()
		_, l := run(t, r, loop.Config{})
		synctest.Wait()
		q := l.Queue()
		q.AddAfter("x", 5*time.Second)
		q.AddAfter("x", 2*time.Second)
		q.AddAfter("x", 9*time.Second)
		if q.Len() != 1 {
			t.Fatalf("Len = %d, want 1", q.Len())
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		same(t, "reconciled", r.took(), []string{"x=gone@2s"})
	})
}

func TestFailuresBackOffPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newNodes()
		r.result = func(id string, n int) (loop.Result, error) {
			if id == "bad" && n <= 4 {
				return loop.Result{}, errors.New("boom")
			}
			return loop.Result{}, nil
		}
		s := store.NewMemoryStore(nil)
		create(t, s, node("bad", "b"), node("good", "g"))
		logs := &syncWriter{w: &bytes.Buffer{}}
		run(t, r, loop.Config{Store: s, Log: slog.New(slog.NewTextHandler(logs, nil))})
		time.Sleep(time.Minute)
		synctest.Wait()
		got := r.took()
		same(t, "reconciled", got, []string{"bad=b@0s", "good=g@0s", "bad=b@100ms", "bad=b@300ms", "bad=b@700ms", "bad=b@1.5s"})
		if n := strings.Count(logs.String(), "reconcile failed"); n != 4 {
			t.Fatalf("%d failures logged, want 4:\n%s", n, logs.String())
		}

		// A success forgets the failures: the next one waits Base again.
		r.set(func(id string, n int) (loop.Result, error) {
			if n == 6 {
				return loop.Result{}, errors.New("again")
			}
			return loop.Result{}, nil
		})
		start := time.Since(r.start)
		rename(t, s, "bad", "b2")
		time.Sleep(time.Minute)
		synctest.Wait()
		same(t, "after a success", r.took(), []string{
			fmt.Sprintf("bad=b2@%v", start), fmt.Sprintf("bad=b2@%v", start+100*time.Millisecond)})
	})
}

// A conflict is retried on the backoff too, but is not worth a warning:
// someone else wrote first, and the loop will see it.
func TestConflictsAreNotWarnings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newNodes()
		r.result = func(_ string, n int) (loop.Result, error) {
			if n == 1 {
				return loop.Result{}, fmt.Errorf("write: %w", store.ErrConflict)
			}
			return loop.Result{}, nil
		}
		s := store.NewMemoryStore(nil)
		create(t, s, node("a", "h"))
		logs := &syncWriter{w: &bytes.Buffer{}}
		run(t, r, loop.Config{Store: s, Log: slog.New(slog.NewTextHandler(logs, nil))})
		time.Sleep(time.Second)
		synctest.Wait()
		same(t, "reconciled", r.took(), []string{"a=h@0s", "a=h@100ms"})
		if strings.Contains(logs.String(), "WARN") {
			t.Fatalf("a conflict was logged as a warning:\n%s", logs.String())
		}
	})
}

// A key added while it is reconciled runs again afterwards: the change may
// have come too late for the reconciliation under way.
func TestAddDuringReconcileRunsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newNodes()
		s, l := run(t, r, loop.Config{})
		synctest.Wait()
		added := false
		r.mu.Lock()
		r.during = func(id string) {
			if !added {
				added = true
				l.Queue().Add(id)
				l.Queue().Add(id)
			}
		}
		r.mu.Unlock()
		create(t, s, node("a", "1"))
		synctest.Wait()
		same(t, "reconciled", r.took(), []string{"a=1@0s", "a=1@0s"})
	})
}

// A restore replaces the state: the loop reads it afresh (Resync) and
// reconciles every key, those only the old state had too, and those that
// were waiting for a time.
func TestRestoreReconcilesEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The snapshot: nodes a and b.
		other := store.NewMemoryStore(nil)
		create(t, other, node("a", "restored"), node("b", "restored"))
		var snap bytes.Buffer
		if err := other.Save(&snap); err != nil {
			t.Fatal(err)
		}

		r := newNodes()
		r.result = func(id string, _ int) (loop.Result, error) {
			if id == "w" {
				return loop.Result{RequeueAfter: time.Hour}, nil
			}
			return loop.Result{}, nil
		}
		s := store.NewMemoryStore(nil)
		create(t, s, node("a", "old"), node("c", "old"), node("w", "old"))
		run(t, r, loop.Config{Store: s, Shared: true})
		synctest.Wait()
		r.took()

		time.Sleep(time.Second)
		r.set(nil)
		if err := s.Restore(&snap); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		got := r.took()
		slices.Sort(got)
		// c and w are gone (the view says so), a changed, b is new.
		same(t, "after the restore", got, []string{"a=restored@1s", "b=restored@1s", "c=gone@1s", "w=gone@1s"})
		r.mu.Lock()
		resyncs := r.resyncs
		r.mu.Unlock()
		if resyncs != 2 {
			t.Fatalf("Resync ran %d times, want 2 (start and restore)", resyncs)
		}
		// The watch goes on after the restore.
		rename(t, s, "b", "after")
		synctest.Wait()
		same(t, "after a change", r.took(), []string{"b=after@1s"})
		// w's hour-long wait was made ready by the restore and is gone.
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		same(t, "later", r.took(), nil)
	})
}

func TestStopsWithContextAndWhenStoreCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := store.NewMemoryStore(nil)
		l := loop.New[string](loop.Config{Name: "test", Store: s, Log: testutil.DiscardLogger()}, newNodes())
		done := make(chan error, 1)
		go func() { done <- l.Run(context.Background()) }()
		synctest.Wait()
		s.Close()
		err := <-done
		if err == nil || !strings.Contains(err.Error(), "test: store watch closed") {
			t.Fatalf("Run after Close = %v, want the watch closed, naming the loop", err)
		}
		l = loop.New[string](loop.Config{Name: "test", Store: s}, newNodes())
		if err := l.Run(context.Background()); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Run on a closed store = %v, want ErrClosed", err)
		}
	})
}

// syncWriter makes a buffer safe for a logger used from the loop's goroutine
// while the test reads it.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
