package orchestrator

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// Input is everything one reconciliation of one service looks at.
type Input struct {
	// Service is nil when the service was deleted: its tasks are then
	// shut down and removed.
	Service *api.Service
	// ServiceID identifies the service, also when Service is nil.
	ServiceID string
	// Tasks are all tasks of the service, history included.
	Tasks []*api.Task
	// Nodes are the cluster's nodes by ID. Replicated services only look up
	// the nodes their tasks are on; global services walk all of them.
	Nodes map[string]*api.Node
	// RetentionLimit is how many finished tasks a slot keeps.
	RetentionLimit int
	// DrainTimeout bounds how long a task on a drained node keeps running
	// while its replacement elsewhere is not yet up (it stops as soon as the
	// replacement runs); zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// MaxChanges bounds the task writes (creations, updates, deletions)
	// of one plan; zero means DefaultMaxChanges. What is left over is the
	// next plan's (Plan.More), so a service of 100,000 replicas is created
	// a bounded batch at a time, and a scale-down or a removal made
	// meanwhile is seen by the next batch.
	MaxChanges int
	Now        time.Time
}

// DefaultMaxChanges is the budget of a plan. A reconciliation reads all of
// a service's tasks, so its cost grows with them, and a scale of N tasks
// takes N/budget of them: with 1,000 a scale to 100,000 took 95 s in one
// process and its removal 190 s; with 10,000, 10 s and 9 s. The plan is
// written in transactions of TransactionChanges (one raft entry each) and
// the loop reads the spec again between them, so a change of spec still
// stops it within one transaction.
const DefaultMaxChanges = 10 * TransactionChanges

// TransactionChanges is how many task writes one transaction of a plan
// holds: store.MaxChangesPerTransaction, the most store.Batch puts in one
// raft entry (~0.7 MB of tasks).
const TransactionChanges = store.MaxChangesPerTransaction

// TransactionBytes bounds the tasks one transaction of a plan writes, by
// their templates' encoded size: half of raft's default bound on an entry
// (raft.DefaultMaxEntrySize, 8 MiB), so that tasks of a large template are
// written fewer at a time rather than refused.
const TransactionBytes = 4 << 20

// DefaultDrainTimeout is how long a drained node's task waits for its
// replacement to run before it is stopped anyway (the replacement may not
// fit anywhere): swarmkit's one minute wait for an old task.
const DefaultDrainTimeout = time.Minute

// Reconcile decides what brings one service's tasks to its spec. It is a
// pure function: same input, same plan; and it changes nothing it is
// given, so the orchestrator hands it the store's own objects.
func Reconcile(in Input) Plan {
	budget := in.MaxChanges
	if budget <= 0 {
		budget = DefaultMaxChanges
	}
	b := newBuilder(in.Now, in.Service, in.Tasks, budget)
	if in.Service == nil {
		removeAll(b)
		return b.plan()
	}
	svc := b.service
	switch {
	case svc.Spec.Mode.Replicated != nil:
		reconcileReplicated(b, in)
		rollingUpdate(b, in)
		rebalance(b, in)
	case svc.Spec.Mode.Global != nil:
		reconcileGlobal(b, in)
		rollingUpdate(b, in)
	case svc.Spec.Mode.ReplicatedJob != nil:
		// Jobs are never rolled: a spec change is a new iteration.
		reconcileReplicatedJob(b, in)
	case svc.Spec.Mode.GlobalJob != nil:
		reconcileGlobalJob(b, in)
	default:
		return Plan{} // no mode: validation refuses such a service
	}
	retireSuperseded(b)
	promoteReady(b)
	cleanUnassigned(b)
	trimHistory(b, in.RetentionLimit)
	return b.plan()
}

// runnable reports whether the managers still want the task to run (READY
// counts: a restart waiting out its delay, or a stop-first replacement
// waiting for its predecessor to stop).
func runnable(t *api.Task) bool { return t.DesiredState <= api.TaskStateRunning }

