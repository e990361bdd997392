package scheduler_test

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	. "github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

func TestSpreadLeastServiceTasksThenLeastOverall(t *testing.T) {
	// n1 runs two web tasks; n2 one web task and three others; n3 four
	// others.
	r := New(t).Nodes(Node("n1"), Node("n2"), Node("n3")).
		Running(Task("web").Replicas(2).On("n1"), Task("web").On("n2"),
			Task("db").Replicas(3).On("n2"), Task("cache").Replicas(4).On("n3")).
		Pending(Task("web").Replicas(3)).Run()
	// n3 (no web task) first; then n2 and n3 have one web task each: n2
	// has 4 tasks, n3 5, so n2; then n3 is the only one with a single web
	// task.
	r.ExpectCounts("web", map[string]int{"n2": 1, "n3": 2})
	New(t).Nodes(Node("n1"), Node("n2"), Node("n3")).
		Running(Task("web").On("n1"), Task("web").On("n2"), Task("db").Replicas(3).On("n2"),
			Task("web").On("n3"), Task("cache").Replicas(1).On("n3")).
		Pending(Task("web").Replicas(2)).Run().
		// one web task each: then fewest tasks overall, n1 then n3.
		ExpectCounts("web", map[string]int{"n1": 1, "n3": 1})

	// Ties on both go to the lowest node ID.
	New(t).Nodes(Node("c"), Node("a"), Node("b")).Pending(Task("web").Replicas(2)).Run().
		ExpectCounts("web", map[string]int{"a": 1, "b": 1})

	// Even spread of a large group.
	New(t).Nodes(Node("n1"), Node("n2"), Node("n3"), Node("n4")).Pending(Task("web").Replicas(10)).Run().
		ExpectBalanced("web", 1, "n1", "n2", "n3", "n4").ExpectPlaced("web", 10)
}

func TestSpreadPreferences(t *testing.T) {
	t.Run("one level", func(t *testing.T) {
		// zone a has three nodes, zone b one: the zones get half each.
		New(t).Nodes(Node("a1").Label("zone", "a"), Node("a2").Label("zone", "a"), Node("a3").Label("zone", "a"),
			Node("b1").Label("zone", "b")).
			Pending(Task("web").Replicas(6).Spread("node.labels.zone")).Run().
			ExpectCounts("web", map[string]int{"a1": 1, "a2": 1, "a3": 1, "b1": 3})
	})
	t.Run("missing label forms its own group", func(t *testing.T) {
		New(t).Nodes(Node("a1").Label("zone", "a"), Node("b1").Label("zone", "b"),
			Node("x1"), Node("x2"), Node("x3").Label("zone", "")).
			Pending(Task("web").Replicas(9).Spread("node.labels.zone")).Run().
			// four groups of 2 each, in order "" (x3: label present but
			// empty), a, b, then the missing group (x1, x2); the ninth task
			// goes to the first group, "".
			ExpectCounts("web", map[string]int{"a1": 2, "b1": 2, "x3": 3, "x1": 1, "x2": 1})
	})
	t.Run("counts running tasks", func(t *testing.T) {
		New(t).Nodes(Node("a1").Label("zone", "a"), Node("a2").Label("zone", "a"), Node("b1").Label("zone", "b")).
			Running(Task("web").Replicas(3).On("a1")).
			Pending(Task("web").Replicas(4).Spread("node.labels.zone")).Run().
			// zone a has 3 already: b gets 3 to level, then one more to a
			// (on a2, the emptier node of zone a).
			ExpectCounts("web", map[string]int{"b1": 3, "a2": 1})
	})
	t.Run("two levels", func(t *testing.T) {
		// dc1 has racks r1 (2 nodes) and r2 (1 node); dc2 has one rack.
		r := New(t).Nodes(
			Node("n1").Label("dc", "dc1").Label("rack", "r1"),
			Node("n2").Label("dc", "dc1").Label("rack", "r1"),
			Node("n3").Label("dc", "dc1").Label("rack", "r2"),
			Node("n4").Label("dc", "dc2").Label("rack", "r1"),
			Node("n5").Label("dc", "dc2").Label("rack", "r1"),
		).Pending(Task("web").Replicas(8).Spread("node.labels.dc", "node.labels.rack")).Run()
		// 4 per dc; in dc1 2 per rack: r1's two nodes get 1 each, r2's
		// node 2; in dc2, 2 per node.
		r.ExpectCounts("web", map[string]int{"n1": 1, "n2": 1, "n3": 2, "n4": 2, "n5": 2})
	})
	t.Run("ineligible branch", func(t *testing.T) {
		// zone b's only node is drained: everything goes to zone a.
		New(t).Nodes(Node("a1").Label("zone", "a"), Node("b1").Label("zone", "b").Drain()).
			Pending(Task("web").Replicas(3).Spread("node.labels.zone")).Run().
			ExpectCounts("web", map[string]int{"a1": 3})
	})
	t.Run("full branch overflows", func(t *testing.T) {
		New(t).Nodes(Node("a1").Label("zone", "a").Memory("1GiB"), Node("b1").Label("zone", "b").Memory("8GiB")).
			Pending(Task("web").Replicas(6).Memory("1GiB").Spread("node.labels.zone")).Run().
			ExpectCounts("web", map[string]int{"a1": 1, "b1": 5})
	})
	t.Run("engine label", func(t *testing.T) {
		New(t).Nodes(Node("a1").EngineLabel("zone", "a"), Node("a2").EngineLabel("zone", "a"), Node("b1").EngineLabel("zone", "b")).
			Pending(Task("web").Replicas(4).Spread("engine.labels.zone")).Run().
			ExpectCounts("web", map[string]int{"a1": 1, "a2": 1, "b1": 2})
	})
	t.Run("bad descriptor", func(t *testing.T) {
		New(t).Nodes(Node("n1")).Pending(Task("web").Spread("zone")).Run().
			ExpectReason("web", `placement preference spread="zone": want node.labels.<name>, engine.labels.<name> or another constraint key`)
	})
	t.Run("with constraint", func(t *testing.T) {
		New(t).Nodes(Node("a1").Label("zone", "a").Label("type", "w"), Node("a2").Label("zone", "a"),
			Node("b1").Label("zone", "b").Label("type", "w"), Node("b2").Label("zone", "b").Label("type", "w")).
			Pending(Task("web").Replicas(4).Constraint("node.labels.type==w").Spread("node.labels.zone")).Run().
			ExpectCounts("web", map[string]int{"a1": 2, "b1": 1, "b2": 1})
	})
}

