package scheduler_test

import (
	"strings"
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	. "github.com/apiary-io/apiary/scheduler/schedtest"
)

func TestExplanationText(t *testing.T) {
	h := New(t).Nodes(
		Node("n1").Pause().Label("zone", "a").Memory("8GiB"),
		Node("n2").Label("zone", "a").Memory("1GiB"),
		Node("n3").Label("zone", "a").Memory("512MiB"),
		Node("n4").Label("zone", "b").Memory("8GiB"),
		Node("n5").Label("zone", "b").Memory("8GiB"),
		Node("n6").Memory("8GiB"),
	).Pending(Task("web").Replicas(2).Memory("2GiB").Constraint("node.labels.zone==a"))
	r := h.Run()
	r.ExpectUnplaced("web", 2).ExpectReason("web",
		"no suitable node (1 node not available for new tasks; 3 nodes constraint node.labels.zone==a not met; "+
			"2 nodes insufficient memory (need 2GiB, max free 1GiB))")
	e := r.Unplaced("web")[0].Explanation
	if e.Nodes != 6 || len(e.Rejected) != 6 {
		t.Fatalf("explanation %+v", e)
	}
	if r.Unplaced("web")[1].Explanation != e {
		t.Error("tasks of a group should share their explanation")
	}
	for _, c := range []struct{ node, plugin, status string }{
		{"n1", scheduler.PluginNodeAvailable, "not available for new tasks: availability pause"},
		{"n2", scheduler.PluginResources, "insufficient memory (need 2GiB, free 1GiB)"},
		{"n3", scheduler.PluginResources, "insufficient memory (need 2GiB, free 512MiB)"},
		{"n6", scheduler.PluginConstraints, "constraint node.labels.zone==a not met"},
	} {
		rej := e.Refused(c.node)
		if rej == nil || rej.Plugin != c.plugin || rej.Status.String() != c.status {
			t.Errorf("%s: refused %+v, want %s %q", c.node, rej, c.plugin, c.status)
		}
	}
	if e.Refused("nope") != nil {
		t.Error("unknown node refused")
	}
}

func TestExplanationAfterPartialPlacement(t *testing.T) {
	// Nodes that took tasks and then filled up are explained by what
	// finally refused them.
	r := New(t).Nodes(Node("n1").CPUs(2), Node("n2").CPUs(1), Node("n3").Drain()).
		Pending(Task("web").Replicas(5).CPUs(1)).Run()
	r.ExpectPlaced("web", 3).ExpectUnplaced("web", 2).ExpectReason("web",
		"no suitable node (1 node not available for new tasks; 2 nodes insufficient CPU (need 1, max free 0))")
}

func TestExplanationEdgeCases(t *testing.T) {
	New(t).Pending(Task("web")).Run().ExpectReason("web", "no suitable node (no nodes in the cluster)")
	New(t).Nodes(Node("n1").Down()).Pending(Task("web")).Run().ExpectReason("web", "no suitable node (1 node not available for new tasks)")
}

func TestExplainAll(t *testing.T) {
	cfg := scheduler.DefaultConfig()
	cfg.ExplainAll = true
	r := New(t).Config(cfg).Nodes(Node("n1"), Node("n2").Drain(), Node("n3").Label("x", "y")).
		Pending(Task("web").Replicas(2).Constraint("node.labels.x!=y")).Run()
	r.ExpectCounts("web", map[string]int{"n1": 2}).
		ExpectRefused("web", "n2", scheduler.PluginNodeAvailable).
		ExpectRefused("web", "n3", scheduler.PluginConstraints)
	if d := r.Decisions[0]; d.Reason != "" || d.Explanation == nil || len(d.Explanation.Rejected) != 2 {
		t.Errorf("placed decision %+v", d)
	}
}

func TestExplain(t *testing.T) {
	h := New(t).Nodes(Node("n1").Memory("1GiB"), Node("n2").Memory("4GiB"), Node("n3").Pause())
	s := scheduler.New(scheduler.DefaultConfig())
	e := s.Explain(h.State(), Task("web").Memory("2GiB").Build()[0])
	if got := e.String(); got != "no suitable node (1 node not available for new tasks; 1 node insufficient memory (need 2GiB, max free 1GiB))" {
		t.Errorf("Explain: %s", got)
	}
	if e.Refused("n2") != nil || e.Refused("n1") == nil {
		t.Errorf("refused: %+v", e.Rejected)
	}
	e = s.Explain(h.State(), Task("web").Constraint("bad").Build()[0])
	if !strings.Contains(e.String(), `constraint "bad"`) {
		t.Errorf("Explain invalid: %s", e)
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[int64]string{
		0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 512 << 20: "512MiB",
		2 << 30: "2GiB", 1<<30 + 1<<20: "1.001GiB", 3 << 40: "3TiB", 1<<30 + 1<<28: "1.25GiB",
	} {
		if got := scheduler.FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %s, want %s", in, got, want)
		}
	}
	if got := scheduler.UnitNanoCPUs.Format(1_500_000_000); got != "1.5" {
		t.Errorf("cpus: %s", got)
	}
}
