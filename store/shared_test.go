package store

import (
	"errors"
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

// TestOwnedWritesKeepTheObject: a service handed over (CreateServiceOwned,
// UpdateServiceOwned) is stored as it is, with its version and times set
// on it; one written the plain way is copied in, so that the caller's
// later changes reach nothing stored.
func TestOwnedWritesKeepTheObject(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	stored := func(id string) (out *api.Service) {
		s.ViewShared(func(tx ReadTx) { out = tx.GetService(id) })
		return out
	}
	owned := &api.Service{ID: "s1", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "owned"}}}
	plain := &api.Service{ID: "s2", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "plain"}}}
	if err := s.Update(func(tx Tx) error {
		if err := tx.CreateServiceOwned(owned); err != nil {
			return err
		}
		return tx.CreateService(plain)
	}); err != nil {
		t.Fatal(err)
	}
	if got := stored("s1"); got != owned || owned.Meta.Version == 0 || owned.Meta.CreatedAt.IsZero() {
		t.Fatalf("owned create: stored %p (given %p), meta %+v", got, owned, owned.Meta)
	}
	if got := stored("s2"); got == plain || plain.Meta.Version != 0 {
		t.Fatalf("plain create: stored %p (given %p), the given's meta %+v", got, plain, plain.Meta)
	}

	next := *stored("s1")
	next.Spec.Annotations.Labels = map[string]string{"v": "2"}
	if err := s.Update(func(tx Tx) error { return tx.UpdateServiceOwned(&next) }); err != nil {
		t.Fatal(err)
	}
	if got := stored("s1"); got != &next || next.Meta.Version <= owned.Meta.Version || next.Meta.CreatedAt != owned.Meta.CreatedAt {
		t.Fatalf("owned update: stored %p (given %p), meta %+v after %+v", got, &next, next.Meta, owned.Meta)
	}
	stale := *owned // the first version: a conflict, and nothing stored
	if err := s.Update(func(tx Tx) error { return tx.UpdateServiceOwned(&stale) }); !errors.Is(err, ErrConflict) {
		t.Fatalf("owned update of a stale version: %v, want ErrConflict", err)
	}
	if got := stored("s1"); got != &next {
		t.Fatal("a refused owned update replaced the stored service")
	}
	if err := s.Update(func(tx Tx) error { return tx.UpdateServiceOwned(nil) }); err == nil {
		t.Fatal("an owned update of nil was accepted")
	}
}
