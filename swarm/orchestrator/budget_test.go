package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// stepWithin reconciles once under a budget of max task writes, applies the
// plan, and fails if the plan wrote more than max plus the one decision that
// may straddle it (a replacement writes two tasks).
func (s *sim) stepWithin(max int) Plan {
	s.t.Helper()
	in := s.input()
	in.MaxChanges = max
	p := s.reconcile(in)
	if n := len(p.Create) + len(p.Update) + len(p.Delete); n > max+1 {
		s.t.Fatalf("plan writes %d tasks, budget %d", n, max)
	}
	s.apply(p)
	return p
}

func TestScaleUpCreatesABudgetAtATime(t *testing.T) {
	s := newSim(t, replicated("web", 2500), readyNode("n1"))
	var created []int
	for {
		p := s.stepWithin(1000)
		created = append(created, len(p.Create))
		if !p.More {
			break
		}
		if len(created) > 5 {
			t.Fatalf("no end to the scale-up: %v", created)
		}
	}
	if fmt.Sprint(created) != "[1000 1000 500]" {
		t.Fatalf("created per plan %v, want [1000 1000 500]", created)
	}
	slots := map[uint64]bool{}
	for _, tk := range s.tasks {
		if slots[tk.Slot] || tk.Slot < 1 || tk.Slot > 2500 {
			t.Fatalf("slot %d twice or out of 1..2500", tk.Slot)
		}
		slots[tk.Slot] = true
	}
	if p := s.stepWithin(1000); !p.Empty() || p.More {
		t.Fatalf("settled service plans %d creations, more %v", len(p.Create), p.More)
	}
}

// TestBudgetDefault: an Input without MaxChanges gets DefaultMaxChanges, so
// no caller can ask for a billion tasks in one plan.
func TestBudgetDefault(t *testing.T) {
	p := Reconcile(Input{Service: replicated("web", 1_000_000_000), ServiceID: "svc-web", Now: t0})
	if len(p.Create) != DefaultMaxChanges || !p.More {
		t.Fatalf("%d creations, more %v; want %d and more", len(p.Create), p.More, DefaultMaxChanges)
	}
}

func TestScaleDownDuringScaleUpTakesEffectNextPlan(t *testing.T) {
	s := newSim(t, replicated("web", 100_000), readyNode("n1"))
	s.stepWithin(1000)
	s.stepWithin(1000)
	s.svc.Spec.Mode.Replicated.Replicas = 3
	s.svc.SpecVersion++
	for i := 0; ; i++ {
		p := s.stepWithin(1000)
		if len(p.Create) != 0 {
			t.Fatalf("plan %d after the scale-down creates %d tasks", i, len(p.Create))
		}
		if !p.More {
			break
		}
	}
	if n := len(s.wanted()); n != 3 {
		t.Fatalf("%d slots wanted after the scale-down, want 3", n)
	}
	// Nothing was assigned: the manager ended the unwanted tasks itself,
	// and they go once the next plans trim them.
	for i := 0; i < 10 && len(s.tasks) > 3; i++ {
		s.stepWithin(1000)
	}
	if len(s.tasks) != 3 {
		t.Fatalf("%d tasks left, want the 3 wanted", len(s.tasks))
	}
}

func TestRemovalDuringScaleUpTakesEffectNextPlan(t *testing.T) {
	s := newSim(t, replicated("web", 100_000), readyNode("n1"))
	s.stepWithin(1000)
	s.work() // some of them run
	s.stepWithin(1000)
	s.svc = nil
	for i := 0; len(s.tasks) > 0; i++ {
		if i > 10 {
			t.Fatalf("%d tasks left after 10 plans", len(s.tasks))
		}
		if p := s.stepWithin(1000); len(p.Create) != 0 {
			t.Fatalf("plan %d after the removal creates %d tasks", i, len(p.Create))
		}
		s.work() // the running ones stop
	}
}

// TestRolloutBatchWithinBudget: parallelism 0 ("all") replaces half a
// budget of tasks at a time, each batch whole.
func TestRolloutBatchWithinBudget(t *testing.T) {
	s := newSim(t, replicated("web", 30), readyNode("n1"))
	for i := 0; i < 5; i++ {
		s.stepWithin(10)
		s.work()
	}
	if s.up() != 30 {
		t.Fatalf("%d up before the update, want 30", s.up())
	}
	update(s, api.UpdateConfig{Parallelism: 0, Order: api.UpdateOrderStopFirst})
	p := s.stepWithin(10)
	if len(p.Create) != 5 || p.More != true {
		t.Fatalf("first batch: %d replacements, more %v; want 5 and more", len(p.Create), p.More)
	}
	for i := 0; i < 100 && s.svc.UpdateStatus.GetState() != api.UpdateStateCompleted; i++ {
		s.stepWithin(10)
		s.work()
		s.now = s.now.Add(time.Second)
	}
	if st := s.svc.UpdateStatus.GetState(); st != api.UpdateStateCompleted || s.up() != 30 {
		t.Fatalf("update %s with %d up, want completed with 30", st, s.up())
	}
}

