package scheduler_test

import (
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	. "github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

func applyMoves(tasks []*api.Task, moves []scheduler.Move) []*api.Task {
	out := make([]*api.Task, len(tasks))
	for i, t := range tasks {
		out[i] = t
		for _, m := range moves {
			if m.TaskID == t.ID {
				c := t.Copy()
				c.NodeID = m.To
				out[i] = c
			}
		}
	}
	return out
}

func TestRebalance(t *testing.T) {
	s := scheduler.New(scheduler.DefaultConfig())
	// Six tasks on n1 and n2; n3 and n4 just joined.
	h := New(t).Nodes(Node("n1"), Node("n2"), Node("n3"), Node("n4"), Node("n5").Drain()).
		Running(Task("web").Replicas(6).On("n1", "n2"), Task("db").On("n3"))
	st := h.State()
	moves := s.Rebalance(st, "web", 1)
	if len(moves) != 1 || moves[0] != (scheduler.Move{TaskID: "web.1", From: "n1", To: "n4"}) {
		t.Fatalf("moves %+v", moves)
	}
	// Repeated calls converge: at most one apart, then nothing to do.
	tasks := st.Tasks
	for range 10 {
		moves = s.Rebalance(scheduler.State{Nodes: st.Nodes, Tasks: tasks}, "web", 2)
		if len(moves) == 0 {
			break
		}
		tasks = applyMoves(tasks, moves)
	}
	counts := map[string]int{}
	for _, tk := range tasks {
		if tk.ServiceID == "web" {
			counts[tk.NodeID]++
		}
	}
	if counts["n1"] != 2 || counts["n2"] != 2 || counts["n3"] != 1 || counts["n4"] != 1 || counts["n5"] != 0 {
		t.Errorf("after rebalancing: %v", counts)
	}
	if len(moves) != 0 {
		t.Errorf("did not converge: %v", moves)
	}
	if s.Rebalance(st, "web", 0) != nil || s.Rebalance(st, "nope", 3) != nil {
		t.Error("no moves expected")
	}
}

func TestRebalancePreferences(t *testing.T) {
	s := scheduler.New(scheduler.DefaultConfig())
	// Four tasks in zone a; zone b joins with one node: two move there.
	h := New(t).Nodes(Node("a1").Label("zone", "a"), Node("a2").Label("zone", "a"), Node("b1").Label("zone", "b")).
		Running(Task("web").Replicas(4).Spread("node.labels.zone").On("a1", "a2"))
	moves := s.Rebalance(h.State(), "web", 10)
	if len(moves) != 2 || moves[0].To != "b1" || moves[1].To != "b1" || moves[0].From == moves[1].From {
		t.Fatalf("moves %+v", moves)
	}
	// Resources are respected: b1 can take only one.
	h = New(t).Nodes(Node("a1").Label("zone", "a"), Node("a2").Label("zone", "a"), Node("b1").Label("zone", "b").Memory("1GiB")).
		Running(Task("web").Replicas(4).Memory("1GiB").Spread("node.labels.zone").On("a1", "a2"))
	if moves := s.Rebalance(h.State(), "web", 10); len(moves) != 1 {
		t.Fatalf("moves %+v", moves)
	}
	// Binpack services are left alone.
	h = New(t).Nodes(Node("n1"), Node("n2")).Running(Task("batch").Replicas(4).Binpack().On("n1"))
	if moves := s.Rebalance(h.State(), "batch", 10); len(moves) != 0 {
		t.Fatalf("binpack moves %+v", moves)
	}
	if !scheduler.WantsRebalance(Task("x").ServiceLabel(scheduler.RebalanceLabel, "true").Build()[0]) {
		t.Error("WantsRebalance")
	}
}
