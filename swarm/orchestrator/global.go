package orchestrator

import (
	"sort"

	"github.com/apiary-io/apiary/swarm/api"
)

// reconcileGlobal keeps one task on every eligible node: ready, not drained,
// matching the placement constraints and platforms, with an executor that can
// run the task. A paused node keeps its task but gets no new one.
func reconcileGlobal(b *builder, in Input) {
	elig := newEligibility(&b.service.Spec.TaskTemplate)
	byNode := map[string]*slotTasks{}
	for _, s := range groupSlots(b) {
		byNode[s.key] = s
	}
	ids := make([]string, 0, len(in.Nodes))
	for id := range in.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if b.full() {
			break // forgetting removed nodes' tasks is budgeted below
		}
		n := in.Nodes[id]
		s := byNode[id]
		ok := elig.ok(n)
		if s != nil {
			for _, t := range s.runnable() {
				switch {
				case !ok:
					b.setDesired(t, api.TaskStateShutdown)
				case t.Status.State.Terminal():
					restart(b, s, t, false)
				}
			}
		}
		// A slot with a runnable task stays filled: restarts above only
		// replace runnable tasks, and shutdowns only happen when !ok.
		if ok && n.Spec.Availability == api.NodeAvailabilityActive && (s == nil || s.newest() == nil) {
			b.create(newTask(b, 0, id))
		}
	}
	forgetRemovedNodes(b, in, byNode)
}

// forgetRemovedNodes removes the tasks (history included) of nodes that left
// the cluster, in node order so that a plan cut short by its budget is
// still a pure function of its input.
func forgetRemovedNodes(b *builder, in Input, byNode map[string]*slotTasks) {
	gone := make([]string, 0, len(byNode))
	for key := range byNode {
		if _, ok := in.Nodes[key]; !ok {
			gone = append(gone, key)
		}
	}
	sort.Strings(gone)
	for _, key := range gone {
		if b.full() {
			return
		}
		s := byNode[key]
		for _, t := range s.tasks {
			forgetLost(b, t)
		}
	}
}
