package orchestrator

import (
	"sort"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// Plan is what one reconciliation wants written. Updated tasks and the
// service carry the Meta.Version they were read at, so a plan computed from
// stale state fails with a conflict instead of overwriting newer writes.
//
// A plan is made of decisions (restart this task, create that slot, stop
// this one), each writing one task or a few that must land together (a
// replacement stops one task and creates its successor). It is written in
// transactions of bounded size (chunks), each holding whole decisions, so a
// plan cut short (its spec changed, a conflict, a lost leadership) leaves
// every decision written or not at all.
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
	// More reports that the plan stopped at Input.MaxChanges with more
	// left to do: write it and reconcile again at once, from fresh state
	// (the spec may have changed meanwhile, or the service gone).
	More bool
	// decision maps each written task's ID to its decision, so that chunks
	// never split one.
	decision map[string]int
}

// Writes counts the tasks the plan writes.
func (p Plan) Writes() int { return len(p.Create) + len(p.Update) + len(p.Delete) }

// txLimit bounds one transaction of a plan: its task writes, and their
// bytes as size estimates them (a deletion carries only an ID: deleteBytes).
type txLimit struct {
	writes, bytes int
	size          func(*api.Task) int
}

const deleteBytes = 64

// bytes estimates what a plan's task writes encode to.
func (l txLimit) of(p *Plan) int {
	n := len(p.Delete) * deleteBytes
	for _, ts := range [][]*api.Task{p.Create, p.Update} {
		for _, t := range ts {
			n += l.size(t)
		}
	}
	return n
}

// chunks splits a plan into plans within limit each, made of whole
// decisions, in decision order; the service write goes with the first. A
// decision beyond the limit on its own (none makes more than a few writes)
// is a chunk of its own.
func chunks(p Plan, limit txLimit) []Plan {
	if p.Writes() <= limit.writes && limit.of(&p) <= limit.bytes {
		return []Plan{p}
	}
	byDecision := map[int]*Plan{}
	var decisions []int
	at := func(t *api.Task) *Plan {
		d := p.decision[t.ID]
		c, ok := byDecision[d]
		if !ok {
			c = &Plan{}
			byDecision[d] = c
			decisions = append(decisions, d)
		}
		return c
	}
	for _, t := range p.Create {
		c := at(t)
		c.Create = append(c.Create, t)
	}
	for _, t := range p.Update {
		c := at(t)
		c.Update = append(c.Update, t)
	}
	for _, t := range p.Delete {
		c := at(t)
		c.Delete = append(c.Delete, t)
	}
	sort.Ints(decisions)
	out := []Plan{{Service: p.Service}}
	bytes := 0 // of the last chunk
	for _, d := range decisions {
		c, last := byDecision[d], &out[len(out)-1]
		b := limit.of(c)
		if last.Writes() > 0 && (last.Writes()+c.Writes() > limit.writes || bytes+b > limit.bytes) {
			out = append(out, Plan{})
			last, bytes = &out[len(out)-1], 0
		}
		last.Create = append(last.Create, c.Create...)
		last.Update = append(last.Update, c.Update...)
		last.Delete = append(last.Delete, c.Delete...)
		bytes += b
	}
	return out
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
	service *api.Service // the service (the caller's until editService copies it), nil if deleted
	svcDirt bool
	wakeAt  time.Time
	// latest is the newest CreatedAt per slot key, so that a task created
	// now is always the newest of its slot, even if this manager's clock is
	// behind the one that created the others.
	latest map[string]time.Time
	// budget is how many task writes the plan may make; more is set once
	// a decision was put off for want of it.
	budget int
	more   bool
	// decision numbers the decision being made: full starts a new one,
	// reopen goes back to the one that wrote a task. written records the
	// decision of each task written, and merged joins two decisions that
	// wrote the same task: one write carries both.
	decision int
	written  map[string]int
	merged   []int
}

