package agent

import (
	"sort"

	"github.com/apiary-io/apiary/swarm/api"
)

// The node's own view of its tasks, for Config.OnTasks: the routing mesh
// publishes the tasks a node runs (with their host ports and health) in
// gossip, from the node itself rather than from the managers, so that a
// task's backend appears as soon as it runs and leaves as soon as it stops
// or fails its health check.

// noteStatus records t's latest status and tells OnTasks.
func (a *Agent) noteStatus(t *api.Task, st api.TaskStatus) {
	if a.cfg.OnTasks == nil {
		return
	}
	c := t.Copy()
	c.Status = st
	a.localMu.Lock()
	defer a.localMu.Unlock()
	a.local[t.ID] = c
	a.cfg.OnTasks(a.localTasksLocked())
}

// noteGone forgets a task and tells OnTasks.
func (a *Agent) noteGone(id string) {
	if a.cfg.OnTasks == nil {
		return
	}
	a.localMu.Lock()
	defer a.localMu.Unlock()
	if _, ok := a.local[id]; !ok {
		return
	}
	delete(a.local, id)
	a.cfg.OnTasks(a.localTasksLocked())
}

func (a *Agent) localTasksLocked() []*api.Task {
	out := make([]*api.Task, 0, len(a.local))
	for _, t := range a.local {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
