package orchestrator

import (
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// reconcileReplicated keeps exactly Replicas occupied slots, numbered from 1:
// it restarts ended tasks per the restart policy, moves tasks off drained
// and removed nodes, and scales up in the lowest free slots and down from the
// highest slot.
func reconcileReplicated(b *builder, in Input) {
	want := int(b.service.Spec.Mode.Replicated.Replicas)
	moveOffLostNodes(b, in, groupSlots(b), false)

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
		if b.full() {
			return
		}
		for _, t := range occupied[i].runnable() {
			b.setDesired(t, api.TaskStateRemove)
		}
	}
	// Scale up into the lowest free slot numbers, a budget at a time.
	next := uint64(1)
	for n := len(occupied); n < want; n++ {
		if b.full() {
			return
		}
		for used[next] {
			next++
		}
		used[next] = true
		b.create(newTask(b, next, ""))
	}
}

// moveOffLostNodes restarts the slots' ended tasks per the restart policy
// and moves tasks off nodes that left the cluster or were drained. Tasks of
// a removed node are replaced at once and forgotten (history included); a
// drained node's running task keeps running until its replacement elsewhere
// is ready (or the drain timeout passed), so that draining does not lower
// the number of running tasks where the cluster has room. A job's task is
// replaced stop-first instead (job set).
func moveOffLostNodes(b *builder, in Input, slots []*slotTasks, job bool) {
	timeout := in.DrainTimeout
	if timeout <= 0 {
		timeout = DefaultDrainTimeout
	}
	for _, s := range slots {
		if b.full() {
			return
		}
		for _, t := range s.runnable() {
			switch {
			case t.Status.State.Terminal():
				restart(b, s, t, job)
			case nodeRemoved(in, t):
				if s.newest().ID == t.ID {
					replace(b, t, 0, false, "node removed from the cluster: replaces "+t.ID)
				}
			case nodeDrained(in, t) && job:
				// A job's task is replaced stop-first, so the
				// job never runs more than MaxConcurrent tasks.
				if s.newest().ID == t.ID {
					replace(b, t, 0, true, "node drained: replaces "+t.ID)
				} else {
					b.setDesired(t, api.TaskStateShutdown)
				}
			case nodeDrained(in, t):
				drain(b, s, t, timeout)
			}
		}
		for _, t := range s.tasks {
			if nodeRemoved(in, t) {
				forgetLost(b, t)
			}
		}
	}
}

// drain moves a task off a drained node start-first: a replacement is
// created at once (desired RUNNING, placed elsewhere by the scheduler), and
// the drained task is stopped once the replacement is ready
// (retireSuperseded) or, if it never gets there, timeout after the first
// replacement was made. A task that is not running yet is simply replaced.
func drain(b *builder, s *slotTasks, t *api.Task, timeout time.Duration) {
	if t.Status.State != api.TaskStateRunning {
		replace(b, t, 0, false, "node drained: replaces "+t.ID)
		return
	}
	var first *api.Task // the first replacement made for t
	for _, o := range s.tasks {
		if newer(o, t) && (first == nil || newer(first, o)) {
			first = o
		}
	}
	if first == nil {
		nt := newTask(b, t.Slot, "")
		nt.Status.Message = "node drained: replaces " + t.ID
		b.create(nt)
		b.wake(b.now.Add(timeout))
		return
	}
	if deadline := first.Meta.CreatedAt.Add(timeout); b.now.Before(deadline) {
		b.wake(deadline)
		return
	}
	b.setDesired(t, api.TaskStateShutdown)
}

// nodeRemoved reports whether a task was on a node that left the cluster.
func nodeRemoved(in Input, t *api.Task) bool {
	if t.NodeID == "" {
		return false
	}
	_, ok := in.Nodes[t.NodeID]
	return !ok
}

// nodeDrained reports whether a task is on a drained node.
func nodeDrained(in Input, t *api.Task) bool {
	n, ok := in.Nodes[t.NodeID]
	return ok && t.NodeID != "" && n.Spec.Availability == api.NodeAvailabilityDrain
}
