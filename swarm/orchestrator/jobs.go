package orchestrator

import (
	"sort"

	"github.com/apiary-io/apiary/swarm/api"
)

// Jobs run tasks to completion. A job's iteration is its service's
// SpecVersion: every spec change (a ForceUpdate too) re-runs the job with a
// fresh set of tasks, and the tasks of earlier iterations become history
// (still-running ones are removed). Within an iteration a completed task is
// never restarted; a failed one is replaced in its slot per the restart
// policy (on-failure by default for jobs).

// jobLimits returns a replicated job's MaxConcurrent and TotalCompletions
// with Docker's defaults for what is unset.
func jobLimits(j *api.ReplicatedJob) (maxConcurrent, total int) {
	maxConcurrent, total = int(j.MaxConcurrent), int(j.TotalCompletions)
	if maxConcurrent <= 0 {
		maxConcurrent = api.DefaultJobMaxConcurrent
	}
	if total <= 0 {
		total = maxConcurrent
	}
	return maxConcurrent, total
}

// retireOldIterations ends the tasks of the job's earlier iterations: one
// that may still run is removed, an ended one is kept as history.
func retireOldIterations(b *builder) {
	for _, t := range b.all() {
		if t.JobIteration == b.service.SpecVersion || !runnable(t) {
			continue
		}
		if b.full() {
			return
		}
		if t.Status.State.Terminal() {
			b.setDesired(t, api.TaskStateShutdown)
		} else {
			b.setDesired(t, api.TaskStateRemove)
		}
	}
}

// iterationTasks returns the working view's tasks of the job's current
// iteration.
func iterationTasks(b *builder) []*api.Task {
	var cur []*api.Task
	for _, t := range b.all() {
		if t.JobIteration == b.service.SpecVersion {
			cur = append(cur, t)
		}
	}
	return cur
}

// completed reports whether a slot of the current iteration holds a task
// that completed.
func completed(s *slotTasks) bool {
	for _, t := range s.tasks {
		if t.Status.State == api.TaskStateComplete {
			return true
		}
	}
	return false
}

// reconcileReplicatedJob runs TotalCompletions tasks to completion, each in
// its own slot (1..TotalCompletions), at most MaxConcurrent at a time.
func reconcileReplicatedJob(b *builder, in Input) {
	maxConcurrent, total := jobLimits(b.service.Spec.Mode.ReplicatedJob)
	retireOldIterations(b)
	slots := groupTasks(iterationTasks(b))
	var open []*slotTasks
	for _, s := range slots {
		if completed(s) {
			// Done. Anything else of the slot that could still run
			// (there should be nothing) stops.
			if b.full() {
				continue // still done: it stays out of open
			}
			for _, t := range s.runnable() {
				if t.Status.State != api.TaskStateComplete {
					b.setDesired(t, api.TaskStateShutdown)
				}
			}
			continue
		}
		open = append(open, s)
	}
	moveOffLostNodes(b, in, open, true)

	// Count on the working view: restarts above made successors. A task
	// is active while it is wanted and has not ended, or may still run
	// (stopping); counting both keeps the job within MaxConcurrent.
	active := 0
	used := map[uint64]bool{}
	for _, s := range groupTasks(iterationTasks(b)) {
		if completed(s) || s.newest() != nil {
			used[s.slot] = true
		}
		for _, t := range s.tasks {
			if (runnable(t) && !t.Status.State.Terminal()) || alive(t) {
				active++
			}
		}
	}
	create := min(maxConcurrent-active, total-len(used))
	next := uint64(1)
	for range max(create, 0) {
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

// reconcileGlobalJob runs one task to completion on every eligible node:
// nodes that join later run it too; a node that completed it is done.
func reconcileGlobalJob(b *builder, in Input) {
	elig := newEligibility(&b.service.Spec.TaskTemplate)
	retireOldIterations(b)
	byNode := map[string]*slotTasks{}
	for _, s := range groupTasks(iterationTasks(b)) {
		byNode[s.key] = s
	}
	ids := make([]string, 0, len(in.Nodes))
	for id := range in.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := in.Nodes[id]
		s := byNode[id]
		if s != nil && completed(s) {
			continue
		}
		if b.full() {
			break // forgetting removed nodes' tasks is budgeted below
		}
		ok := elig.ok(n)
		if s != nil {
			for _, t := range s.runnable() {
				switch {
				case !ok:
					b.setDesired(t, api.TaskStateShutdown)
				case t.Status.State.Terminal():
					restart(b, s, t, true)
				}
			}
		}
		if ok && n.Spec.Availability == api.NodeAvailabilityActive && (s == nil || s.newest() == nil) {
			b.create(newTask(b, 0, id))
		}
	}
	forgetRemovedNodes(b, in, byNode)
}
