package orchestrator

import (
	"fmt"
	"sort"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// UpToDate reports whether a task runs its service's current template.
func UpToDate(t *api.Task, svc *api.Service) bool {
	return !dirty(t, svc, newTemplateJSON(svc))
}

// Eligible reports whether a global service's task belongs on node n.
func Eligible(n *api.Node, spec *api.TaskSpec) bool { return eligible(n, spec) }

// Progress summarises a service's tasks as listings show it.
type Progress struct {
	// Desired is how many tasks should run: the replica count, or the
	// number of eligible nodes for a global service. For a replicated job
	// it is how many tasks run at once until it is done (MaxConcurrent, at
	// most the completions still missing); for a global job, the eligible
	// nodes that have not completed it.
	Desired int
	// Running counts tasks that are wanted running and up: RUNNING, and
	// healthy when they have a health check.
	Running int
	// UpToDate counts running tasks of the current template.
	UpToDate int
	// Stopping counts tasks no longer wanted that still run.
	Stopping int
	// Completed counts tasks that finished successfully and are still
	// wanted: for a job, the tasks of its current iteration that completed.
	Completed int
	// Total is, for a replicated job, the completions it needs
	// (TotalCompletions); 0 otherwise.
	Total int
}

// Status returns the counts as Docker's ServiceStatus.
func (p Progress) Status() *api.ServiceStatus {
	return &api.ServiceStatus{RunningTasks: uint64(p.Running), DesiredTasks: uint64(p.Desired), CompletedTasks: uint64(p.Completed)}
}

// Measure counts a service's tasks. nodes matter for global services only.
func Measure(svc *api.Service, tasks []*api.Task, nodes []*api.Node) Progress {
	var p Progress
	mode := svc.Spec.Mode
	if mode.IsJob() {
		return measureJob(svc, tasks, nodes)
	}
	switch {
	case mode.Replicated != nil:
		p.Desired = int(mode.Replicated.Replicas)
	case mode.Global != nil:
		elig := newEligibility(&svc.Spec.TaskTemplate)
		for _, n := range nodes {
			if elig.ok(n) && n.Spec.Availability == api.NodeAvailabilityActive {
				p.Desired++
			}
		}
	}
	j := newTemplateJSON(svc)
	for _, t := range tasks {
		switch {
		case runnable(t) && ready(t):
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

// measureJob counts a job's tasks of its current iteration.
func measureJob(svc *api.Service, tasks []*api.Task, nodes []*api.Node) Progress {
	var p Progress
	iter := svc.SpecVersion
	doneOn := map[string]bool{}
	for _, t := range tasks {
		switch {
		case t.JobIteration != iter:
			if alive(t) {
				p.Stopping++
			}
		case t.Status.State == api.TaskStateComplete:
			p.Completed++
			p.UpToDate++
			doneOn[t.NodeID] = true
		case runnable(t) && ready(t):
			p.Running++
			p.UpToDate++
		case !runnable(t) && alive(t):
			p.Stopping++
		}
	}
	if j := svc.Spec.Mode.ReplicatedJob; j != nil {
		maxConcurrent, total := jobLimits(j)
		p.Total = total
		p.Desired = max(min(maxConcurrent, total-p.Completed), 0)
		return p
	}
	elig := newEligibility(&svc.Spec.TaskTemplate)
	for _, n := range nodes {
		if !doneOn[n.ID] && elig.ok(n) && n.Spec.Availability == api.NodeAvailabilityActive {
			p.Desired++
		}
	}
	return p
}

// Converged reports whether a service's actual state matches its desired
// state: every wanted task runs the current template, nothing else runs, and
// no rollout is in progress. When not, it says why in one line.
//
// A job has converged when it is done: every completion it needs happened
// (on every eligible node, for a global job) and nothing of it runs.
func Converged(svc *api.Service, tasks []*api.Task, nodes []*api.Node) (bool, string) {
	p := Measure(svc, tasks, nodes)
	if svc.Spec.Mode.IsJob() {
		if p.Desired == 0 && p.Running == 0 && p.Stopping == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("service %q: job not done: %d completed, %d running, %d more to run at once, %d stopping%s",
			svc.Spec.Name, p.Completed, p.Running, p.Desired, p.Stopping, notRunning(svc, tasks))
	}
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
	msg := fmt.Sprintf("service %q: %d/%d running, %d up to date, %d stopping", svc.Spec.Name, p.Running, p.Desired, p.UpToDate, p.Stopping)
	return false, msg + notRunning(svc, tasks)
}

// notRunning explains with the states of the wanted tasks that are not up,
// as " (2 pending: no suitable node; 1 running: health starting)", or "".
func notRunning(svc *api.Service, tasks []*api.Task) string {
	states := map[string]int{}
	for _, t := range tasks {
		if svc.Spec.Mode.IsJob() && (t.JobIteration != svc.SpecVersion || t.Status.State == api.TaskStateComplete) {
			continue
		}
		if runnable(t) && !ready(t) {
			k := t.Status.State.String()
			if t.Status.State == api.TaskStateRunning {
				k += ": health " + t.Status.Health
			}
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
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}
