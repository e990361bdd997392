package placer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/placer"
)

// The tests run the placer inside a synctest bubble: the store and the loop
// use only channels and timers, so synctest.Wait returns once the placer
// has taken in every change and has nothing left to do but wait, and a
// test checks the outcome then, without polling. Retries on timers happen
// only when a test lets the fake clock run (time.Sleep).

type harness struct {
	t   *testing.T
	s   *store.MemoryStore
	seq int
}

// run starts a placer over a store that setup filled first. It must be
// called inside a synctest bubble.
func run(t *testing.T, setup func(tx store.Tx) error) *harness {
	t.Helper()
	h := fill(t, setup)
	h.start(nil)
	return h
}

// fill returns a harness over a store that setup filled, with no placer yet.
func fill(t *testing.T, setup func(tx store.Tx) error) *harness {
	t.Helper()
	s := store.NewMemoryStore(nil)
	t.Cleanup(s.Close)
	h := &harness{t: t, s: s}
	if setup != nil {
		h.update(setup)
	}
	return h
}

// start runs a placer with sched (nil: the default scheduler) until the
// test ends.
func (h *harness) start(sched *scheduler.Scheduler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- placer.New(h.s, sched, testutil.DiscardLogger()).Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run returned %v", err)
		}
	})
}

func (h *harness) update(f func(tx store.Tx) error) {
	h.t.Helper()
	if err := h.s.Update(f); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) task(id string) *api.Task {
	var t *api.Task
	h.s.View(func(tx store.ReadTx) { t = tx.GetTask(id) })
	return t
}

// settled waits until the placer has nothing left to do but wait.
func (h *harness) settled() { synctest.Wait() }

// assigned checks, once the placer settled, that task id is assigned to
// a node, and returns it.
func (h *harness) assigned(id string) *api.Task {
	h.t.Helper()
	h.settled()
	tk := h.task(id)
	if tk.Status.State != api.TaskStateAssigned {
		h.t.Fatalf("task %s is %s with message %q, want assigned", id, tk.Status.State, tk.Status.Message)
	}
	if tk.NodeID == "" {
		h.t.Fatalf("task %s assigned without a node", id)
	}
	return tk
}

// waiting checks, once the placer settled, that task id is pending with a
// message ok accepts, and returns it.
func (h *harness) waiting(id string, ok func(string) bool) *api.Task {
	h.t.Helper()
	h.settled()
	tk := h.task(id)
	if tk.Status.State != api.TaskStatePending || !ok(tk.Status.Message) {
		h.t.Fatalf("task %s is %s with message %q, want pending with another reason", id, tk.Status.State, tk.Status.Message)
	}
	return tk
}

// sync creates a pending task that fits any ready node (its own service,
// no reservations) and checks it is assigned: the placer then has seen,
// and run a placement round over, every change committed before. The
// cluster needs a ready node.
func (h *harness) sync() {
	h.t.Helper()
	h.seq++
	id := fmt.Sprintf("sync-%d", h.seq)
	h.update(create(pending(id, "sync-"+id)))
	h.assigned(id)
}

func node(id string, mods ...func(*api.Node)) *api.Node {
	n := &api.Node{
		ID:   id,
		Spec: api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
		Description: &api.NodeDescription{
			Hostname:  id,
			Platform:  api.Platform{OS: "linux", Architecture: "amd64"},
			Resources: api.Resources{NanoCPUs: 4e9, MemoryBytes: 8 << 30},
			Executor:  "fake",
		},
		Status: api.NodeStatus{State: api.NodeStateReady},
	}
	for _, m := range mods {
		m(n)
	}
	return n
}

func down(n *api.Node)    { n.Status.State = api.NodeStateDown }
func drained(n *api.Node) { n.Spec.Availability = api.NodeAvailabilityDrain }
func cpus(c int64) func(*api.Node) {
	return func(n *api.Node) { n.Description.Resources.NanoCPUs = c * 1e9 }
}
func label(k, v string) func(*api.Node) {
	return func(n *api.Node) { n.Spec.Labels = map[string]string{k: v} }
}

