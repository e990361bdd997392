package orchestrator

import (
	"sort"
	"strings"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm/api"
)

// WantsRebalance reports whether a service opted in to rebalancing with the
// label apiary.scheduler.rebalance=true.
func WantsRebalance(s *api.Service) bool {
	return s != nil && strings.EqualFold(s.Spec.Labels[scheduler.RebalanceLabel], "true")
}

// rebalance moves tasks of a steady replicated service toward the spread
// goal (when nodes joined, say): the scheduler names the tasks whose move
// strictly improves the spread, at most the update parallelism at a time,
// and each is replaced start-first (the successor is placed by the
// scheduler, which puts it where the spread wants it; the old task stops
// once the successor runs). Only a service at rest moves: every wanted task
// running its current template, no rollout under way.
func rebalance(b *builder, in Input) {
	svc := b.service
	if !WantsRebalance(svc) || svc.Spec.Mode.Replicated == nil {
		return
	}
	switch svc.UpdateStatus.GetState() {
	case api.UpdateStateUpdating, api.UpdateStateRollbackStarted:
		return
	}
	var placed []*api.Task
	for _, s := range groupSlots(b) {
		rs := s.runnable()
		if len(rs) == 0 {
			continue
		}
		if len(rs) > 1 {
			return // a replacement is under way
		}
		t := rs[0]
		if t.Status.State != api.TaskStateRunning || t.DesiredState != api.TaskStateRunning || !UpToDate(t, svc) {
			return
		}
		placed = append(placed, t)
	}
	if len(placed) != int(svc.Spec.Mode.Replicated.Replicas) {
		return
	}
	nodes := make([]*api.Node, 0, len(in.Nodes))
	for _, n := range in.Nodes {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	par := int(updateConfig(svc, false).Parallelism)
	if par == 0 {
		par = len(placed)
	}
	moves := scheduler.New(scheduler.DefaultConfig()).Rebalance(scheduler.State{Nodes: nodes, Tasks: placed}, svc.ID, par)
	byID := map[string]*api.Task{}
	for _, t := range placed {
		byID[t.ID] = t
	}
	for _, m := range moves {
		old := byID[m.TaskID]
		if old == nil {
			continue
		}
		if b.full() {
			return
		}
		nt := newTask(b, old.Slot, "")
		nt.Status.Message = "rebalance: moves " + old.ID + " off node " + old.NodeID
		b.create(nt)
	}
}
