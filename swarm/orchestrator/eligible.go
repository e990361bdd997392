package orchestrator

import (
	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm/api"
)

// nodeLocal are the scheduler's filters that depend on the node alone, not
// on what else runs there: they decide which nodes a global service belongs
// on. Using the scheduler's own plugins keeps the two from disagreeing (a
// global task the scheduler would then refuse to place).
var nodeLocal = []scheduler.FilterPlugin{scheduler.Executor{}, scheduler.Platform{}, scheduler.Constraints{}}

// eligibility checks nodes against one task template.
type eligibility struct {
	ti  *scheduler.TaskInfo
	bad bool // the template's constraints do not parse
}

func newEligibility(spec *api.TaskSpec) *eligibility {
	e := &eligibility{ti: scheduler.NewTaskInfo(&api.Task{Spec: *spec})}
	for _, f := range nodeLocal {
		if pf, ok := f.(scheduler.PreFilterPlugin); ok && pf.PreFilter(e.ti) != nil {
			e.bad = true
		}
	}
	return e
}

// ok reports whether a global service's task belongs on node n: the node is
// ready and not drained (a paused node keeps its task), and the template's
// constraints, platforms and runtime fit it.
func (e *eligibility) ok(n *api.Node) bool {
	if e.bad || n.Status.State != api.NodeStateReady || n.Spec.Availability == api.NodeAvailabilityDrain || n.Description == nil {
		return false
	}
	info := scheduler.NewNodeSetFromState(scheduler.State{Nodes: []*api.Node{n}}).Node(n.ID)
	for _, f := range nodeLocal {
		if f.Filter(e.ti, info) != nil {
			return false
		}
	}
	return true
}

// eligible reports whether a global service's task belongs on node n.
func eligible(n *api.Node, spec *api.TaskSpec) bool { return newEligibility(spec).ok(n) }
