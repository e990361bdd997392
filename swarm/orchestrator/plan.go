package orchestrator

import (
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// Plan is what one reconciliation wants written: all of it in one
// transaction. Updated tasks and the service carry the Meta.Version they were
// read at, so a plan computed from stale state fails with a conflict instead
// of overwriting newer writes.
type Plan struct {
	Create []*api.Task
	Update []*api.Task
	Delete []*api.Task
	// Service is the service with a changed UpdateStatus or spec (an
	// automatic rollback), or nil.
	Service *api.Service
	// WakeAt is when the service must be looked at again even if nothing
	// changes (a restart delay or an update delay ends); zero if never.
	WakeAt time.Time
}

// Empty reports whether the plan writes nothing.
func (p Plan) Empty() bool {
	return len(p.Create) == 0 && len(p.Update) == 0 && len(p.Delete) == 0 && p.Service == nil
}

// builder accumulates a plan over a working view of the tasks, so that later
// steps of a reconciliation see what earlier steps decided.
type builder struct {
	now     time.Time
	tasks   map[string]*api.Task // working view: current copies
	order   []string             // task IDs in a stable order
	created map[string]bool
	changed map[string]bool
	deleted map[string]*api.Task
	service *api.Service // working copy of the service, nil if deleted
	svcDirt bool
	wakeAt  time.Time
	// latest is the newest CreatedAt per slot key, so that a task created
	// now is always the newest of its slot, even if this manager's clock is
	// behind the one that created the others.
	latest map[string]time.Time
}

func newBuilder(now time.Time, svc *api.Service, tasks []*api.Task) *builder {
	b := &builder{
		now:     now,
		tasks:   make(map[string]*api.Task, len(tasks)),
		created: map[string]bool{},
		changed: map[string]bool{},
		deleted: map[string]*api.Task{},
	}
	if svc != nil {
		b.service = svc.Copy()
	}
	b.latest = map[string]time.Time{}
	for _, t := range tasks {
		b.tasks[t.ID] = t
		b.order = append(b.order, t.ID)
		b.noteCreated(t)
	}
	return b
}

func (b *builder) noteCreated(t *api.Task) {
	k := slotKey(t)
	if t.Meta.CreatedAt.After(b.latest[k]) {
		b.latest[k] = t.Meta.CreatedAt
	}
}

// createdAt is the creation time for a new task of slot key k: now, or
// just after the slot's newest task.
func (b *builder) createdAt(k string) time.Time {
	if l := b.latest[k]; !b.now.After(l) {
		return l.Add(time.Nanosecond)
	}
	return b.now
}

// all returns the working view's tasks in a stable order.
func (b *builder) all() []*api.Task {
	out := make([]*api.Task, 0, len(b.order))
	for _, id := range b.order {
		if t, ok := b.tasks[id]; ok {
			out = append(out, t)
		}
	}
	return out
}

// edit returns a writable copy of a task, recorded as changed.
func (b *builder) edit(t *api.Task) *api.Task {
	cur := b.tasks[t.ID]
	if b.created[t.ID] || b.changed[t.ID] {
		return cur
	}
	c := cur.Copy()
	b.tasks[t.ID] = c
	b.changed[t.ID] = true
	return c
}

func (b *builder) setDesired(t *api.Task, s api.TaskState) {
	if b.tasks[t.ID].DesiredState == s {
		return
	}
	b.edit(t).DesiredState = s
}

func (b *builder) create(t *api.Task) {
	b.noteCreated(t)
	b.tasks[t.ID] = t
	b.order = append(b.order, t.ID)
	b.created[t.ID] = true
}

func (b *builder) remove(t *api.Task) {
	if b.created[t.ID] {
		delete(b.created, t.ID)
	} else {
		b.deleted[t.ID] = b.tasks[t.ID]
	}
	delete(b.changed, t.ID)
	delete(b.tasks, t.ID)
}

func (b *builder) wake(at time.Time) {
	if at.IsZero() {
		return
	}
	if b.wakeAt.IsZero() || at.Before(b.wakeAt) {
		b.wakeAt = at
	}
}

func (b *builder) editService() *api.Service {
	b.svcDirt = true
	return b.service
}

func (b *builder) plan() Plan {
	var p Plan
	for _, id := range b.order {
		t, ok := b.tasks[id]
		switch {
		case !ok:
		case b.created[id]:
			p.Create = append(p.Create, t)
		case b.changed[id]:
			p.Update = append(p.Update, t)
		}
	}
	for _, id := range b.order {
		if t, ok := b.deleted[id]; ok {
			p.Delete = append(p.Delete, t)
		}
	}
	if b.svcDirt {
		p.Service = b.service
	}
	p.WakeAt = b.wakeAt
	return p
}
