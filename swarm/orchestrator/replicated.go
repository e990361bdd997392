package orchestrator

import (
	"github.com/apiary-io/apiary/swarm/api"
)

// reconcileReplicated keeps exactly Replicas occupied slots, numbered from 1:
// it restarts ended tasks per the restart policy, moves tasks off drained
// and removed nodes, and scales up in the lowest free slots and down from the
// highest slot.
func reconcileReplicated(b *builder, in Input) {
	want := int(b.service.Spec.Mode.Replicated.Replicas)
	for _, s := range groupSlots(b) {
		for _, t := range s.runnable() {
			if t.Status.State.Terminal() {
				restart(b, s, t, "")
				continue
			}
			if reason := nodeGone(in, t); reason != "" {
				replace(b, t, 0, false, reason)
			}
		}
	}

	var occupied []*slotTasks
	used := map[uint64]bool{}
	for _, s := range groupSlots(b) {
		if s.newest() != nil {
			occupied = append(occupied, s)
			used[s.slot] = true
		}
	}
	// Scale down from the highest slot: slots are sorted ascending.
	for i := len(occupied) - 1; i >= want; i-- {
		for _, t := range occupied[i].runnable() {
			b.setDesired(t, api.TaskStateRemove)
		}
	}
	// Scale up into the lowest free slot numbers.
	next := uint64(1)
	for n := len(occupied); n < want; n++ {
		for used[next] {
			next++
		}
		used[next] = true
		b.create(newTask(b, next, ""))
	}
}

// nodeGone explains why a task's node can no longer run it (deleted or
// drained), or returns "".
func nodeGone(in Input, t *api.Task) string {
	if t.NodeID == "" {
		return ""
	}
	n, ok := in.Nodes[t.NodeID]
	switch {
	case !ok:
		return "node removed from the cluster"
	case n.Spec.Availability == api.NodeAvailabilityDrain:
		return "node drained"
	}
	return ""
}