// TestBudgetKeepsPlansPure: a plan cut short by its budget makes the same
// decisions for the same input (task IDs aside, which are new each time).
func TestBudgetKeepsPlansPure(t *testing.T) {
	s := newSim(t, global("agent"))
	for i := range 50 {
		s.nodes[fmt.Sprintf("n%02d", i)] = readyNode(fmt.Sprintf("n%02d", i))
	}
	s.stepWithin(100)
	s.work()
	for id := range s.nodes {
		delete(s.nodes, id) // every node left: every task is forgotten
	}
	in := s.input()
	in.MaxChanges = 10
	a, b := Reconcile(in), Reconcile(in)
	if ids(a.Update) != ids(b.Update) || ids(a.Delete) != ids(b.Delete) || len(a.Update)+len(a.Delete) == 0 {
		t.Fatalf("two plans of one input differ:\n%s %s\n%s %s", ids(a.Update), ids(a.Delete), ids(b.Update), ids(b.Delete))
	}
}

func ids(ts []*api.Task) string {
	out := ""
	for _, t := range ts {
		out += t.NodeID + " "
	}
	return out
}

// countCreations counts the task creations the store commits after the
// first event that mark accepts, until stop is closed.
func countCreations(w *store.Watcher, mark func(store.Event) bool, stop <-chan struct{}, out chan<- int) {
	n, seen := 0, false
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				out <- n
				return
			}
			_, task := ev.Object.(*api.Task)
			switch {
			case !seen:
				seen = mark(ev)
			case task && ev.Action == store.ActionCreate:
				n++
			}
		case <-stop:
			out <- n
			return
		}
	}
}

// TestLoopSeesScaleDownAndRemovalAtOnce drives the real loop on a store: a
// service of a billion replicas (validation refuses it; the loop must
// survive one all the same, from an older store say) is being created a
// plan at a time when it is scaled down, then removed; each change stops
// the creations within one transaction of the plan under way, and the
// removal leaves nothing behind.
//
// It runs in a synctest bubble, but while the scale-up goes on the loop is
// never idle, so the fake clock stands still: the test waits for the
// creations on a watch, not with sleeps, and checks each outcome once the
// loop settled (synctest.Wait).
func TestLoopSeesScaleDownAndRemovalAtOnce(t *testing.T) {
	synctest.Test(t, testLoopSeesScaleDownAndRemovalAtOnce)
}

func testLoopSeesScaleDownAndRemovalAtOnce(t *testing.T) {
	const budget = 3 * TransactionChanges
	s := store.NewMemoryStore(nil)
	defer s.Close()
	svc := replicated("web", 1_000_000_000)
	if err := s.Update(func(tx store.Tx) error { return tx.CreateService(svc) }); err != nil {
		t.Fatal(err)
	}
	o := New(s, testutil.DiscardLogger())
	o.MaxChanges = budget
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = o.Run(ctx) }()
	defer func() { cancel(); <-done }()

	tasks := func() []*api.Task {
		var ts []*api.Task
		s.View(func(tx store.ReadTx) { ts, _ = tx.FindTasks(store.ByServiceID(svc.ID)) })
		return ts
	}
	scale := func(n int64) {
		t.Helper()
		if err := s.Update(func(tx store.Tx) error {
			cur := tx.GetService(svc.ID)
			cur.Spec.Mode.Replicated.Replicas = n
			cur.SpecVersion++
			return tx.UpdateService(cur)
		}); err != nil {
			t.Fatal(err)
		}
	}
	// underWay waits until the loop created two transactions of tasks.
	underWay := func() {
		w := s.Watch(store.ByKinds(api.KindTask), store.ByActions(store.ActionCreate))
		defer w.Close()
		for range 2 * TransactionChanges {
			<-w.Events()
		}
	}
	underWay()

	// Scale down to 2 while the creations go on.
	w := s.Watch(store.ByKinds(api.KindTask, api.KindService))
	stop, count := make(chan struct{}), make(chan int, 1)
	go countCreations(w, func(ev store.Event) bool {
		svc, ok := ev.Object.(*api.Service)
		return ok && svc.Spec.Mode.Replicated.Replicas == 2
	}, stop, count)
	scale(2)
	synctest.Wait()
	ts := tasks()
	wanted := 0
	for _, tk := range ts {
		if runnable(tk) {
			wanted++
		}
	}
	if wanted != 2 || len(ts) != 2 {
		t.Fatalf("%d wanted of %d tasks after the scale-down, want 2 and the rest gone", wanted, len(ts))
	}
	close(stop)
	w.Close()
	n := <-count
	t.Logf("%d tasks created after the scale-down committed", n)
	if n > TransactionChanges {
		t.Fatalf("%d tasks created after the scale-down committed, want at most one transaction's %d", n, TransactionChanges)
	}

	// Scale up again, and remove the service mid-way.
	scale(1_000_000_000)
	underWay()
	w = s.Watch(store.ByKinds(api.KindTask, api.KindService))
	stop = make(chan struct{})
	go countCreations(w, func(ev store.Event) bool {
		_, ok := ev.Object.(*api.Service)
		return ok && ev.Action == store.ActionDelete
	}, stop, count)
	if err := s.Update(func(tx store.Tx) error { return tx.DeleteService(svc.ID) }); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	if n := len(tasks()); n != 0 {
		t.Fatalf("%d tasks of the removed service left", n)
	}
	close(stop)
	w.Close()
	n = <-count
	t.Logf("%d tasks created after the removal committed", n)
	if n > TransactionChanges {
		t.Fatalf("%d tasks created after the removal committed, want at most one transaction's %d", n, TransactionChanges)
	}
}

