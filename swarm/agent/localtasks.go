package agent

import (
	"context"
	"sort"

	"github.com/apiary-io/apiary/swarm/api"
)

// The node's own view of its tasks, for Config.OnTasks: the routing mesh
// publishes the tasks a node runs (with their host ports and health) in
// gossip, from the node itself rather than from the managers, so that a
// task's backend appears as soon as it runs and leaves as soon as it stops
// or fails its health check.

// noteStatus records t's latest status for OnTasks.
func (a *Agent) noteStatus(t *api.Task, st api.TaskStatus) {
	if a.cfg.OnTasks == nil {
		return
	}
	c := t.Copy()
	c.Status = st
	a.localMu.Lock()
	a.local[t.ID] = c
	a.localMu.Unlock()
	a.kickLocal()
}

// noteGone forgets a task for OnTasks.
func (a *Agent) noteGone(id string) {
	if a.cfg.OnTasks == nil {
		return
	}
	a.localMu.Lock()
	_, ok := a.local[id]
	delete(a.local, id)
	a.localMu.Unlock()
	if ok {
		a.kickLocal()
	}
}

func (a *Agent) kickLocal() {
	select {
	case a.localKick <- struct{}{}:
	default:
	}
}

// deliverTasks hands the set to OnTasks after each change; changes made
// while a call runs are handed over together in the next.
func (a *Agent) deliverTasks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.localKick:
		}
		a.cfg.OnTasks(a.localTasks())
	}
}

func (a *Agent) localTasks() []*api.Task {
	a.localMu.Lock()
	defer a.localMu.Unlock()
	out := make([]*api.Task, 0, len(a.local))
	for _, t := range a.local {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
