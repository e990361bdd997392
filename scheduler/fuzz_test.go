package scheduler_test

import (
	"strings"
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	. "github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

// FuzzPlacementExpressions checks the placement expressions of a task spec
// (one constraint, one spread preference) where they are both read: by the
// API's validation when a service is created, and by the scheduler when
// its tasks are placed. The scheduler must never refuse as invalid what
// validation accepted (the tasks would stay pending for ever), and a
// constraint on a node label must select exactly the nodes with the value
// it names.
func FuzzPlacementExpressions(f *testing.F) {
	for _, s := range [][2]string{
		{"node.labels.zone==a", "node.labels.zone"},
		{"node.labels.zone!=a", "engine.labels.rack"},
		{"NODE.LABELS.Zone==A", "Node.Labels.dc"},
		{"engine.labels.os==linux", "node.labels.dc"},
		{"node.role==worker", ""},
		{"node.hostname!=n1", "node.labels."},
		{"", "node.labels. "},
		{"", "node.labels.a==b"},
		{"", "node.labels.a!="},
		{"", " node.labels.a"},
		{"node.labels.==a", "engine.labels"},
		{"node.id==n2", "node.id"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, constraint, spread string) {
		b := Task("web").Process("/bin/app")
		if constraint != "" {
			b.Constraint(constraint)
		}
		if spread != "" {
			b.Spread(spread)
		}
		task := b.Build()[0]
		verr := task.Spec.Validate()

		// Three nodes, two of which carry the constraint's label value
		// when it has one, so that it can select some but not all.
		c, cerr := api.ParseConstraint(constraint)
		label, value := "zone", "a"
		if cerr == nil {
			if name, ok := strings.CutPrefix(c.Key, "node.labels."); ok {
				label, value = name, c.Value
			}
		}
		nodes := []*api.Node{
			Node("n1").Label(label, value).Label("dc", "x").Build(),
			Node("n2").Label(label, value).Label("dc", "y").Build(),
			Node("n3").Label(label, value+"-other").Build(),
		}
		res := scheduler.New(scheduler.DefaultConfig()).Schedule(scheduler.State{Nodes: nodes}, []*api.Task{task})
		if len(res.Decisions) != 1 {
			t.Fatalf("%d decisions for one task", len(res.Decisions))
		}
		d := res.Decisions[0]
		invalid := d.Explanation != nil && d.Explanation.Invalid != ""
		if verr == nil && invalid {
			t.Fatalf("constraint %q, spread %q: validation accepts the spec but the scheduler refuses it: %s", constraint, spread, d.Explanation.Invalid)
		}
		if invalid || cerr != nil || !strings.HasPrefix(c.Key, "node.labels.") {
			return
		}
		// A valid node label constraint: == selects n1 or n2, != only n3
		// (n3's value differs from the constraint's in any case).
		want := map[string]bool{"n1": true, "n2": true}
		if c.Operator == api.ConstraintNe {
			want = map[string]bool{"n3": true}
		}
		if !want[d.NodeID] {
			t.Fatalf("constraint %q (key %q, value %q): task placed on %q, want one of %v (reason %q)", constraint, c.Key, c.Value, d.NodeID, want, d.Reason)
		}
	})
}
