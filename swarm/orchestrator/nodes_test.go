package orchestrator

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

func TestDrainStartsReplacementBeforeStopping(t *testing.T) {
	s := newSim(t, withCheck(replicated("web", 4)), readyNode("n1"), readyNode("n2"))
	s.converge()
	s.health = slowHealth(s, 2*time.Second)
	var drained []*api.Task
	for _, ts := range s.wanted() {
		if ts[0].NodeID == "n1" {
			drained = append(drained, ts[0])
		}
	}
	if len(drained) == 0 {
		t.Fatal("nothing on n1")
	}
	s.nodes["n1"].Spec.Availability = api.NodeAvailabilityDrain
	for i := 0; i < 20; i++ {
		s.step()
		if n := s.up(); n < 4 {
			t.Fatalf("round %d: %d tasks up during the drain, want never below 4 (room on n2)", i, n)
		}
		for _, old := range drained {
			o := s.tasks[old.ID]
			if o.DesiredState <= api.TaskStateRunning {
				continue
			}
			// The drained task is let go only once its replacement is up.
			var repl *api.Task
			for _, tk := range s.wanted()[slotKey(o)] {
				if tk.ID != o.ID {
					repl = tk
				}
			}
			if repl == nil || !ready(repl) {
				t.Fatalf("round %d: drained task %s stopped before its replacement was up", i, o.ID)
			}
		}
		s.work()
		s.now = s.now.Add(time.Second)
	}
	for slot, ts := range s.wanted() {
		if len(ts) != 1 || ts[0].NodeID != "n2" || !ready(ts[0]) {
			t.Fatalf("slot %s after the drain: %d wanted tasks, want one up on n2", slot, len(ts))
		}
	}
	for _, old := range drained {
		if o := s.tasks[old.ID]; o != nil && o.Status.State != api.TaskStateShutdown {
			t.Fatalf("drained task %s is %s, want shut down", o.ID, o.Status.State)
		}
	}
}

func TestDrainWithoutRoomStopsAfterTimeout(t *testing.T) {
	s := newSim(t, replicated("web", 2), readyNode("n1"))
	s.converge()
	s.nodes["n1"].Spec.Availability = api.NodeAvailabilityDrain
	p := s.step()
	if len(p.Create) != 2 || !p.WakeAt.Equal(t0.Add(DefaultDrainTimeout)) {
		t.Fatalf("drain: created %d, wake %v; want 2 replacements and a wake at the drain timeout", len(p.Create), p.WakeAt)
	}
	s.work() // nowhere to place the replacements
	s.now = t0.Add(DefaultDrainTimeout - time.Second)
	s.settle()
	if s.running() != 2 {
		t.Fatal("drained tasks stopped before the drain timeout while their replacements could not run")
	}
	s.now = t0.Add(DefaultDrainTimeout)
	s.settle()
	s.work()
	for _, tk := range s.tasks {
		if tk.NodeID == "n1" && tk.Status.State != api.TaskStateShutdown {
			t.Fatalf("task %s on the drained node is %s after the timeout", tk.ID, tk.Status.State)
		}
	}
	if n := len(s.wanted()); n != 2 {
		t.Fatalf("%d slots wanted, want the 2 replacements waiting for room", n)
	}
}

func TestPausedNodeKeepsTasks(t *testing.T) {
	s := newSim(t, replicated("web", 2), readyNode("n1"), readyNode("n2"))
	s.converge()
	before := fmt.Sprint(slotsOf(s.wanted()))
	ids := map[string]bool{}
	for _, tk := range s.tasks {
		ids[tk.ID] = true
	}
	s.nodes["n1"].Spec.Availability = api.NodeAvailabilityPause
	s.converge()
	if !s.step().Empty() {
		t.Fatal("pausing a node changed a replicated service")
	}
	for _, tk := range s.tasks {
		if !ids[tk.ID] {
			t.Fatalf("new task %s after a pause", tk.ID)
		}
	}
	if after := fmt.Sprint(slotsOf(s.wanted())); after != before {
		t.Fatalf("slots %s, want %s", after, before)
	}

	g := newSim(t, global("agent"), readyNode("n1"), readyNode("n2"))
	g.converge()
	g.nodes["n1"].Spec.Availability = api.NodeAvailabilityPause
	g.nodes["n3"] = readyNode("n3")
	g.nodes["n3"].Spec.Availability = api.NodeAvailabilityPause
	g.settle()
	if len(g.wanted()["n1"]) != 1 || len(g.wanted()["n3"]) != 0 {
		t.Fatalf("global: paused n1 has %d tasks (want its 1 kept), paused n3 %d (want none new)", len(g.wanted()["n1"]), len(g.wanted()["n3"]))
	}
}

