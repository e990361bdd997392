package store

import (
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

// replay applies events to a model of the state, failing on any event that
// does not follow from the model: a create of something that exists, an
// update whose Old is not exactly what the model holds, a delete of
// something else. A missed or duplicated event breaks the chain.
type replay struct {
	t       testing.TB
	state   map[key]api.Object
	version uint64 // last commit seen
	pending uint64 // version of the events of the open transaction, if any
	commits int
}

func newReplay(t testing.TB, state map[key]api.Object) *replay {
	return &replay{t: t, state: state}
}

func (r *replay) apply(ev Event) {
	r.t.Helper()
	if ev.Action == ActionCommit {
		if ev.Version <= r.version {
			r.t.Fatalf("commit %d after commit %d", ev.Version, r.version)
		}
		if r.pending != 0 && r.pending != ev.Version {
			r.t.Fatalf("events of version %d closed by commit %d", r.pending, ev.Version)
		}
		r.version, r.pending = ev.Version, 0
		r.commits++
		return
	}
	if ev.Version <= r.version || (r.pending != 0 && ev.Version != r.pending) {
		r.t.Fatalf("%s event with version %d after commit %d (open transaction %d)", ev.Action, ev.Version, r.version, r.pending)
	}
	r.pending = ev.Version
	k := key{ev.Object.Kind(), ev.Object.GetID()}
	cur, exists := r.state[k]
	switch ev.Action {
	case ActionCreate:
		if exists {
			r.t.Fatalf("create of existing %v at %d", k, ev.Version)
		}
		if ev.Object.GetMeta().Version != ev.Version {
			r.t.Fatalf("created %v has version %d, event %d", k, ev.Object.GetMeta().Version, ev.Version)
		}
		r.state[k] = ev.Object
	case ActionUpdate:
		if !exists || !reflect.DeepEqual(cur, ev.Old) {
			r.t.Fatalf("update of %v at %d: Old %+v, model %+v", k, ev.Version, ev.Old, cur)
		}
		if ev.Object.GetMeta().Version != ev.Version {
			r.t.Fatalf("updated %v has version %d, event %d", k, ev.Object.GetMeta().Version, ev.Version)
		}
		r.state[k] = ev.Object
	case ActionDelete:
		if !exists || !reflect.DeepEqual(cur, ev.Object) {
			r.t.Fatalf("delete of %v at %d: object %+v, model %+v", k, ev.Version, ev.Object, cur)
		}
		delete(r.state, k)
	default:
		r.t.Fatalf("unexpected %s event", ev.Action)
	}
}

// TestWatcherSeesEveryCommitOnce: many concurrent writers; a watcher from
// the empty store must see every committed change exactly once, in commit
// order, and replaying them must give the final state.
func TestWatcherSeesEveryCommitOnce(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		w := s.Watch()
		defer w.Close()
		var wg sync.WaitGroup
		var mu sync.Mutex
		committed := 0
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := randomWriter(s, int64(i), 150, nil)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				committed += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		// A last commit marks the end of the stream (the last entry of the
		// log may have been refused, which publishes nothing).
		mustUpdate(t, s, func(tx Tx) error { return tx.CreateNetwork(&api.Network{ID: "end"}) })
		committed++
		r := newReplay(t, map[key]api.Object{})
		for _, ev := range eventsUntilCommit(t, w, s.Index(), 30*time.Second) {
			r.apply(ev)
		}
		if r.commits != committed {
			t.Fatalf("saw %d commits, writers committed %d", r.commits, committed)
		}
		if !reflect.DeepEqual(r.state, allObjects(t, s)) {
			t.Fatal("replayed events differ from the final state")
		}
	})
}