// pending returns a PENDING task of a service, desired RUNNING.
func pending(id, serviceID string, mods ...func(*api.Task)) *api.Task {
	t := &api.Task{
		ID: id, ServiceID: serviceID, Slot: 1, Name: serviceID + ".1",
		ServiceAnnotations: api.Annotations{Name: serviceID},
		Spec:               api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
		SpecVersion:        1,
		DesiredState:       api.TaskStateRunning,
		Status:             api.TaskStatus{State: api.TaskStatePending, Message: "pending task scheduling"},
	}
	for _, m := range mods {
		m(t)
	}
	return t
}

func pinned(nodeID string) func(*api.Task) {
	return func(t *api.Task) { t.NodeID, t.Slot = nodeID, 0 }
}
func constraint(c string) func(*api.Task) {
	return func(t *api.Task) { t.Spec.Placement = &api.Placement{Constraints: []string{c}} }
}
func reserveCPUs(c int64) func(*api.Task) {
	return func(t *api.Task) {
		t.Spec.Resources = &api.ResourceRequirements{Reservations: &api.Resources{NanoCPUs: c * 1e9}}
	}
}
func desired(s api.TaskState) func(*api.Task) { return func(t *api.Task) { t.DesiredState = s } }

func create(objs ...any) func(tx store.Tx) error {
	return func(tx store.Tx) error {
		for _, o := range objs {
			var err error
			switch o := o.(type) {
			case *api.Node:
				err = tx.CreateNode(o)
			case *api.Task:
				err = tx.CreateTask(o)
			default:
				panic(fmt.Sprintf("create %T", o))
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
}

func setNode(id string, f func(*api.Node)) func(tx store.Tx) error {
	return func(tx store.Tx) error {
		n := tx.GetNode(id)
		f(n)
		return tx.UpdateNode(n)
	}
}

// reason is what the scheduler says about placing t alone on nodes with
// placed tasks.
func reason(t *api.Task, nodes []*api.Node, placed ...*api.Task) string {
	res := scheduler.New(scheduler.DefaultConfig()).Schedule(scheduler.State{Nodes: nodes, Tasks: placed}, []*api.Task{t})
	return res.Decisions[0].Reason
}

func TestPendingTasksAssignedAndSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var objs []any
		for i := range 3 {
			objs = append(objs, node(fmt.Sprintf("n%d", i)))
		}
		for i := range 9 {
			objs = append(objs, pending(fmt.Sprintf("t%d", i), "web"))
		}
		h := run(t, create(objs...))
		perNode := map[string]int{}
		for i := range 9 {
			tk := h.assigned(fmt.Sprintf("t%d", i))
			perNode[tk.NodeID]++
			if tk.Status.Message == "" || tk.Status.Timestamp.IsZero() {
				t.Errorf("assigned status lacks message or timestamp: %+v", tk.Status)
			}
		}
		for i := range 3 {
			if n := perNode[fmt.Sprintf("n%d", i)]; n != 3 {
				t.Errorf("spread = %v, want 3 tasks on each node", perNode)
				break
			}
		}
		// Tasks arriving later go to the least loaded node of their service.
		h.update(create(node("n3")))
		h.update(create(pending("late", "web")))
		if tk := h.assigned("late"); tk.NodeID != "n3" {
			t.Errorf("late task went to %s, want the empty node n3", tk.NodeID)
		}
	})
}

func TestTaskWithoutSuitableNodeWaitsWithReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := pending("t1", "web")
		h := run(t, create(tk))
		h.waiting("t1", func(m string) bool { return m == reason(tk, nil) })
		if m := h.task("t1").Status.Message; !strings.Contains(m, "no suitable node") {
			t.Errorf("reason = %q", m)
		}

		// A node that is down is not suitable: the reason says so.
		h.update(create(node("n1", down)))
		want := reason(tk, []*api.Node{node("n1", down)})
		h.waiting("t1", func(m string) bool { return m == want })
		if !strings.Contains(want, "1 node not available for new tasks") {
			t.Errorf("scheduler reason = %q", want)
		}
		if got := h.task("t1"); got.NodeID != "" {
			t.Errorf("pending task has node %q", got.NodeID)
		}

		// Once the node is ready, the task is placed, without waiting out
		// the retry backoff.
		h.update(setNode("n1", func(n *api.Node) { n.Status.State = api.NodeStateReady }))
		if got := h.assigned("t1"); got.NodeID != "n1" {
			t.Errorf("assigned to %s, want n1", got.NodeID)
		}
	})
}