// alive reports whether the task may still be running somewhere: a worker
// has it and has not reported an end.
func alive(t *api.Task) bool {
	return t.Status.State >= api.TaskStateAssigned && !t.Status.State.Terminal()
}

// hasCheck reports whether a task's health matters before it counts as up:
// its spec sets a check.
func hasCheck(t *api.Task) bool { return t.Spec.HasHealthCheck() }

// ready reports whether a task is up: RUNNING, and healthy when it has a
// health check (or when its executor reports a health of its own, as Docker
// does for an image's HEALTHCHECK). An update counts a new task as done, a
// start-first or drain replacement lets its predecessor go, and listings
// count a task as running, only once it is ready.
func ready(t *api.Task) bool {
	if t.Status.State != api.TaskStateRunning {
		return false
	}
	switch t.Status.Health {
	case api.HealthHealthy:
		return true
	case api.HealthStarting, api.HealthUnhealthy:
		return false
	}
	return !hasCheck(t)
}

// startedAt is when a task started running, as its worker reported; for a
// report without it, the time of the report.
func startedAt(t *api.Task) time.Time {
	if cs := t.Status.ContainerStatus; cs != nil && !cs.StartedAt.IsZero() {
		return cs.StartedAt
	}
	return t.Status.Timestamp
}

// slotKey names a slot: the slot number of a replicated task, the node of a
// global one.
func slotKey(t *api.Task) string {
	if t.Slot != 0 {
		return strconv.FormatUint(t.Slot, 10)
	}
	return t.NodeID
}

type slotTasks struct {
	key   string
	slot  uint64
	tasks []*api.Task // oldest first
}

// newest returns the most recently created runnable task of the slot.
func (s *slotTasks) newest() *api.Task {
	var best *api.Task
	for _, t := range s.tasks {
		if runnable(t) && (best == nil || newer(t, best)) {
			best = t
		}
	}
	return best
}

func (s *slotTasks) runnable() []*api.Task {
	var out []*api.Task
	for _, t := range s.tasks {
		if runnable(t) {
			out = append(out, t)
		}
	}
	return out
}

func newer(a, b *api.Task) bool {
	if !a.Meta.CreatedAt.Equal(b.Meta.CreatedAt) {
		return a.Meta.CreatedAt.After(b.Meta.CreatedAt)
	}
	return a.ID > b.ID
}

// groupSlots groups the working view's tasks by slot, slots ordered by
// number (replicated) or node ID (global), tasks oldest first.
func groupSlots(b *builder) []*slotTasks { return groupTasks(b.all()) }

// groupTasks groups tasks by slot, as groupSlots.
func groupTasks(tasks []*api.Task) []*slotTasks {
	m := map[string]*slotTasks{}
	var keys []*slotTasks
	for _, t := range tasks {
		k := slotKey(t)
		s, ok := m[k]
		if !ok {
			s = &slotTasks{key: k, slot: t.Slot}
			m[k] = s
			keys = append(keys, s)
		}
		s.tasks = append(s.tasks, t)
	}
	for _, s := range keys {
		sort.SliceStable(s.tasks, func(i, j int) bool { return newer(s.tasks[j], s.tasks[i]) })
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].slot != keys[j].slot {
			return keys[i].slot < keys[j].slot
		}
		return keys[i].key < keys[j].key
	})
	return keys
}

// newTask makes a task of the service's current spec for a slot (or node).
func newTask(b *builder, slot uint64, nodeID string) *api.Task {
	svc := b.service
	t := &api.Task{
		ID:                 api.NewID(),
		ServiceID:          svc.ID,
		ServiceAnnotations: svc.Spec.Annotations.Copy(),
		Slot:               slot,
		NodeID:             nodeID,
		Spec:               svc.Spec.TaskTemplate.Copy(),
		SpecVersion:        svc.SpecVersion,
		DesiredState:       api.TaskStateRunning,
		Status: api.TaskStatus{
			Timestamp: b.now,
			State:     api.TaskStateNew,
			Message:   "created",
		},
	}
	if svc.Spec.Mode.IsJob() {
		t.JobIteration = svc.SpecVersion
	}
	// CreatedAt orders tasks within a slot; the store keeps the value set
	// here, so replicas agree on it.
	t.Meta.CreatedAt = b.createdAt(slotKey(t))
	if slot != 0 {
		t.Name = fmt.Sprintf("%s.%d", svc.Spec.Name, slot)
	} else {
		t.Name = fmt.Sprintf("%s.%s", svc.Spec.Name, nodeID)
	}
	return t
}

