package orchestrator

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// dirty reports whether a task runs another template than its service's.
// Spec versions differ on every service change (a scale too), so equal
// versions are a fast "clean"; otherwise the templates are compared in their
// JSON form, which treats nil and empty the same as the store's encoding does.
func dirty(t *api.Task, svc *api.Service, svcJSON []byte) bool {
	if t.SpecVersion == svc.SpecVersion {
		return false
	}
	tj, err := json.Marshal(t.Spec)
	if err != nil {
		return true
	}
	return string(tj) != string(svcJSON)
}

// updateConfig returns the config governing the current rollout, with
// Swarm's defaults for what is unset.
func updateConfig(svc *api.Service, rollback bool) api.UpdateConfig {
	c := api.DefaultUpdateConfig()
	src := svc.Spec.UpdateConfig
	if rollback && svc.Spec.RollbackConfig != nil {
		src = svc.Spec.RollbackConfig
	}
	if src != nil {
		c = *src
		if c.Order == "" {
			c.Order = api.UpdateOrderStopFirst
		}
		if c.FailureAction == "" {
			c.FailureAction = api.UpdateFailureActionPause
		}
	}
	return c
}

func rollingBack(svc *api.Service) bool {
	return svc.UpdateStatus != nil && strings.HasPrefix(svc.UpdateStatus.State, "rollback")
}

// rollingUpdate replaces tasks whose template is out of date, in batches of
// the update config's parallelism: a batch starts only when every task of the
// previous one runs and the delay since the last of them started has passed.
// Stop-first stops the old task before its successor starts; start-first
// starts the successor and stops the old task once the successor runs.
func rollingUpdate(b *builder, in Input) {
	svc := b.service
	back := rollingBack(svc)
	cfg := updateConfig(svc, back)
	svcJSON, _ := json.Marshal(svc.Spec.TaskTemplate)

	var started time.Time
	if svc.UpdateStatus != nil && svc.UpdateStatus.StartedAt != nil {
		started = *svc.UpdateStatus.StartedAt
	}
	var stale []*slotTasks
	var lastRunning time.Time
	inFlight, updated, failures := 0, 0, 0
	var failedTask *api.Task
	for _, s := range groupSlots(b) {
		cur := s.newest()
		if cur == nil {
			continue
		}
		if dirty(cur, svc, svcJSON) {
			stale = append(stale, s)
			continue
		}
		if cur.Status.State == api.TaskStateRunning {
			// Start-first: the successor runs, so its predecessors go.
			for _, o := range s.runnable() {
				if o.ID != cur.ID {
					b.setDesired(o, api.TaskStateShutdown)
				}
			}
		}
		if started.IsZero() || cur.Meta.CreatedAt.Before(started) {
			continue
		}
		updated++
		for _, t := range s.tasks {
			if !t.Meta.CreatedAt.Before(started) && !dirty(t, svc, svcJSON) &&
				(t.Status.State == api.TaskStateFailed || t.Status.State == api.TaskStateRejected) {
				failures++
				failedTask = t
			}
		}
		switch {
		case cur.Status.State == api.TaskStateRunning:
			if cur.Status.Timestamp.After(lastRunning) {
				lastRunning = cur.Status.Timestamp
			}
		case !cur.Status.State.Terminal():
			inFlight++
		}
	}

	state := ""
	if svc.UpdateStatus != nil {
		state = svc.UpdateStatus.State
	}
	if len(stale) == 0 {
		if inFlight == 0 {
			finishUpdate(b, state)
		}
		return
	}
	switch state {
	case api.UpdateStatePaused, api.UpdateStateRollbackPaused:
		return
	case api.UpdateStateUpdating, api.UpdateStateRollbackStarted:
	default:
		now := b.now
		svc = b.editService()
		svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStateUpdating, StartedAt: &now, Message: "update in progress"}
		if back {
			svc.UpdateStatus.State = api.UpdateStateRollbackStarted
		}
	}
	if failures > 0 && float64(failures) > cfg.MaxFailureRatio*float64(updated) {
		switch cfg.FailureAction {
		case api.UpdateFailureActionPause:
			svc = b.editService()
			svc.UpdateStatus.State = api.UpdateStatePaused
			if back {
				svc.UpdateStatus.State = api.UpdateStateRollbackPaused
			}
			svc.UpdateStatus.Message = fmt.Sprintf("update paused due to failure or early termination of task %s", failedTask.ID)
			return
		case api.UpdateFailureActionRollback:
			if !back && svc.PreviousSpec != nil {
				startRollback(b, fmt.Sprintf("update rolled back due to failure or early termination of task %s", failedTask.ID))
				return
			}
		}
	}
	if inFlight > 0 {
		return
	}
	if cfg.Delay > 0 && !lastRunning.IsZero() && b.now.Before(lastRunning.Add(cfg.Delay)) {
		b.wake(lastRunning.Add(cfg.Delay))
		return
	}
	n := int(cfg.Parallelism)
	if n == 0 || n > len(stale) {
		n = len(stale)
	}
	for _, s := range stale[:n] {
		cur := s.newest()
		if cfg.Order == api.UpdateOrderStartFirst {
			nt := newTask(b, cur.Slot, globalNode(cur))
			nt.Status.Message = "update: started before its predecessor stops"
			b.create(nt)
			continue
		}
		for _, o := range s.runnable() {
			if o.ID != cur.ID {
				b.setDesired(o, api.TaskStateShutdown)
			}
		}
		replace(b, cur, 0, true, "update: replaces "+cur.ID)
	}
}

func globalNode(t *api.Task) string {
	if t.Slot == 0 {
		return t.NodeID
	}
	return ""
}

// finishUpdate marks a rollout complete once nothing is stale or in flight.
func finishUpdate(b *builder, state string) {
	var done string
	switch state {
	case api.UpdateStateUpdating:
		done = api.UpdateStateCompleted
	case api.UpdateStateRollbackStarted:
		done = api.UpdateStateRollbackCompleted
	default:
		return
	}
	now := b.now
	svc := b.editService()
	svc.UpdateStatus.State = done
	svc.UpdateStatus.CompletedAt = &now
	if done == api.UpdateStateCompleted {
		svc.UpdateStatus.Message = "update completed"
	} else {
		svc.UpdateStatus.Message = "rollback completed"
	}
}

// startRollback swaps the service back to its previous spec; the next
// reconciliation rolls it out under the rollback config.
func startRollback(b *builder, msg string) {
	now := b.now
	svc := b.editService()
	prev := *svc.PreviousSpec
	cur := svc.Spec
	svc.PreviousSpec = &cur
	svc.PreviousSpecVersion = svc.SpecVersion
	svc.Spec = prev
	svc.SpecVersion++
	svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStateRollbackStarted, StartedAt: &now, Message: msg}
}