func TestUnmetConstraintWaitsUntilNodeQualifies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := pending("t1", "web", constraint("node.labels.zone==a"))
		h := run(t, create(node("nb", label("zone", "b")), tk))
		want := reason(tk, []*api.Node{node("nb", label("zone", "b"))})
		if !strings.Contains(want, "constraint") {
			t.Fatalf("scheduler reason = %q", want)
		}
		h.waiting("t1", func(m string) bool { return m == want })

		h.update(create(node("na", label("zone", "a"))))
		if got := h.assigned("t1"); got.NodeID != "na" {
			t.Errorf("assigned to %s, want na (the only zone=a node)", got.NodeID)
		}
	})
}

func TestPinnedTaskGoesToItsNodeOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(
			node("n1"), node("n2"),
			// n2 already runs two tasks of the service: spreading would pick n1.
			pending("busy1", "g", pinned("n2")), pending("busy2", "g", pinned("n2")),
		))
		h.assigned("busy1")
		h.assigned("busy2")
		h.update(create(pending("g-n2", "g", pinned("n2"))))
		if got := h.assigned("g-n2"); got.NodeID != "n2" {
			t.Errorf("pinned task went to %s, want n2", got.NodeID)
		}
	})
}

func TestPinnedTaskThatDoesNotFitWaitsWithReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := pending("g-n1", "g", pinned("n1"))
		h := run(t, create(node("n1", drained), node("n2"), tk))
		want := reason(tk, []*api.Node{node("n1", drained), node("n2")})
		if !strings.Contains(want, "not available") {
			t.Fatalf("scheduler reason = %q", want)
		}
		h.waiting("g-n1", func(m string) bool { return m == want })
		if got := h.task("g-n1"); got.NodeID != "n1" {
			t.Errorf("pinned task's node changed to %q", got.NodeID)
		}
		// Constraint unmet on its node: same.
		tc := pending("gc-n2", "gc", pinned("n2"), constraint("node.labels.zone==a"))
		h.update(create(tc))
		want = reason(tc, []*api.Node{node("n1", drained), node("n2")})
		h.waiting("gc-n2", func(m string) bool { return m == want })

		h.update(setNode("n1", func(n *api.Node) { n.Spec.Availability = api.NodeAvailabilityActive }))
		if got := h.assigned("g-n1"); got.NodeID != "n1" {
			t.Errorf("assigned to %s, want n1", got.NodeID)
		}
		h.update(setNode("n2", func(n *api.Node) { n.Spec.Labels = map[string]string{"zone": "a"} }))
		if got := h.assigned("gc-n2"); got.NodeID != "n2" {
			t.Errorf("assigned to %s, want n2", got.NodeID)
		}
	})
}

func TestTasksNotWantedRunningAreNotScheduled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var objs []any
		objs = append(objs, node("n1"))
		for _, s := range []api.TaskState{api.TaskStateShutdown, api.TaskStateRemove} {
			objs = append(objs, pending("t-"+s.String(), "web", desired(s)))
		}
		objs = append(objs, pending("t-ready", "web", desired(api.TaskStateReady)))
		h := run(t, create(objs...))
		before := map[string]*api.Task{}
		for _, id := range []string{"t-shutdown", "t-remove"} {
			before[id] = h.task(id)
		}
		// A task held at READY (a restart delay) is placed: it is prepared on
		// its node while it waits.
		h.assigned("t-ready")
		h.sync()
		for id, b := range before {
			if got := h.task(id); got.Meta.Version != b.Meta.Version || got.NodeID != "" {
				t.Errorf("task %s wanted down was touched: %+v", id, got.Status)
			}
		}
		// A pending task whose desired state moves past RUNNING before it is
		// placed is dropped from scheduling.
		h.update(setNode("n1", drained))
		h.update(create(pending("late", "web")))
		h.waiting("late", func(m string) bool { return strings.Contains(m, "no suitable node") })
		h.update(func(tx store.Tx) error {
			tk := tx.GetTask("late")
			tk.DesiredState = api.TaskStateShutdown
			return tx.UpdateTask(tk)
		})
		v := h.task("late").Meta.Version
		h.update(setNode("n1", func(n *api.Node) { n.Spec.Availability = api.NodeAvailabilityActive }))
		h.sync()
		if got := h.task("late"); got.Meta.Version != v || got.Status.State != api.TaskStatePending {
			t.Errorf("task wanted shut down was scheduled: %+v", got.Status)
		}
	})
}

func TestUnplaceableReasonNotRewritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := pending("t1", "web", constraint("node.labels.zone==a"))
		h := run(t, create(node("n1"), tk))
		want := reason(tk, []*api.Node{node("n1")})
		h.waiting("t1", func(m string) bool { return m == want })

		w := h.s.Watch(store.ByKinds(api.KindTask), store.ByActions(store.ActionUpdate))
		defer w.Close()
		// Cluster changes that do not change the verdict make the placer try
		// again; so does its retry timer (after 250 ms, then backing off to
		// 10 s: a minute of the fake clock is a dozen retries).
		for i := range 3 {
			h.update(setNode("n1", func(n *api.Node) { n.Spec.Labels = map[string]string{"other": fmt.Sprint(i)} }))
		}
		h.sync()
		writes := 0
		window := time.After(time.Minute)
	loop:
		for {
			select {
			case ev := <-w.Events():
				if ev.Object.GetID() == "t1" {
					writes++
				}
			case <-window:
				break loop
			}
		}
		if writes != 0 {
			t.Errorf("the unchanged reason was written %d more times", writes)
		}
		if got := h.task("t1").Status.Message; got != want {
			t.Errorf("reason = %q, want %q", got, want)
		}
	})
}

func TestPlacedTasksHoldResources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(node("n1", cpus(1)), pending("a", "web", reserveCPUs(1))))
		h.assigned("a")
		b := pending("b", "web2", reserveCPUs(1))
		h.update(create(b))
		h.waiting("b", func(m string) bool { return strings.Contains(m, "insufficient CPU") })

		// Once a is wanted down it no longer counts: b takes its place.
		h.update(func(tx store.Tx) error {
			tk := tx.GetTask("a")
			tk.DesiredState = api.TaskStateShutdown
			return tx.UpdateTask(tk)
		})
		if got := h.assigned("b"); got.NodeID != "n1" {
			t.Errorf("b assigned to %s", got.NodeID)
		}
	})
}

func TestFreeAndPinnedTasksDoNotOvercommitANode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One CPU, two tasks wanting one CPU each in the same round: one
		// free, one pinned to the node. Only one may be placed.
		h := run(t, create(
			node("n1", cpus(1)),
			pending("free", "web", reserveCPUs(1)),
			pending("pinned", "g", pinned("n1"), reserveCPUs(1)),
		))
		h.settled()
		decided := func(t *api.Task) bool {
			return t.Status.State == api.TaskStateAssigned || t.Status.Message != "pending task scheduling"
		}
		if f, p := h.task("free"), h.task("pinned"); !decided(f) || !decided(p) {
			t.Fatalf("not both decided: free %s %q, pinned %s %q", f.Status.State, f.Status.Message, p.Status.State, p.Status.Message)
		}
		assigned := 0
		for _, id := range []string{"free", "pinned"} {
			tk := h.task(id)
			if tk.Status.State == api.TaskStateAssigned {
				assigned++
			} else if !strings.Contains(tk.Status.Message, "insufficient CPU") {
				t.Errorf("task %s waits with reason %q, want insufficient CPU", id, tk.Status.Message)
			}
		}
		if assigned != 1 {
			t.Errorf("%d tasks of one CPU each placed on a one-CPU node, want 1", assigned)
		}
	})
}

func TestPinnedTaskOfVanishedNodeLeftAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(node("n1"), pending("g-gone", "g", pinned("gone"))))
		v := h.task("g-gone").Meta.Version
		h.sync()
		if got := h.task("g-gone"); got.Status.State != api.TaskStatePending || got.NodeID != "gone" {
			t.Errorf("task pinned to a missing node: %+v", got)
		} else if got.Meta.Version != v && !strings.Contains(got.Status.Message, "gone") {
			t.Errorf("task pinned to a missing node rewritten with reason %q", got.Status.Message)
		}
	})
}