// TestChunksKeepDecisionsWhole: 40 tasks fail at once and are restarted;
// written in chunks of 7, each restart (the old task stopped, its successor
// created) lands in one chunk, and every write in exactly one.
func TestChunksKeepDecisionsWhole(t *testing.T) {
	s := newSim(t, replicated("web", 40), readyNode("n1"))
	zero := time.Duration(0)
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero}
	s.converge()
	for _, tk := range s.tasks {
		s.setState(tk, api.TaskStateFailed)
	}
	p := Reconcile(s.input())
	if len(p.Create) != 40 || len(p.Update) != 40 {
		t.Fatalf("plan creates %d and updates %d, want 40 restarts", len(p.Create), len(p.Update))
	}
	seen := map[string]bool{}
	for i, c := range chunks(p, txLimit{writes: 7, bytes: 1 << 30, size: taskBytes()}) {
		if c.Writes() > 7 {
			t.Fatalf("chunk %d writes %d tasks", i, c.Writes())
		}
		stopped := map[uint64]bool{}
		for _, tk := range c.Update {
			stopped[tk.Slot] = true
		}
		for _, tk := range c.Create {
			if !stopped[tk.Slot] {
				t.Fatalf("chunk %d creates slot %d's successor without stopping its predecessor", i, tk.Slot)
			}
		}
		for _, tk := range append(c.Create, c.Update...) {
			if seen[tk.ID] {
				t.Fatalf("task %s in two chunks", tk.ID)
			}
			seen[tk.ID] = true
		}
	}
	if len(seen) != 80 {
		t.Fatalf("chunks hold %d writes, want 80", len(seen))
	}
}

// TestChunksOfARemoval: removing a service of 2,500 unassigned tasks ends
// and deletes each in one write, and the plan splits into transactions of
// at most TransactionChanges.
func TestChunksOfARemoval(t *testing.T) {
	s := newSim(t, replicated("web", 2500), readyNode("n1"))
	for s.step().More {
	}
	s.svc = nil
	p := Reconcile(s.input())
	if len(p.Delete) != 2500 || len(p.Update) != 0 || p.More {
		t.Fatalf("plan deletes %d, updates %d, more %v; want 2500 deletions", len(p.Delete), len(p.Update), p.More)
	}
	var sizes []int
	for _, c := range chunks(p, txLimit{writes: TransactionChanges, bytes: TransactionBytes, size: taskBytes()}) {
		sizes = append(sizes, c.Writes())
	}
	if fmt.Sprint(sizes) != "[1000 1000 500]" {
		t.Fatalf("chunk sizes %v, want [1000 1000 500]", sizes)
	}
}

// TestChunksBoundedByBytes: tasks of a 20 KiB template are written fewer
// at a time, so that no transaction encodes to more than TransactionBytes
// (raft refuses entries above 8 MiB).
func TestChunksBoundedByBytes(t *testing.T) {
	svc := replicated("web", 1000)
	svc.Spec.TaskTemplate.Process.Env = []string{"BIG=" + strings.Repeat("x", 20<<10)}
	s := newSim(t, svc, readyNode("n1"))
	p := Reconcile(s.input())
	if len(p.Create) != 1000 {
		t.Fatalf("plan creates %d tasks, want 1000", len(p.Create))
	}
	cs := chunks(p, txLimit{writes: TransactionChanges, bytes: TransactionBytes, size: taskBytes()})
	total := 0
	for i, c := range cs {
		b, err := json.Marshal(c.Create)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > TransactionBytes {
			t.Fatalf("chunk %d of %d tasks encodes to %d bytes, want at most %d", i, len(c.Create), len(b), TransactionBytes)
		}
		total += len(c.Create)
	}
	if total != 1000 || len(cs) < 5 {
		t.Fatalf("%d chunks hold %d tasks, want 1000 in at least 5", len(cs), total)
	}
}
