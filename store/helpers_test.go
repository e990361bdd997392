package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

// fakeRaft is an in-memory replicated log: Propose appends the entry and
// applies it, in order, to every replica, the proposing store first, the way
// raft applies committed entries on every manager.
type fakeRaft struct {
	mu       sync.Mutex
	replicas []*MemoryStore
	index    uint64
	entries  [][]byte
	// fail, when set, refuses proposals before they reach the log.
	fail error
}

func (f *fakeRaft) Propose(ctx context.Context, data []byte) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.index++
	f.entries = append(f.entries, data)
	var leaderErr error
	for i, r := range f.replicas {
		err := r.Apply(f.index, data)
		if i == 0 {
			leaderErr = err
		}
	}
	return f.index, leaderErr
}

func (f *fakeRaft) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// proposalSizes decodes the log and returns the number of actions per entry.
func (f *fakeRaft) proposalSizes(t testing.TB) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, e := range f.entries {
		a, err := decodeActions(e)
		if err != nil {
			t.Fatalf("decode log entry: %v", err)
		}
		out = append(out, len(a))
	}
	return out
}

// newReplicated returns n stores sharing one fakeRaft; the first is the one
// tests write through.
func newReplicated(t testing.TB, n int) (*fakeRaft, []*MemoryStore) {
	f := &fakeRaft{}
	for i := 0; i < n; i++ {
		s := NewMemoryStore(f)
		f.replicas = append(f.replicas, s)
	}
	t.Cleanup(func() {
		for _, s := range f.replicas {
			s.Close()
		}
	})
	return f, f.replicas
}

// mode is how a test's store applies writes.
type mode struct {
	name string
	new  func(t testing.TB) *MemoryStore
}

var modes = []mode{
	{"direct", func(t testing.TB) *MemoryStore {
		s := NewMemoryStore(nil)
		t.Cleanup(s.Close)
		return s
	}},
	{"replicated", func(t testing.TB) *MemoryStore {
		_, rs := newReplicated(t, 1)
		return rs[0]
	}},
}

func forModes(t *testing.T, fn func(t *testing.T, s *MemoryStore)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { fn(t, m.new(t)) })
	}
}

func mustUpdate(t testing.TB, s *MemoryStore, fn func(Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func node(id, name string) *api.Node {
	return &api.Node{ID: id, Spec: api.NodeSpec{Annotations: api.Annotations{Name: name}, Role: api.NodeRoleWorker}}
}

func getNode(s *MemoryStore, id string) (n *api.Node) {
	s.View(func(tx ReadTx) { n = tx.GetNode(id) })
	return n
}

// fill sets every exported field reachable from v to a non-zero value
// (valid where the type demands it: task states), so that a round trip that
// drops or mangles any field shows up in a deep comparison.
func fill(v reflect.Value, seed *int) {
	*seed++
	switch v.Type() {
	case reflect.TypeOf(time.Time{}):
		v.Set(reflect.ValueOf(time.Date(2025, 1, 2, 3, 4, 5, *seed, time.UTC)))
		return
	case reflect.TypeOf(api.TaskState(0)):
		v.Set(reflect.ValueOf(api.TaskState(1 + *seed%int(api.TaskStateOrphaned))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *seed))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*seed))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*seed))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*seed) + 0.25)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), seed)
		v.Set(p)
	case reflect.Slice:
		sl := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(sl.Index(i), seed)
		}
		v.Set(sl)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		e := reflect.New(v.Type().Elem()).Elem()
		fill(k, seed)
		fill(e, seed)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), seed)
			}
		}
	default:
		panic(fmt.Sprintf("fill: unhandled kind %s (%s)", v.Kind(), v.Type()))
	}
}

// filled returns one fully populated object of every kind.
func filled(seed int) []api.Object {
	var out []api.Object
	for _, ki := range kindList {
		o := ki.newObject()
		fill(reflect.ValueOf(o).Elem(), &seed)
		out = append(out, o)
	}
	return out
}

// createObject creates any object through the typed Tx method.
func createObject(tx Tx, o api.Object) error {
	switch v := o.(type) {
	case *api.Cluster:
		return tx.CreateCluster(v)
	case *api.Node:
		return tx.CreateNode(v)
	case *api.Service:
		return tx.CreateService(v)
	case *api.Task:
		return tx.CreateTask(v)
	case *api.Network:
		return tx.CreateNetwork(v)
	case *api.Secret:
		return tx.CreateSecret(v)
	case *api.Config:
		return tx.CreateConfig(v)
	}
	return fmt.Errorf("unknown object %T", o)
}