// TestViewAndWatchNeverMissesOrDuplicates subscribes while writers run: the
// snapshot plus the events must equal the final state.
func TestViewAndWatchNeverMissesOrDuplicates(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		for round := 0; round < 3; round++ {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := randomWriter(s, int64(round*10+i), 1000000, stop); err != nil {
						t.Error(err)
					}
				}()
			}
			// Subscribe while the writers are busy.
			waitIndex(t, s, s.Index()+50)
			var snapshot map[key]api.Object
			w, err := s.ViewAndWatch(func(tx ReadTx) error {
				snapshot = make(map[key]api.Object)
				for _, kind := range []api.Kind{api.KindTask, api.KindNode} {
					var objs []api.Object
					if kind == api.KindTask {
						ts, err := tx.FindTasks(All)
						if err != nil {
							return err
						}
						for _, o := range ts {
							objs = append(objs, o)
						}
					} else {
						ns, err := tx.FindNodes(All)
						if err != nil {
							return err
						}
						for _, o := range ns {
							objs = append(objs, o)
						}
					}
					for _, o := range objs {
						snapshot[key{o.Kind(), o.GetID()}] = o
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			waitIndex(t, s, s.Index()+50)
			close(stop)
			wg.Wait()
			// A last commit marks the end of the stream.
			mustUpdate(t, s, func(tx Tx) error { return tx.CreateNetwork(&api.Network{ID: fmt.Sprintf("end%d", round)}) })
			r := newReplay(t, snapshot)
			for _, ev := range eventsUntilCommit(t, w, s.Index(), 30*time.Second) {
				r.apply(ev)
			}
			w.Close()
			final := allObjects(t, s)
			for k := range final {
				if k.kind == api.KindNetwork {
					delete(final, k)
					delete(r.state, k)
				}
			}
			if !reflect.DeepEqual(r.state, final) {
				t.Fatalf("round %d: snapshot + events differ from the final state", round)
			}
		}
	})
}