func TestBinpack(t *testing.T) {
	r := New(t).Nodes(Node("n1").CPUs(4).Memory("8GiB"), Node("n2").CPUs(4).Memory("8GiB"), Node("n3").CPUs(4).Memory("8GiB")).
		Running(Task("db").CPUs(1).On("n2")).
		Pending(Task("batch").Replicas(5).CPUs(1).Binpack()).Run()
	// n2 is the most allocated: it fills up first (3 more), then n1 (lowest ID).
	r.ExpectCounts("batch", map[string]int{"n2": 3, "n1": 2})
	// Without reservations, binpack prefers the node with most tasks.
	New(t).Nodes(Node("n1"), Node("n2")).Running(Task("db").On("n2")).
		Pending(Task("batch").Replicas(3).Binpack()).Run().ExpectCounts("batch", map[string]int{"n2": 3})
	// Spread services in the same call are unaffected.
	New(t).Nodes(Node("n1"), Node("n2")).
		Pending(Task("batch").Replicas(2).Binpack(), Task("web").Replicas(2)).Run().
		ExpectCounts("batch", map[string]int{"n1": 2}).ExpectCounts("web", map[string]int{"n1": 1, "n2": 1})
}

func TestGroupsBySpecVersion(t *testing.T) {
	// Two spec versions of one service are two groups; they still spread
	// together because spreading counts every task of the service.
	New(t).Nodes(Node("n1"), Node("n2")).
		Pending(Task("web").Replicas(2).Version(1), Task("web").Replicas(2).Version(2).Constraint("node.id==n2")).Run().
		ExpectCounts("web", map[string]int{"n1": 1, "n2": 3})
}

func TestDeterministic(t *testing.T) {
	var nodes []*api.Node
	for i := range 50 {
		nodes = append(nodes, Node(string(rune('a'+i%26))+string(rune('a'+i/26))).Label("zone", string(rune('a'+i%3))).CPUs(2).Build())
	}
	pending := append(Task("web").Replicas(40).CPUs(0.5).Spread("node.labels.zone").Build(), Task("db").Replicas(30).CPUs(1).Build()...)
	s := scheduler.New(scheduler.DefaultConfig())
	want := nodesOf(s.Schedule(scheduler.State{Nodes: nodes}, pending))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10 {
		shuffled := append([]*api.Node(nil), nodes...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := nodesOf(s.Schedule(scheduler.State{Nodes: shuffled}, pending)); !reflect.DeepEqual(got, want) {
			t.Fatal("decisions depend on the order of the nodes")
		}
	}
}

func nodesOf(r scheduler.Result) []string {
	out := make([]string, len(r.Decisions))
	for i, d := range r.Decisions {
		out[i] = d.NodeID + "|" + d.Reason
	}
	return out
}

func TestPinnedTasks(t *testing.T) {
	pinned := func(node string, n int) []*api.Task {
		ts := Task("agent").Replicas(n).Memory("1GiB").Build()
		for _, tk := range ts {
			tk.NodeID = node
		}
		return ts
	}
	st := scheduler.State{Nodes: []*api.Node{Node("n1").Memory("1GiB").Build(), Node("n2").Memory("8GiB").Build(), Node("n3").Drain().Build()}}
	s := scheduler.New(scheduler.DefaultConfig())
	pending := append(append(append(pinned("n1", 2), pinned("n3", 1)...), pinned("ghost", 1)...), Task("web").Build()...)
	res := s.Schedule(st, pending)
	want := []string{
		"n1|",
		"|no suitable node (1 node insufficient memory (need 1GiB, max free 0B))",
		"|no suitable node (1 node not available for new tasks)",
		"|no suitable node (node ghost is not in the cluster)",
		"n2|", // the unpinned task may go anywhere: n1 is full
	}
	if got := nodesOf(res); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if e := s.Explain(st, pending[2]); e.Nodes != 1 || e.Refused("n3") == nil {
		t.Errorf("Explain pinned: %+v", e)
	}
}
