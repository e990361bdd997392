package orchestrator

import (
	"sort"
	"time"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm/api"
)

// DryRunInput is what Simulate needs to tell what a service spec would do:
// the service as it would be stored, its tasks, and the cluster.
type DryRunInput struct {
	// Service is the service with the spec to try: for a new service, one
	// with an ID no stored service has and SpecVersion 1; for an update,
	// the stored service with the new spec and SpecVersion one more.
	Service *api.Service
	// Tasks are the service's tasks now (none for a new service).
	Tasks []*api.Task
	// Nodes are all the cluster's nodes.
	Nodes []*api.Node
	// Others are the tasks of other services that hold resources on their
	// nodes (scheduler.State.Tasks).
	Others []*api.Task
	// RetentionLimit is the cluster's task history retention.
	RetentionLimit int
	// Scheduler is the manager's (its plugins and weights): the placements
	// are the ones it would make.
	Scheduler *scheduler.Scheduler
	Now       time.Time
	// MaxRounds bounds the reconciliations simulated (0: DefaultDryRunRounds).
	MaxRounds int
}

// DefaultDryRunRounds bounds a dry run's simulation: each round is one
// reconciliation and one placement round, so a rolling update of n tasks
// one at a time takes about 3n rounds. A run cut short says so
// (DryRun.Truncated); the rounds it did are reported.
const DefaultDryRunRounds = 3000

// SlotChange is what a dry run would do to one slot (a replicated slot, or
// a global service's node).
type SlotChange struct {
	// Slot is the replicated slot, 0 for a global service.
	Slot uint64
	// Old is the task that runs the slot now and would stop, nil for a new
	// slot.
	Old *api.Task
	// New is the task that would run it, nil when the slot goes away. Its
	// NodeID is where the scheduler would place it, "" when it fits
	// nowhere: then Reason says why (the scheduler's "no suitable node
	// (...)").
	New    *api.Task
	Reason string
}

// DryRun is the outcome of Simulate.
type DryRun struct {
	// Create are new slots, Replace slots whose task is replaced (an
	// update, or a task on a node the service no longer fits), Remove
	// slots that go away (a scale-down, a node no longer eligible).
	Create, Replace, Remove []SlotChange
	// Unchanged counts the slots whose task would keep running.
	Unchanged int
	// Rounds is the number of reconciliations simulated; Truncated says
	// the simulation stopped at MaxRounds before the service settled.
	Rounds    int
	Truncated bool
	// Service is the service as the simulation left it (a failure action
	// may roll it back; its UpdateStatus says how the rollout ended).
	Service *api.Service
}

// Simulate runs the orchestrator's Reconcile and the scheduler over a copy
// of the cluster until the service settles, as the managers would after
// the service is written, assuming every task placed starts (and is
// healthy) and every task stopped stops: a rolling update goes batch by
// batch, delays and monitor periods skipped by moving the clock to the
// plan's wake time. It changes nothing but its own copies: the same pure
// functions the cluster runs, on a read of the store. What it cannot
// foresee: tasks that fail, nodes that change, other services' changes.
func Simulate(in DryRunInput) DryRun {
	rounds := in.MaxRounds
	if rounds <= 0 {
		rounds = DefaultDryRunRounds
	}
	sched := in.Scheduler
	if sched == nil {
		sched = scheduler.New(scheduler.DefaultConfig())
	}
	svc := in.Service.Copy()
	nodes := make(map[string]*api.Node, len(in.Nodes))
	sortedNodes := append([]*api.Node(nil), in.Nodes...)
	sort.Slice(sortedNodes, func(i, j int) bool { return sortedNodes[i].ID < sortedNodes[j].ID })
	for _, n := range sortedNodes {
		nodes[n.ID] = n
	}
	tasks := make(map[string]*api.Task, len(in.Tasks))
	before := map[string]*api.Task{} // slot key → the runnable task running it now
	for _, t := range in.Tasks {
		tasks[t.ID] = t
	}
	for _, s := range groupTasks(in.Tasks) {
		if cur := s.newest(); cur != nil {
			before[s.key] = cur
		}
	}
	reasons := map[string]string{} // task ID → why it fits nowhere
	now := in.Now
	out := DryRun{}
	for out.Rounds < rounds {
		out.Rounds++
		list := sortedTasks(tasks)
		p := Reconcile(Input{Service: svc, ServiceID: svc.ID, Tasks: list, Nodes: nodes,
			RetentionLimit: in.RetentionLimit, Now: now, MaxChanges: len(list) + 1000})
		changed := !p.Empty()
		if p.Service != nil {
			svc = p.Service
		}
		for _, t := range p.Create {
			tasks[t.ID] = t
		}
		for _, t := range p.Update {
			tasks[t.ID] = t
		}
		for _, t := range p.Delete {
			delete(tasks, t.ID)
		}
		if simulateCluster(sched, svc, tasks, sortedNodes, in.Others, reasons, now) {
			changed = true
		}
		if changed {
			continue
		}
		if p.WakeAt.After(now) {
			now = p.WakeAt // a delay or monitor period: skip it
			continue
		}
		out.Rounds--
		break
	}
	out.Truncated = out.Rounds >= rounds
	out.Service = svc
	after := map[string]*api.Task{}
	var keys []string
	seen := map[string]bool{}
	for _, s := range groupTasks(sortedTasks(tasks)) {
		if cur := s.newest(); cur != nil {
			after[s.key] = cur
		}
	}
	for k := range before {
		keys, seen[k] = append(keys, k), true
	}
	for k := range after {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return slotLess(before, after, keys[i], keys[j]) })
	for _, k := range keys {
		o, n := before[k], after[k]
		c := SlotChange{Old: o, New: n}
		if n != nil {
			c.Slot = n.Slot
			c.Reason = reasons[n.ID]
		} else {
			c.Slot = o.Slot
		}
		switch {
		case o == nil:
			out.Create = append(out.Create, c)
		case n == nil:
			out.Remove = append(out.Remove, c)
		case n.ID != o.ID:
			out.Replace = append(out.Replace, c)
		default:
			out.Unchanged++
		}
	}
	return out
}

