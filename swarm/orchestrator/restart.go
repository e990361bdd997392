package orchestrator

import (
	"fmt"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

type restartRules struct {
	condition   string
	delay       time.Duration
	maxAttempts uint64
	window      time.Duration
}

// restartPolicy reads a task's policy with Swarm's defaults: any, 5 s,
// unlimited attempts.
func restartPolicy(p *api.RestartPolicy) restartRules {
	r := restartRules{condition: api.RestartConditionAny, delay: api.DefaultRestartDelay}
	if p == nil {
		return r
	}
	if p.Condition != "" {
		r.condition = p.Condition
	}
	if p.Delay != nil {
		r.delay = *p.Delay
	}
	r.maxAttempts, r.window = p.MaxAttempts, p.Window
	return r
}

// restart handles a task that ended while the managers still wanted it
// running. A task lost with its node (ORPHANED) is always replaced at once:
// it did not exit, its machine vanished. Otherwise the restart policy
// decides; a task it does not restart keeps its slot, ended, as Swarm does
// (the service then runs fewer replicas until the next update).
func restart(b *builder, s *slotTasks, t *api.Task, _ string) {
	p := restartPolicy(t.Spec.RestartPolicy)
	delay := p.delay
	var ok bool
	switch t.Status.State {
	case api.TaskStateOrphaned:
		ok, delay = true, 0
	case api.TaskStateComplete, api.TaskStateShutdown:
		ok = p.condition == api.RestartConditionAny
	default: // failed, rejected
		ok = p.condition != api.RestartConditionNone
	}
	if ok && p.maxAttempts > 0 && uint64(endedInWindow(s, p.window, b.now)) > p.maxAttempts {
		ok = false
	}
	if !ok {
		return
	}
	replace(b, t, delay, false, fmt.Sprintf("task %s ended: %s", t.ID, t.Status.State))
}

// endedInWindow counts the slot's tasks that ended on their own (exited,
// failed or were rejected) within the window before now (ever, if window is
// zero). It counts what the store still holds, so attempts beyond the
// history retention limit are not remembered.
func endedInWindow(s *slotTasks, window time.Duration, now time.Time) int {
	n := 0
	for _, t := range s.tasks {
		switch t.Status.State {
		case api.TaskStateComplete, api.TaskStateFailed, api.TaskStateRejected:
		default:
			continue
		}
		if window > 0 && t.Status.Timestamp.Before(now.Add(-window)) {
			continue
		}
		n++
	}
	return n
}

// replace shuts a task down and creates its successor in the same slot (on
// the same node, for global services). With a delay, the successor is held
// at READY until then. With waitForOld, it is also held until the old task
// has stopped (stop-first).
func replace(b *builder, old *api.Task, delay time.Duration, waitForOld bool, reason string) *api.Task {
	b.setDesired(old, api.TaskStateShutdown)
	nodeID := ""
	if old.Slot == 0 {
		nodeID = old.NodeID
	}
	nt := newTask(b, old.Slot, nodeID)
	nt.Status.Message = reason
	if delay > 0 {
		nt.DesiredState = api.TaskStateReady
		nt.StartAfter = b.now.Add(delay)
		b.wake(nt.StartAfter)
	} else if waitForOld && alive(old) {
		nt.DesiredState = api.TaskStateReady
	}
	b.create(nt)
	return nt
}
