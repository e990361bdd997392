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
func dirty(t *api.Task, svc *api.Service, tmpl *templateJSON) bool {
	if t.SpecVersion == svc.SpecVersion {
		return false
	}
	tj, err := json.Marshal(t.Spec)
	if err != nil {
		return true
	}
	return string(tj) != string(tmpl.get())
}

// templateJSON is a service's task template in its JSON form, encoded the
// first time a task's spec version differs: most reconciliations (every
// one of a service at rest) never need it.
type templateJSON struct {
	tmpl *api.TaskSpec
	b    []byte
	done bool
}

func newTemplateJSON(svc *api.Service) *templateJSON {
	return &templateJSON{tmpl: &svc.Spec.TaskTemplate}
}

func (j *templateJSON) get() []byte {
	if !j.done {
		j.b, _ = json.Marshal(j.tmpl)
		j.done = true
	}
	return j.b
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
		if c.Monitor <= 0 {
			// As api.WithDefaults: zero cannot be told from unset.
			c.Monitor = api.DefaultUpdateConfig().Monitor
		}
	}
	return c
}

func rollingBack(svc *api.Service) bool {
	return svc.UpdateStatus != nil && strings.HasPrefix(svc.UpdateStatus.State, "rollback")
}

// rollingUpdate replaces tasks whose template is out of date, in batches of
// the update config's parallelism: a batch starts only when every task of the
// previous one is ready (RUNNING, and healthy when it has a health check) and
// the delay since the last of them became ready has passed. Stop-first stops
// the old task before its successor starts; start-first starts the successor
// and the old task stops once the successor is ready (retireSuperseded).
//
// Everything is read from the store: which tasks belong to the rollout
// (created since UpdateStatus.StartedAt, of the current template), when they
// became ready and when they started (task status), so a new leader resumes
// the rollout where the old one was.
//
// A task of the rollout that ends on its own (fails, is rejected, or exits)
// before it ran for the Monitor period counts as a failure of the update;
// once failures exceed MaxFailureRatio of the slots the rollout covers, the
// failure action applies: pause, continue, or rollback (a failing rollback
// pauses: a rollback is never rolled back). After the last batch the update
// is completed only once its tasks ran for the Monitor period, as swarmkit
// watches the last batch before declaring success.
func rollingUpdate(b *builder, in Input) {
	svc := b.service
	back := rollingBack(svc)
	cfg := updateConfig(svc, back)
	tmpl := newTemplateJSON(svc)

	state := svc.UpdateStatus.GetState()
	var started time.Time
	if svc.UpdateStatus != nil && svc.UpdateStatus.StartedAt != nil {
		started = *svc.UpdateStatus.StartedAt
	}
	inRollout := (state == api.UpdateStateUpdating || state == api.UpdateStateRollbackStarted) && !started.IsZero()

	var stale []*slotTasks
	var lastReady, monitorEnd time.Time
	inFlight, rolled, failures := 0, 0, 0
	var failedTask *api.Task
	for _, s := range groupSlots(b) {
		cur := s.newest()
		if cur == nil {
			continue
		}
		if dirty(cur, svc, tmpl) {
			stale = append(stale, s)
			continue
		}
		if !inRollout || cur.Meta.CreatedAt.Before(started) {
			continue
		}
		rolled++
		for _, t := range s.tasks {
			if t.Meta.CreatedAt.Before(started) || dirty(t, svc, tmpl) {
				continue
			}
			if failedEarly(t, cfg.Monitor) {
				failures++
				if failedTask == nil || newer(t, failedTask) {
					failedTask = t
				}
			}
		}
		switch {
		case ready(cur):
			if cur.Status.Timestamp.After(lastReady) {
				lastReady = cur.Status.Timestamp
			}
			if end := startedAt(cur).Add(cfg.Monitor); end.After(monitorEnd) {
				monitorEnd = end
			}
		case !cur.Status.State.Terminal():
			inFlight++
		}
	}

	switch {
	case state == api.UpdateStatePaused || state == api.UpdateStateRollbackPaused:
		return
	case !inRollout && len(stale) == 0:
		return
	case !inRollout:
		now := b.now
		svc = b.editService()
		svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStateUpdating, StartedAt: &now, Message: "update in progress"}
		if back {
			svc.UpdateStatus.State = api.UpdateStateRollbackStarted
			svc.UpdateStatus.Message = "rollback in progress"
		}
	}

	if failures > 0 && float64(failures) > cfg.MaxFailureRatio*float64(len(stale)+rolled) {
		switch cfg.FailureAction {
		case api.UpdateFailureActionPause:
			pauseUpdate(b, back, fmt.Sprintf("update paused due to failure or early termination of task %s", failedTask.ID))
			return
		case api.UpdateFailureActionRollback:
			switch {
			case back:
				pauseUpdate(b, true, fmt.Sprintf("rollback paused due to failure or early termination of task %s", failedTask.ID))
			case svc.PreviousSpec == nil:
				pauseUpdate(b, false, fmt.Sprintf("update paused due to failure or early termination of task %s: no previous spec to roll back to", failedTask.ID))
			default:
				startRollback(b, fmt.Sprintf("update rolled back due to failure or early termination of task %s", failedTask.ID))
			}
			return
		}
	}
	if inFlight > 0 {
		return
	}
	if len(stale) == 0 {
		if b.now.Before(monitorEnd) {
			b.wake(monitorEnd)
			return
		}
		finishUpdate(b, svc.UpdateStatus.GetState())
		return
	}
	if cfg.Delay > 0 && !lastReady.IsZero() && b.now.Before(lastReady.Add(cfg.Delay)) {
		b.wake(lastReady.Add(cfg.Delay))
		return
	}
	n := int(cfg.Parallelism)
	if n == 0 || n > len(stale) {
		n = len(stale)
	}
	// A replacement writes two tasks: a batch is at most half a plan's
	// budget (a parallelism of 0, "all", replaces 5,000 tasks at a time
	// by default), and one that does not fit in what this plan has left
	// waits, whole, for the next plan.
	n = min(n, max(b.budget/2, 1))
	if b.left() < 2*n {
		b.more = true
		return
	}
	for _, s := range stale[:n] {
		b.full() // a decision per slot: there is room for all of them
		cur := s.newest()
		if cfg.Order == api.UpdateOrderStartFirst {
			// Tasks of the slot that do not serve (an earlier
			// rollout's successor still starting) go now; one that
			// serves stays until the new task is ready.
			for _, o := range s.runnable() {
				if !ready(o) {
					b.setDesired(o, api.TaskStateShutdown)
				}
			}
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

// failedEarly reports whether a task of a rollout ended on its own (failed,
// was rejected or exited) before it had run for the monitor period: a task
// that never started counts, as in swarmkit.
func failedEarly(t *api.Task, monitor time.Duration) bool {
	switch t.Status.State {
	case api.TaskStateFailed, api.TaskStateRejected, api.TaskStateComplete:
	default:
		return false
	}
	cs := t.Status.ContainerStatus
	if cs == nil || cs.StartedAt.IsZero() {
		return true
	}
	return !t.Status.Timestamp.After(cs.StartedAt.Add(monitor))
}

// pauseUpdate stops a rollout where it is: paused (or rollback_paused).
func pauseUpdate(b *builder, back bool, msg string) {
	svc := b.editService()
	svc.UpdateStatus.State = api.UpdateStatePaused
	if back {
		svc.UpdateStatus.State = api.UpdateStateRollbackPaused
	}
	svc.UpdateStatus.Message = msg
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
