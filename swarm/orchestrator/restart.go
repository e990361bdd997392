package orchestrator

import (
	"encoding/json"
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
// (the service then runs fewer replicas until the next update). For a job
// (job set) a task that was shut down counts as failed, not as done.
//
// A task with a newer runnable task in its slot (a start-first or drain
// replacement is already on its way) is only shut down: its slot is taken
// care of.
func restart(b *builder, s *slotTasks, t *api.Task, job bool) {
	if n := s.newest(); n != nil && n.ID != t.ID {
		b.setDesired(t, api.TaskStateShutdown)
		return
	}
	p := restartPolicy(t.Spec.RestartPolicy)
	delay := p.delay
	var ok, counts bool
	switch t.Status.State {
	case api.TaskStateOrphaned:
		ok, delay = true, 0
	case api.TaskStateComplete:
		ok, counts = p.condition == api.RestartConditionAny && !job, true
	case api.TaskStateShutdown:
		ok, counts = p.condition == api.RestartConditionAny || (job && p.condition == api.RestartConditionOnFailure), true
	default: // failed, rejected
		ok, counts = p.condition != api.RestartConditionNone, true
	}
	if ok && counts && p.maxAttempts > 0 && attempts(t, p) >= p.maxAttempts {
		ok = false
	}
	if !ok {
		return
	}
	nt := replace(b, t, delay, false, fmt.Sprintf("task %s ended: %s", t.ID, t.Status.State))
	recordRestart(b, t, nt, p, counts)
}

// attempts counts the restarts that led to t under its current template:
// all of them, or with a window those made within the window before t
// ended. Restarts are read from the task (RestartCount, RestartHistory),
// not from the slot's history, so history trimming does not make the limit
// forget.
func attempts(t *api.Task, p restartRules) uint64 {
	if p.window <= 0 {
		return t.RestartCount
	}
	since := t.Status.Timestamp.Add(-p.window)
	var n uint64
	for _, at := range t.RestartHistory {
		if at.After(since) {
			n++
		}
	}
	return n
}

// recordRestart carries the restart count and history from old to its
// successor nt, adding this restart when it counts (a replacement for a lost
// node does not). A predecessor of another template (an update came in
// between) starts the count afresh: past failures do not count against a
// new spec, as in swarmkit.
func recordRestart(b *builder, old, nt *api.Task, p restartRules, counts bool) {
	if sameTemplate(old, nt) {
		nt.RestartCount = old.RestartCount
		nt.RestartHistory = append([]time.Time(nil), old.RestartHistory...)
	}
	if !counts {
		return
	}
	nt.RestartCount++
	if p.window > 0 && p.maxAttempts > 0 {
		nt.RestartHistory = append(nt.RestartHistory, b.now)
		if extra := len(nt.RestartHistory) - int(p.maxAttempts); extra > 0 {
			nt.RestartHistory = nt.RestartHistory[extra:]
		}
	} else {
		nt.RestartHistory = nil
	}
}

// sameTemplate reports whether two tasks run the same template.
func sameTemplate(a, b *api.Task) bool {
	if a.SpecVersion == b.SpecVersion {
		return true
	}
	aj, err1 := json.Marshal(a.Spec)
	bj, err2 := json.Marshal(b.Spec)
	return err1 == nil && err2 == nil && string(aj) == string(bj)
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
