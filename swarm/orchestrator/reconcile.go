package orchestrator

import (
	"fmt"
	"sort"
	"strconv"
	"time"

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
	Now            time.Time
}

// Reconcile decides what brings one service's tasks to its spec. It is a
// pure function: same input, same plan.
func Reconcile(in Input) Plan {
	b := newBuilder(in.Now, in.Service, in.Tasks)
	if in.Service == nil {
		removeAll(b)
		return b.plan()
	}
	svc := b.service
	switch {
	case svc.Spec.Mode.Replicated != nil:
		reconcileReplicated(b, in)
	case svc.Spec.Mode.Global != nil:
		reconcileGlobal(b, in)
	default:
		// Jobs have their own reconciler (issue 7); until then their
		// tasks are left exactly as they are rather than half-handled.
		return Plan{}
	}
	rollingUpdate(b, in)
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
func groupSlots(b *builder) []*slotTasks {
	m := map[string]*slotTasks{}
	var keys []*slotTasks
	for _, t := range b.all() {
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
	// CreatedAt orders tasks within a slot; the store keeps the value set
	// here, so replicas agree on it.
	t.Meta.CreatedAt = b.now
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
		c := b.edit(t)
		c.Status = api.TaskStatus{Timestamp: b.now, State: api.TaskStateShutdown, Message: "shut down before it was assigned"}
	}
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
			if !blocked {
				b.setDesired(t, api.TaskStateRunning)
			}
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
				b.remove(t)
				continue
			}
			kept++
		}
	}
}