// simulateCluster plays the allocator, the placer and the workers for one
// round: new tasks become pending, pending ones are placed by sched (or
// keep the reason they fit nowhere), placed tasks wanted running run
// (healthy; a job's run completes), and tasks no longer wanted stop. It
// reports whether any task changed.
func simulateCluster(sched *scheduler.Scheduler, svc *api.Service, tasks map[string]*api.Task, nodes []*api.Node, others []*api.Task, reasons map[string]string, now time.Time) bool {
	changed := false
	set := func(t *api.Task) { tasks[t.ID] = t; changed = true }
	var pending, placed []*api.Task
	placed = append(placed, others...)
	for _, t := range sortedTasks(tasks) {
		switch {
		case t.DesiredState > api.TaskStateRunning && alive(t):
			c := t.Copy()
			c.Status = api.TaskStatus{Timestamp: now, State: api.TaskStateShutdown, Message: "shutdown (dry run)"}
			set(c)
		case t.DesiredState > api.TaskStateRunning:
		case t.Status.State == api.TaskStateNew || t.Status.State == api.TaskStatePending:
			c := t.Copy()
			if c.Status.State == api.TaskStateNew {
				if svc.Endpoint != nil { // as the allocator gives it
					e := *svc.Endpoint
					c.Endpoint = &e
				}
				c.Status = api.TaskStatus{Timestamp: now, State: api.TaskStatePending}
				set(c)
			}
			pending = append(pending, c)
		case t.Status.State >= api.TaskStateAssigned && !t.Status.State.Terminal():
			placed = append(placed, t)
		}
	}
	if len(pending) > 0 {
		sortByID(pending)
		for _, d := range sched.Schedule(scheduler.State{Nodes: nodes, Tasks: placed}, pending).Decisions {
			if d.NodeID == "" {
				if reasons[d.TaskID] != d.Reason {
					reasons[d.TaskID] = d.Reason
					changed = true
				}
				continue
			}
			delete(reasons, d.TaskID)
			c := tasks[d.TaskID].Copy()
			c.NodeID = d.NodeID
			c.Status = api.TaskStatus{Timestamp: now, State: api.TaskStateAssigned}
			set(c)
		}
	}
	for _, t := range sortedTasks(tasks) {
		switch {
		case t.DesiredState == api.TaskStateRunning && t.Status.State == api.TaskStateAssigned:
			c := t.Copy()
			c.Status = api.TaskStatus{Timestamp: now, State: api.TaskStateRunning,
				ContainerStatus: &api.ContainerStatus{StartedAt: now}}
			if hasCheck(c) {
				c.Status.Health = api.HealthHealthy
			}
			set(c)
		case svc.Spec.Mode.IsJob() && t.DesiredState == api.TaskStateRunning && t.Status.State == api.TaskStateRunning:
			c := t.Copy()
			c.Status = api.TaskStatus{Timestamp: now, State: api.TaskStateComplete,
				ContainerStatus: &api.ContainerStatus{StartedAt: t.Status.Timestamp}}
			set(c)
		}
	}
	return changed
}

func sortedTasks(m map[string]*api.Task) []*api.Task {
	out := make([]*api.Task, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// sortByID sorts tasks by ID, the placer's order.
func sortByID(ts []*api.Task) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
}

// slotLess orders slots by number, then (global services) by node ID.
func slotLess(before, after map[string]*api.Task, a, b string) bool {
	ta, tb := before[a], before[b]
	if ta == nil {
		ta = after[a]
	}
	if tb == nil {
		tb = after[b]
	}
	if ta.Slot != tb.Slot {
		return ta.Slot < tb.Slot
	}
	return a < b
}