func newBuilder(now time.Time, svc *api.Service, tasks []*api.Task, budget int) *builder {
	// The maps are made on their first write (set): most passes, one per
	// change of a service, write nothing, and six empty maps were a tenth
	// of what a leader allocated per update of a service with no tasks.
	b := &builder{now: now, budget: budget, merged: []int{0}}
	// The service is the caller's (the store's own, shared): editService
	// copies it before the first change.
	b.service = svc
	if len(tasks) > 0 {
		b.tasks = make(map[string]*api.Task, len(tasks))
	}
	for _, t := range tasks {
		b.tasks[t.ID] = t
		b.order = append(b.order, t.ID)
		b.noteCreated(t)
	}
	return b
}

// full reports whether the plan has used its budget of task writes, and if
// so records that something was left for the next pass. Decision points
// call it before each decision, never inside one, so that a decision that
// writes several tasks (a replacement stops one task and creates another)
// is made whole or not at all: a plan may exceed the budget by the writes
// of its last decision.
func (b *builder) full() bool {
	if b.left() > 0 {
		b.decision = len(b.merged)
		b.merged = append(b.merged, b.decision)
		return false
	}
	b.more = true
	return true
}

// reopen makes the decision that wrote t the current one, for a write that
// finishes what it started (ending a task it no longer wants, deleting a
// task it ended), and reports whether t was written. Such a write costs no
// budget: the task is written anyway.
func (b *builder) reopen(t *api.Task) bool {
	d, ok := b.written[t.ID]
	if ok {
		b.decision = b.root(d)
	}
	return ok
}

// set writes m[k] = v, making m first if it is nil.
func set[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}

// decide starts a decision about t: the one that wrote t if any (reopen),
// else a new one if the budget allows (full). It reports whether the
// decision may be made.
func (b *builder) decide(t *api.Task) bool { return b.reopen(t) || !b.full() }

// touch records that the current decision writes task id.
func (b *builder) touch(id string) {
	d, ok := b.written[id]
	if !ok {
		set(&b.written, id, b.decision)
		return
	}
	// Join the two decisions under the older one.
	x, y := b.root(d), b.root(b.decision)
	if x > y {
		x, y = y, x
	}
	b.merged[y] = x
}

// root returns the decision a decision was merged into.
func (b *builder) root(d int) int {
	for b.merged[d] != d {
		b.merged[d] = b.merged[b.merged[d]]
		d = b.merged[d]
	}
	return d
}

// left returns how many task writes the plan may still make.
func (b *builder) left() int {
	return b.budget - len(b.created) - len(b.changed) - len(b.deleted)
}

func (b *builder) noteCreated(t *api.Task) {
	k := slotKey(t)
	if t.Meta.CreatedAt.After(b.latest[k]) {
		set(&b.latest, k, t.Meta.CreatedAt)
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
	b.touch(t.ID)
	cur := b.tasks[t.ID]
	if b.created[t.ID] || b.changed[t.ID] {
		return cur
	}
	c := cur.Copy()
	b.tasks[t.ID] = c
	set(&b.changed, t.ID, true)
	return c
}

func (b *builder) setDesired(t *api.Task, s api.TaskState) {
	if b.tasks[t.ID].DesiredState == s {
		return
	}
	b.edit(t).DesiredState = s
}

func (b *builder) create(t *api.Task) {
	b.touch(t.ID)
	b.noteCreated(t)
	set(&b.tasks, t.ID, t)
	b.order = append(b.order, t.ID)
	set(&b.created, t.ID, true)
}

func (b *builder) remove(t *api.Task) {
	b.touch(t.ID)
	if b.created[t.ID] {
		delete(b.created, t.ID)
	} else {
		set(&b.deleted, t.ID, b.tasks[t.ID])
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
	if !b.svcDirt {
		b.service = b.service.Copy()
		b.svcDirt = true
	}
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
	p.More = b.more
	p.decision = make(map[string]int, p.Writes())
	for _, ts := range [][]*api.Task{p.Create, p.Update, p.Delete} {
		for _, t := range ts {
			p.decision[t.ID] = b.root(b.written[t.ID])
		}
	}
	return p
}
