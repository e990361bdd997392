package scheduler_test

import (
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	. "github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

func TestNodeSetIncremental(t *testing.T) {
	s := scheduler.New(scheduler.DefaultConfig())
	set := scheduler.NewNodeSet()
	// A task event may arrive before its node's.
	running := Task("db").Memory("2GiB").On("n1").Build()[0]
	set.AddTask(running)
	set.SetNode(Node("n1").Memory("4GiB").Build())
	set.SetNode(Node("n2").Memory("4GiB").Build())
	if n := set.Node("n1"); n.FreeMemory() != 2<<30 || n.Tasks != 1 || n.ServiceTasks("db") != 1 {
		t.Fatalf("n1: free %d, tasks %d", n.FreeMemory(), n.Tasks)
	}
	set.AddTask(running) // the same event again does not count twice
	if set.Node("n1").Tasks != 1 {
		t.Fatal("AddTask is not idempotent")
	}

	pending := Task("web").Replicas(3).Memory("2GiB").Build()
	res := s.ScheduleSet(set, pending)
	if res.Placed != 3 {
		t.Fatalf("placed %d: %s", res.Placed, res.Decisions[2].Reason)
	}
	// Decisions are recorded in the set.
	if set.Node("n1").FreeMemory()+set.Node("n2").FreeMemory() != 0 {
		t.Fatalf("decisions not recorded")
	}
	if id, ok := set.TaskNode(pending[0].ID); !ok || id != res.Decisions[0].NodeID {
		t.Errorf("TaskNode = %q, %v", id, ok)
	}
	// The store event of the write-back changes nothing.
	for i, d := range res.Decisions {
		w := pending[i].Copy()
		w.NodeID = d.NodeID
		w.Status.State = api.TaskStateAssigned
		set.AddTask(w)
	}
	if set.Node("n1").Tasks+set.Node("n2").Tasks != 4 {
		t.Fatal("write-back counted twice")
	}
	// A full cluster: the next task waits...
	more := Task("web").Memory("2GiB").FirstID(4).Build()
	if res := s.ScheduleSet(set, more); res.Placed != 0 {
		t.Fatal("placed on a full cluster")
	}
	// ...until a task ends.
	ended := running.Copy()
	ended.Status.State = api.TaskStateFailed
	set.AddTask(ended)
	if res := s.ScheduleSet(set, more); res.Decisions[0].NodeID != "n1" {
		t.Fatalf("after a task ended: %+v", res.Decisions[0])
	}
	// A pending task scheduled again (its write-back failed) is not
	// counted twice.
	if res := s.ScheduleSet(set, more); res.Decisions[0].NodeID != "n1" {
		t.Fatalf("rescheduling: %+v", res.Decisions[0])
	}
	// Node updates keep the tasks; removal forgets them.
	set.SetNode(Node("n1").Memory("8GiB").Build())
	if n := set.Node("n1"); n.FreeMemory() != 4<<30 {
		t.Errorf("after resize: free %d", n.FreeMemory())
	}
	set.RemoveTask(more[0].ID)
	if n := set.Node("n1"); n.FreeMemory() != 6<<30 {
		t.Errorf("after RemoveTask: free %d", n.FreeMemory())
	}
	set.RemoveNode("n2")
	if set.Len() != 1 || set.Node("n2") != nil {
		t.Error("RemoveNode")
	}
	if _, ok := set.TaskNode(pending[1].ID); ok && res.Decisions[1].NodeID == "n2" {
		t.Error("tasks of a removed node still tracked")
	}
	if nodes := set.Nodes(); len(nodes) != 1 || nodes[0].ID() != "n1" {
		t.Errorf("Nodes() = %v", nodes)
	}
}

func TestNodeSetMatchesState(t *testing.T) {
	h := New(t).Nodes(Node("a").CPUs(4), Node("b").CPUs(4), Node("c").CPUs(4)).
		Running(Task("db").CPUs(1).Replicas(3).On("a", "b"))
	pending := Task("web").CPUs(1).Replicas(6).Build()
	s := scheduler.New(scheduler.DefaultConfig())
	want := nodesOf(s.Schedule(h.State(), pending))
	got := nodesOf(s.ScheduleSet(scheduler.NewNodeSetFromState(h.State()), pending))
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("ScheduleSet %v, Schedule %v", got, want)
		}
	}
}
