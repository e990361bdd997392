package store

import (
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// TestViewAndWatchShared: a shared watcher's events carry the stored object
// itself (every shared reader gets the same one), a plain watcher's a copy.
func TestViewAndWatchShared(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	none := func(ReadTx) error { return nil }
	a, err := s.ViewAndWatchShared(none, ByKinds(api.KindTask))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := s.ViewAndWatchShared(none, ByKinds(api.KindTask))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := s.ViewAndWatch(none, ByKinds(api.KindTask))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	task := &api.Task{ID: "t1", ServiceID: "s1", Slot: 1, Spec: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"x"}}}}
	if err := s.Update(func(tx Tx) error { return tx.CreateTask(task) }); err != nil {
		t.Fatal(err)
	}
	next := func(w *Watcher) api.Object {
		t.Helper()
		select {
		case ev := <-w.Events():
			return ev.Object
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
			return nil
		}
	}
	oa, ob, oc := next(a), next(b), next(c)
	if oa != ob {
		t.Fatal("two shared watchers got different objects for one event")
	}
	if oc == oa {
		t.Fatal("a plain watcher got the shared object")
	}
	if oa.(*api.Task).ID != "t1" || oc.(*api.Task).ID != "t1" {
		t.Fatalf("objects %+v, %+v", oa, oc)
	}
}