func updateObject(tx Tx, o api.Object) error {
	switch v := o.(type) {
	case *api.Cluster:
		return tx.UpdateCluster(v)
	case *api.Node:
		return tx.UpdateNode(v)
	case *api.Service:
		return tx.UpdateService(v)
	case *api.Task:
		return tx.UpdateTask(v)
	case *api.Network:
		return tx.UpdateNetwork(v)
	case *api.Secret:
		return tx.UpdateSecret(v)
	case *api.Config:
		return tx.UpdateConfig(v)
	}
	return fmt.Errorf("unknown object %T", o)
}

func deleteObject(tx Tx, kind api.Kind, id string) error {
	switch kind {
	case api.KindCluster:
		return tx.DeleteCluster(id)
	case api.KindNode:
		return tx.DeleteNode(id)
	case api.KindService:
		return tx.DeleteService(id)
	case api.KindTask:
		return tx.DeleteTask(id)
	case api.KindNetwork:
		return tx.DeleteNetwork(id)
	case api.KindSecret:
		return tx.DeleteSecret(id)
	case api.KindConfig:
		return tx.DeleteConfig(id)
	}
	return fmt.Errorf("unknown kind %q", kind)
}

func getObject(tx ReadTx, kind api.Kind, id string) api.Object {
	var o api.Object
	switch kind {
	case api.KindCluster:
		if v := tx.GetCluster(id); v != nil {
			o = v
		}
	case api.KindNode:
		if v := tx.GetNode(id); v != nil {
			o = v
		}
	case api.KindService:
		if v := tx.GetService(id); v != nil {
			o = v
		}
	case api.KindTask:
		if v := tx.GetTask(id); v != nil {
			o = v
		}
	case api.KindNetwork:
		if v := tx.GetNetwork(id); v != nil {
			o = v
		}
	case api.KindSecret:
		if v := tx.GetSecret(id); v != nil {
			o = v
		}
	case api.KindConfig:
		if v := tx.GetConfig(id); v != nil {
			o = v
		}
	}
	return o
}

// allObjects returns every object of the store by kind and ID.
func allObjects(t testing.TB, s *MemoryStore) map[key]api.Object {
	t.Helper()
	out := make(map[key]api.Object)
	s.View(func(tx ReadTx) {
		add := func(o api.Object) { out[key{o.Kind(), o.GetID()}] = o }
		cs, err1 := tx.FindClusters(All)
		ns, err2 := tx.FindNodes(All)
		ss, err3 := tx.FindServices(All)
		ts, err4 := tx.FindTasks(All)
		ws, err5 := tx.FindNetworks(All)
		xs, err6 := tx.FindSecrets(All)
		ys, err7 := tx.FindConfigs(All)
		if err := errors.Join(err1, err2, err3, err4, err5, err6, err7); err != nil {
			t.Errorf("find all: %v", err)
		}
		for _, o := range cs {
			add(o)
		}
		for _, o := range ns {
			add(o)
		}
		for _, o := range ss {
			add(o)
		}
		for _, o := range ts {
			add(o)
		}
		for _, o := range ws {
			add(o)
		}
		for _, o := range xs {
			add(o)
		}
		for _, o := range ys {
			add(o)
		}
	})
	return out
}

// nextEvent waits for one event or fails the test at the deadline.
func nextEvent(t testing.TB, w *Watcher, deadline time.Time) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watcher channel closed")
		}
		return ev
	case <-time.After(time.Until(deadline)):
		t.Fatalf("no event before the deadline")
	}
	return Event{}
}

// eventsUntilCommit reads events until the commit event of index.
func eventsUntilCommit(t testing.TB, w *Watcher, index uint64, timeout time.Duration) []Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var out []Event
	for {
		ev := nextEvent(t, w, deadline)
		out = append(out, ev)
		if ev.Action == ActionCommit && ev.Version >= index {
			return out
		}
	}
}

// waitGoroutines waits until at most n goroutines run; if they do not, it
// prints every goroutine's stack, which names the one that leaked.
func waitGoroutines(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	ended := false
	defer func() {
		if !ended { // EventuallyWhy failed the test (t.Fatalf runs the defers)
			buf := make([]byte, 1<<20)
			t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
	}()
	testutil.EventuallyWhy(t, timeout, fmt.Sprintf("at most %d goroutines", n), func() (bool, string) {
		got := runtime.NumGoroutine()
		return got <= n, fmt.Sprintf("%d running", got)
	})
	ended = true
}