// removeAll winds down a deleted service: every task is told to go away.
func removeAll(b *builder) {
	for _, t := range b.all() {
		if t.DesiredState < api.TaskStateRemove {
			if b.full() {
				break
			}
			b.setDesired(t, api.TaskStateRemove)
		}
	}
	cleanUnassigned(b)
	trimHistory(b, 0)
}

// cleanUnassigned ends tasks the managers no longer want but no worker has
// yet: no one else would ever move them to a final state.
func cleanUnassigned(b *builder) {
	for _, t := range b.all() {
		if runnable(t) || t.Status.State >= api.TaskStateAssigned {
			continue
		}
		if !b.decide(t) {
			return
		}
		c := b.edit(t)
		c.Status = api.TaskStatus{Timestamp: b.now, State: api.TaskStateShutdown, Message: "shut down before it was assigned"}
	}
}

// retireSuperseded stops the older tasks of a slot once its newest task is
// ready: the predecessor of a start-first update, or a drained node's task
// whose replacement now runs elsewhere.
func retireSuperseded(b *builder) {
	for _, s := range groupSlots(b) {
		cur := s.newest()
		if cur == nil || !ready(cur) {
			continue
		}
		if b.full() {
			return
		}
		for _, o := range s.runnable() {
			if o.ID != cur.ID {
				b.setDesired(o, api.TaskStateShutdown)
			}
		}
	}
}

// forgetLost handles a task whose node left the cluster: no worker will
// ever report on it again, so a live one is marked ORPHANED, and it is
// marked REMOVE so that history trimming deletes it.
func forgetLost(b *builder, t *api.Task) {
	if alive(t) {
		c := b.edit(t)
		st := c.Status.Copy()
		c.Status = api.TaskStatus{Timestamp: b.now, State: api.TaskStateOrphaned, Message: "node removed from the cluster", ContainerStatus: st.ContainerStatus, Health: st.Health}
	}
	b.setDesired(t, api.TaskStateRemove)
}

// promoteReady starts tasks held at desired READY once their restart delay
// has passed and no older task of their slot can still be running
// (stop-first: the new task starts only after the old one stopped).
func promoteReady(b *builder) {
	for _, s := range groupSlots(b) {
		for _, t := range s.tasks {
			if t.DesiredState != api.TaskStateReady {
				continue
			}
			if !t.StartAfter.IsZero() && b.now.Before(t.StartAfter) {
				b.wake(t.StartAfter)
				continue
			}
			blocked := false
			for _, o := range s.tasks {
				if o.ID != t.ID && alive(o) && !runnable(o) {
					blocked = true
				}
			}
			if blocked {
				continue
			}
			if !b.decide(t) {
				return
			}
			b.setDesired(t, api.TaskStateRunning)
		}
	}
}

// trimHistory deletes finished tasks beyond the retention limit of each slot
// (oldest first), and every finished task marked REMOVE.
func trimHistory(b *builder, limit int) {
	for _, s := range groupSlots(b) {
		kept := 0
		for i := len(s.tasks) - 1; i >= 0; i-- { // newest first
			t := s.tasks[i]
			if runnable(t) || alive(t) {
				continue
			}
			if t.DesiredState >= api.TaskStateRemove || kept >= limit {
				if !b.decide(t) {
					return
				}
				b.remove(t)
				continue
			}
			kept++
		}
	}
}