func TestRemovedDownNodeTasksCleaned(t *testing.T) {
	s := newSim(t, replicated("web", 4), readyNode("n1"), readyNode("n2"))
	s.converge()
	var lost []*api.Task
	for _, tk := range s.tasks {
		if tk.NodeID == "n1" {
			lost = append(lost, tk)
		}
	}
	// The node goes down (its tasks orphaned and replaced), then is removed.
	s.nodes["n1"].Status.State = api.NodeStateDown
	for _, tk := range lost {
		s.setState(tk, api.TaskStateOrphaned)
	}
	s.converge()
	delete(s.nodes, "n1")
	s.converge()
	for _, tk := range lost {
		if _, ok := s.tasks[tk.ID]; ok {
			t.Fatalf("task %s of the removed node is still stored", tk.ID)
		}
	}
	if got := fmt.Sprint(slotsOf(s.wanted())); got != "[1 2 3 4]" || s.running() != 4 {
		t.Fatalf("slots %s with %d running after removal, want 4 refilled", got, s.running())
	}

	// Removed while it still reported its tasks running (force): they are
	// orphaned, replaced and deleted too.
	s.nodes["n3"] = readyNode("n3")
	s.nodes["n2"].Spec.Availability = api.NodeAvailabilityDrain
	s.now = s.now.Add(2 * DefaultDrainTimeout)
	s.converge()
	s.nodes["n2"].Spec.Availability = api.NodeAvailabilityActive
	s.converge()
	var onN3 []string
	for _, tk := range s.tasks {
		if tk.NodeID == "n3" && runnable(tk) {
			onN3 = append(onN3, tk.ID)
		}
	}
	delete(s.nodes, "n3")
	s.converge()
	for _, id := range onN3 {
		if _, ok := s.tasks[id]; ok {
			t.Fatalf("running task %s of a force-removed node is still stored", id)
		}
	}
	if s.running() != 4 {
		t.Fatalf("%d running, want 4", s.running())
	}
}

func TestGlobalServiceAcrossNodeChurn(t *testing.T) {
	s := newSim(t, global("agent"), readyNode("n1"), readyNode("n2"))
	s.svc.Spec.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.labels.agent!=no"}}
	check := func(what string) {
		t.Helper()
		s.converge()
		var want []string
		elig := newEligibility(&s.svc.Spec.TaskTemplate)
		for id, n := range s.nodes {
			if elig.ok(n) {
				want = append(want, id)
			}
		}
		sort.Strings(want)
		got := map[string]int{}
		for _, tk := range s.tasks {
			if runnable(tk) && ready(tk) {
				got[tk.NodeID]++
			}
		}
		for _, id := range want {
			if got[id] != 1 {
				t.Fatalf("%s: node %s runs %d tasks, want 1 (tasks per node %v, eligible %v)", what, id, got[id], got, want)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: tasks on %v, want exactly on %v", what, got, want)
		}
	}
	check("start")
	for i := 3; i <= 6; i++ {
		s.nodes[fmt.Sprintf("n%d", i)] = readyNode(fmt.Sprintf("n%d", i))
	}
	check("4 nodes joined")
	s.nodes["n3"].Spec.Labels = map[string]string{"agent": "no"}
	check("n3 labelled out")
	s.nodes["n4"].Spec.Availability = api.NodeAvailabilityDrain
	check("n4 drained")
	s.nodes["n5"].Status.State = api.NodeStateDown
	for _, tk := range s.tasks {
		if tk.NodeID == "n5" && alive(tk) {
			s.setState(tk, api.TaskStateOrphaned)
		}
	}
	check("n5 down")
	delete(s.nodes, "n5")
	check("n5 removed")
	for _, tk := range s.tasks {
		if tk.NodeID == "n5" {
			t.Fatalf("task %s of removed node n5 still stored", tk.ID)
		}
	}
	s.nodes["n3"].Spec.Labels = nil
	s.nodes["n4"].Spec.Availability = api.NodeAvailabilityActive
	check("n3 and n4 back")
	s.nodes["n7"] = readyNode("n7")
	delete(s.nodes, "n1")
	check("n7 joined, n1 removed")
}
