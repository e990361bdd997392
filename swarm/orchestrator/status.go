package orchestrator

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// UpToDate reports whether a task runs its service's current template.
func UpToDate(t *api.Task, svc *api.Service) bool {
	j, _ := json.Marshal(svc.Spec.TaskTemplate)
	return !dirty(t, svc, j)
}

// Eligible reports whether a global service's task belongs on node n.
func Eligible(n *api.Node, spec *api.TaskSpec) bool { return eligible(n, spec) }

// Progress summarises a service's tasks as listings show it.
type Progress struct {
	// Desired is how many tasks should run: the replica count, or the
	// number of eligible nodes for a global service.
	Desired int
	// Running counts tasks observed RUNNING that are wanted running.
	Running int
	// UpToDate counts running tasks of the current template.
	UpToDate int
	// Stopping counts tasks no longer wanted that still run.
	Stopping int
	// Completed counts tasks that finished successfully and are still wanted.
	Completed int
}

// Measure counts a service's tasks. nodes matter for global services only.
func Measure(svc *api.Service, tasks []*api.Task, nodes []*api.Node) Progress {
	var p Progress
	switch {
	case svc.Spec.Mode.Replicated != nil:
		p.Desired = int(svc.Spec.Mode.Replicated.Replicas)
	case svc.Spec.Mode.Global != nil:
		elig := newEligibility(&svc.Spec.TaskTemplate)
		for _, n := range nodes {
			if elig.ok(n) && n.Spec.Availability == api.NodeAvailabilityActive {
				p.Desired++
			}
		}
	}
	j, _ := json.Marshal(svc.Spec.TaskTemplate)
	for _, t := range tasks {
		running := t.Status.State == api.TaskStateRunning
		switch {
		case runnable(t) && running:
			p.Running++
			if !dirty(t, svc, j) {
				p.UpToDate++
			}
		case runnable(t) && t.Status.State == api.TaskStateComplete:
			p.Completed++
		case !runnable(t) && alive(t):
			p.Stopping++
		}
	}
	return p
}

// Converged reports whether a service's actual state matches its desired
// state: every wanted task runs the current template, nothing else runs, and
// no rollout is in progress. When not, it says why in one line.
func Converged(svc *api.Service, tasks []*api.Task, nodes []*api.Node) (bool, string) {
	p := Measure(svc, tasks, nodes)
	if u := svc.UpdateStatus; u != nil {
		switch u.State {
		case api.UpdateStatePaused, api.UpdateStateRollbackPaused:
			return false, fmt.Sprintf("service %q: %s: %s", svc.Spec.Name, u.State, u.Message)
		case api.UpdateStateUpdating, api.UpdateStateRollbackStarted:
			return false, fmt.Sprintf("service %q: %s (%d/%d tasks up to date)", svc.Spec.Name, u.State, p.UpToDate, p.Desired)
		}
	}
	if p.Running == p.Desired && p.UpToDate == p.Desired && p.Stopping == 0 {
		return true, ""
	}
	// Explain with the states of the tasks that are not running.
	states := map[string]int{}
	for _, t := range tasks {
		if runnable(t) && t.Status.State != api.TaskStateRunning {
			k := t.Status.State.String()
			if t.Status.Message != "" {
				k += ": " + t.Status.Message
			}
			if t.Status.Err != "" {
				k += ": " + t.Status.Err
			}
			states[k]++
		}
	}
	var parts []string
	for k, n := range states {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("service %q: %d/%d running, %d up to date, %d stopping", svc.Spec.Name, p.Running, p.Desired, p.UpToDate, p.Stopping)
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	return false, msg
}