func TestWatchFilters(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	type seen struct {
		action Action
		id     string
	}
	filters := []struct {
		name    string
		filters []EventFilter
		want    []seen
	}{
		{"all", nil, []seen{
			{ActionCreate, "n1"}, {ActionCreate, "t1"}, {ActionCreate, "t2"}, {ActionCommit, ""},
			{ActionUpdate, "t1"}, {ActionCommit, ""},
			{ActionDelete, "n1"}, {ActionCommit, ""}, {ActionRestore, ""}}},
		{"tasks", []EventFilter{ByKinds(api.KindTask)}, []seen{
			{ActionCreate, "t1"}, {ActionCreate, "t2"}, {ActionCommit, ""},
			{ActionUpdate, "t1"}, {ActionCommit, ""}, {ActionCommit, ""}, {ActionRestore, ""}}},
		{"creates", []EventFilter{ByActions(ActionCreate)}, []seen{
			{ActionCreate, "n1"}, {ActionCreate, "t1"}, {ActionCreate, "t2"}}},
		{"node deletes and commits", []EventFilter{ByKinds(api.KindNode), ByActions(ActionDelete, ActionCommit)}, []seen{
			{ActionCommit, ""}, {ActionCommit, ""}, {ActionDelete, "n1"}, {ActionCommit, ""}}},
		{"tasks of s1", []EventFilter{TaskOfService("s1")}, []seen{
			{ActionCreate, "t1"}, {ActionCommit, ""}, {ActionUpdate, "t1"}, {ActionCommit, ""}, {ActionCommit, ""}, {ActionRestore, ""}}},
		// t1 moves from n1 to n2: both nodes' watchers see the move.
		{"tasks on n1", []EventFilter{TaskOnNode("n1")}, []seen{
			{ActionCreate, "t1"}, {ActionCommit, ""}, {ActionUpdate, "t1"}, {ActionCommit, ""}, {ActionCommit, ""}, {ActionRestore, ""}}},
		{"tasks on n2", []EventFilter{TaskOnNode("n2")}, []seen{
			{ActionCreate, "t2"}, {ActionCommit, ""}, {ActionUpdate, "t1"}, {ActionCommit, ""}, {ActionCommit, ""}, {ActionRestore, ""}}},
	}
	var ws []*Watcher
	for _, f := range filters {
		ws = append(ws, s.Watch(f.filters...))
	}
	mustUpdate(t, s, func(tx Tx) error {
		return errorsJoin(
			tx.CreateNode(node("n1", "")),
			tx.CreateTask(&api.Task{ID: "t1", ServiceID: "s1", NodeID: "n1"}),
			tx.CreateTask(&api.Task{ID: "t2", ServiceID: "s2", NodeID: "n2"}))
	})
	mustUpdate(t, s, func(tx Tx) error {
		t1 := tx.GetTask("t1")
		t1.NodeID = "n2"
		return tx.UpdateTask(t1)
	})
	mustUpdate(t, s, func(tx Tx) error { return tx.DeleteNode("n1") })
	// Restore events pass the object filters too.
	empty := NewMemoryStore(nil)
	snap := saveBytes(t, empty)
	if err := s.Restore(snap); err != nil {
		t.Fatal(err)
	}
	for i, f := range filters {
		t.Run(f.name, func(t *testing.T) {
			deadline := time.Now().Add(10 * time.Second)
			var got []seen
			for len(got) < len(f.want) {
				ev := nextEvent(t, ws[i], deadline)
				id := ""
				if ev.Object != nil {
					id = ev.Object.GetID()
				}
				got = append(got, seen{ev.Action, id})
			}
			if !slices.Equal(got, f.want) {
				t.Fatalf("got %v\nwant %v", got, f.want)
			}
			select {
			case ev := <-ws[i].Events():
				t.Fatalf("extra event %v", ev)
			default:
			}
			ws[i].Close()
		})
	}
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestSlowWatcherNeverBlocksWriters: a watcher nobody reads does not slow
// the writers, and still delivers everything afterwards.
func TestSlowWatcherNeverBlocksWriters(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	w := s.Watch()
	defer w.Close()
	const n = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			if err := s.Update(func(tx Tx) error { return tx.CreateTask(&api.Task{ID: fmt.Sprint(i)}) }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writers blocked by a watcher nobody reads")
	}
	evs := eventsUntilCommit(t, w, n, 30*time.Second)
	if len(evs) != 2*n {
		t.Fatalf("got %d events, want %d", len(evs), 2*n)
	}
}

func TestWatcherCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s := NewMemoryStore(nil)
	var ws []*Watcher
	for i := 0; i < 50; i++ {
		ws = append(ws, s.Watch())
	}
	for i := 0; i < 20; i++ {
		mustUpdate(t, s, func(tx Tx) error { return tx.CreateNode(node(fmt.Sprint(i), "")) })
	}
	// Half are closed with events still queued, half by closing the store.
	for _, w := range ws[:25] {
		w.Close()
		w.Close() // idempotent
		if _, ok := <-drain(w); ok {
			t.Fatal("closed watcher's channel still open")
		}
	}
	v, err := s.ViewAndWatch(func(ReadTx) error { return fmt.Errorf("fail") })
	if err == nil || v != nil {
		t.Fatalf("ViewAndWatch with a failing fn: %v, %v", v, err)
	}
	s.Close()
	for _, w := range ws[25:] {
		if _, ok := <-drain(w); ok {
			t.Fatal("store closed but watcher channel open")
		}
		w.Close() // after the store closed
	}
	// A watcher of a closed store is closed from the start.
	if _, ok := <-drain(s.Watch()); ok {
		t.Fatal("watcher of a closed store is open")
	}
	if _, err := s.ViewAndWatch(func(ReadTx) error { return nil }); err != ErrClosed {
		t.Fatalf("ViewAndWatch on a closed store: %v", err)
	}
	waitGoroutines(t, before, 10*time.Second)
}

// drain returns a channel that yields once the watcher's channel is closed.
func drain(w *Watcher) <-chan Event {
	out := make(chan Event)
	go func() {
		defer close(out)
		for range w.Events() {
		}
	}()
	return out
}

// waitIndex waits until the store's index reaches index.
func waitIndex(t testing.TB, s *MemoryStore, index uint64) {
	t.Helper()
	testutil.EventuallyWhy(t, 30*time.Second, fmt.Sprintf("store index %d", index), func() (bool, string) {
		got := s.Index()
		return got >= index, fmt.Sprintf("at %d", got)
	})
}
