// Package placer is the manager loop around the pure scheduler package: it
// keeps the scheduler's view of nodes and placed tasks current from store
// events, hands it the pending tasks, and writes the decisions back in
// batches (ASSIGNED with a node, or PENDING with the reason nothing fits).
// Tasks that fit nowhere are retried when the cluster changes, and on a
// backoff timer besides. It runs as a loop.Loop of one key, the placement
// round, so a restore of the store resynchronises it like every other loop.
package placer

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiary-io/apiary/internal/backoff"
	"github.com/apiary-io/apiary/internal/idmap"
	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// Placer runs the scheduler against the store.
type Placer struct {
	store *store.MemoryStore
	sched *scheduler.Scheduler
	log   *slog.Logger

	nodes map[string]*api.Node
	// The tasks holding resources on a node, and those waiting for one;
	// idmap gives the memory of a removed service's tasks back.
	placed  idmap.Map[*api.Task]
	pending idmap.Map[*api.Task]
	// unfit spaces the rounds retrying tasks that fit nowhere.
	unfit *backoff.Backoff
	// current is the commit index the views are current as of (0 until an
	// event says it): a node whose version is not above it is the one in
	// the views.
	current uint64
	// asked says a round is due since the last one started: the events
	// after the first that asks for it need not add it again (a round of
	// 100,000 tasks brings 100,000 events).
	asked bool
}

// writeChunk is how many decisions one transaction of the write-back holds.
const writeChunk = store.MaxChangesPerTransaction

// Backoff bounds for retrying tasks that fit nowhere, and a round whose
// writes failed.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// New returns a placer using sched (scheduler.New(scheduler.DefaultConfig())
// when nil).
func New(s *store.MemoryStore, sched *scheduler.Scheduler, log *slog.Logger) *Placer {
	if sched == nil {
		sched = scheduler.New(scheduler.DefaultConfig())
	}
	if log == nil {
		log = slog.Default()
	}
	return &Placer{store: s, sched: sched, log: log.With("component", "placer"),
		unfit: backoff.New(backoff.Config{Base: minBackoff, Max: maxBackoff})}
}

// holdsResources reports whether a task counts against its node.
func holdsResources(t *api.Task) bool {
	return t.NodeID != "" && t.Status.State >= api.TaskStateAssigned && !t.Status.State.Terminal() && t.DesiredState <= api.TaskStateRunning
}

func waiting(t *api.Task) bool {
	return t.Status.State == api.TaskStatePending && t.DesiredState <= api.TaskStateRunning
}

func (p *Placer) track(t *api.Task) {
	p.placed.Delete(t.ID)
	p.pending.Delete(t.ID)
	switch {
	case holdsResources(t):
		p.placed.Put(t.ID, t)
	case waiting(t):
		p.pending.Put(t.ID, t)
	}
}

// round is the placer's one key: a placement round schedules every pending
// task at once, which is what makes it fast (one pass over the nodes for
// all the tasks of a group) and fair (tasks placed in ID order, whatever
// their service).
const round = "pending tasks"

// Run places tasks until ctx ends: a loop.Loop of one key, a placement
// round, added by every change while tasks wait. Its watch shares the
// store's objects (store.ViewAndWatchShared): the placer keeps every placed
// task, and holds them once, with the store, rather than a copy of each.
func (p *Placer) Run(ctx context.Context) error {
	return loop.New[string](loop.Config{
		Name:    "placer",
		Store:   p.store,
		Filters: []store.EventFilter{store.ByKinds(api.KindNode, api.KindTask)},
		Shared:  true,
		Retry:   backoff.Config{Base: minBackoff, Max: maxBackoff},
		Log:     p.log,
	}, (*reconciler)(p)).Run(ctx)
}

// reconciler is the Placer as its loop's loop.Reconciler; the loop calls it
// from one goroutine, so the views need no lock.
type reconciler Placer

// Resync rebuilds the views of nodes and tasks from the store.
func (r *reconciler) Resync(tx store.ReadTx, q *loop.Queue[string]) error {
	p := (*Placer)(r)
	p.nodes, p.placed, p.pending = map[string]*api.Node{}, idmap.Map[*api.Task]{}, idmap.Map[*api.Task]{}
	p.current = 0 // the snapshot's index is not told
	p.unfit.Reset()
	nodes, err := tx.FindNodes(store.All)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		p.nodes[n.ID] = n
	}
	tasks, err := tx.FindTasks(store.All)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		p.track(t)
	}
	q.Add(round)
	p.asked = true
	return nil
}

// Observe keeps the views, and asks for a round while tasks wait: a task
// that came, a node that changed or resources that were let go may place
// them.
func (r *reconciler) Observe(ev store.Event, q *loop.Queue[string]) {
	p := (*Placer)(r)
	// Events come in commit order, all of them since the snapshot the
	// views were read from: once a commit's own event, its last, is in,
	// the views are current as of it.
	if ev.Action == store.ActionCommit {
		p.current = ev.Version
	}
	switch o := ev.Object.(type) {
	case *api.Node:
		if ev.Action == store.ActionDelete {
			delete(p.nodes, o.ID)
		} else {
			p.nodes[o.ID] = o
		}
		// The cluster changed: tasks that fit nowhere are tried at once
		// and anew.
		p.unfit.Reset()
	case *api.Task:
		if ev.Action == store.ActionDelete {
			p.placed.Delete(o.ID)
			p.pending.Delete(o.ID)
		} else {
			p.track(o)
		}
	default:
		return
	}
	if p.pending.Len() > 0 && !p.asked {
		q.Add(round)
		p.asked = true
	}
}

// Reconcile runs a placement round. Tasks that fit nowhere are tried again
// less and less often while nothing changes (an event tries them at once).
func (r *reconciler) Reconcile(ctx context.Context, _ string) (loop.Result, error) {
	p := (*Placer)(r)
	p.asked = false
	if p.pending.Len() == 0 {
		p.unfit.Reset()
		return loop.Result{}, nil
	}
	unplaced, err := p.place(ctx)
	switch {
	case err != nil:
		return loop.Result{}, fmt.Errorf("writing placements: %w", err)
	case unplaced > 0:
		return loop.Result{RequeueAfter: p.unfit.Next()}, nil
	}
	p.unfit.Reset()
	return loop.Result{}, nil
}

// sortByID sorts tasks by ID, the scheduler's input order. The first 16
// bytes of each ID are copied next to the task for the comparisons, which
// otherwise read every ID's bytes each time: a cache miss apiece when
// sorting 100,000 tasks.
func sortByID(ts []*api.Task) {
	type keyed struct {
		k [2]uint64
		t *api.Task
	}
	ks := make([]keyed, len(ts))
	for i, t := range ts {
		var b [16]byte
		copy(b[:], t.ID)
		ks[i] = keyed{[2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, t}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.k[0], b.k[0]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.k[1], b.k[1]); c != 0 {
			return c
		}
		return strings.Compare(a.t.ID, b.t.ID)
	})
	for i := range ks {
		ts[i] = ks[i].t
	}
}

// place runs the scheduler over every pending task and writes the outcome.
// It returns how many tasks found no node.
func (p *Placer) place(ctx context.Context) (int, error) {
	nodes := make([]*api.Node, 0, len(p.nodes))
	for _, n := range p.nodes {
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b *api.Node) int { return strings.Compare(a.ID, b.ID) })
	placed := make([]*api.Task, 0, p.placed.Len())
	p.placed.All(func(_ string, t *api.Task) bool { placed = append(placed, t); return true })
	// Tasks born with a node (global services) are pinned by the scheduler
	// to that node, which must still pass every filter.
	ts := make([]*api.Task, 0, p.pending.Len())
	p.pending.All(func(_ string, t *api.Task) bool { ts = append(ts, t); return true })
	sortByID(ts)
	decisions := p.sched.Schedule(scheduler.State{Nodes: nodes, Tasks: placed}, ts).Decisions

	// Write back in chunks, each one transaction (one raft entry once
	// replicated): a decision that lands is final even if another chunk
	// fails, and the failed ones come back through their events. Two
	// writers take chunks in turn, so that one builds its transaction while
	// the other's is applied (or, with raft, while it is replicated).
	//
	// Each decision is written from the placer's view of the task (the
	// store's own object, shared by its watch: never modified here, the
	// write goes through a shallow copy), the one it scheduled, as of the
	// version its watch delivered: a task
	// changed meanwhile fails its update with ErrConflict (or ErrNotFound
	// once deleted), which leaves the transaction as it was, and is skipped;
	// its event brings it back. Reading each task again in the transaction
	// would cost a copy per task for the same outcome.
	unplaced := 0
	for _, d := range decisions {
		if d.NodeID == "" {
			unplaced++
		}
	}
	now := time.Now().UTC()
	chunks := (len(decisions) + writeChunk - 1) / writeChunk
	var taken atomic.Int64
	var failed atomic.Bool
	var errOnce sync.Once
	var err error
	writer := func() {
		var next api.Task // the update: a shallow copy, which UpdateTask copies deeply
		for !failed.Load() {
			i := int(taken.Add(1) - 1)
			if i >= chunks {
				return
			}
			chunk := decisions[i*writeChunk : min((i+1)*writeChunk, len(decisions))]
			if werr := p.writeChunk(ctx, chunk, now, &next); werr != nil {
				errOnce.Do(func() { err = werr })
				failed.Store(true)
			}
		}
	}
	if chunks > 1 {
		var wg sync.WaitGroup
		wg.Go(writer)
		writer()
		wg.Wait()
	} else {
		writer()
	}
	return unplaced, err
}

// writeChunk writes decisions in one transaction, or, when they are too
// large for one raft entry (tasks with very large specs), in halves.
func (p *Placer) writeChunk(ctx context.Context, decisions []scheduler.Decision, now time.Time, next *api.Task) error {
	err := p.store.UpdateContext(ctx, func(tx store.Tx) error {
		// The nodes are read, in the transaction, from the latest committed
		// state, shared: it is at least as recent as the transaction's own
		// snapshot, and no node is copied (tx.GetNode copied one per
		// decision, ~4% of the CPU of a round of 100,000 tasks).
		var err error
		p.store.ViewShared(func(nodes store.ReadTx) { err = p.write(tx, nodes, decisions, now, next) })
		return err
	})
	if errors.Is(err, store.ErrTooLarge) && len(decisions) > 1 {
		half := len(decisions) / 2
		if err := p.writeChunk(ctx, decisions[:half], now, next); err != nil {
			return err
		}
		return p.writeChunk(ctx, decisions[half:], now, next)
	}
	return err
}

// write records decisions in tx, each from the placer's view of its task
// (the decision's Task, as the round gave it) through next, a scratch task.
// Tasks changed meanwhile are skipped, and so are assignments to nodes
// that, as nodes reads them now, no longer hold the decision (usable):
// those tasks stay pending, and the node's event brings a round that places
// them again.
func (p *Placer) write(tx store.Tx, nodes store.ReadTx, decisions []scheduler.Decision, now time.Time, next *api.Task) error {
	for _, d := range decisions {
		t := d.Task
		*next = *t
		switch {
		case d.NodeID == "":
			if t.Status.Message == d.Reason {
				continue // already says so: no write, no event loop
			}
			next.Status.Message = d.Reason
			next.Status.Timestamp = now
		case !p.usable(nodes.GetNode(d.NodeID)):
			continue
		default:
			next.NodeID = d.NodeID
			next.Status = api.TaskStatus{Timestamp: now, State: api.TaskStateAssigned, Message: "scheduler assigned task to node"}
		}
		if err := tx.UpdateTask(next); err != nil {
			if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
				continue // changed meanwhile; its event brings it back
			}
			return err
		}
	}
	return nil
}

// usable reports whether an assignment the scheduler made on a node, as
// the placer's view has it, still holds on the node as the write
// transaction reads it (now, the stored object: never modified). The round
// decides from its view, and the node may have gone down, been drained or
// removed meanwhile: written regardless, the task would stay ASSIGNED to a
// node that never runs it (the dispatcher orphans a node's tasks once, when
// it goes down). A node that changed what the filters read (resources,
// labels, platform, role) is not judged again here: the assignment is
// dropped, and the round its event brings decides from the new node.
//
// The store validates only what a transaction writes, so this narrows the
// race to the transaction's own lifetime rather than the whole round's.
func (p *Placer) usable(now *api.Node) bool {
	if now == nil || now.Status.State != api.NodeStateReady {
		return false
	}
	switch now.Spec.Availability {
	case api.NodeAvailabilityActive, "": // as the scheduler reads it
	default:
		return false
	}
	if now.Meta.Version <= p.current {
		// The very node the filters passed, known without a lookup of
		// the view for each of 100,000 decisions.
		return true
	}
	seen := p.nodes[now.ID]
	if seen == nil {
		return false
	}
	if now.Meta.Version == seen.Meta.Version {
		return true
	}
	// Changed in its status message or address, its manager status or its
	// certificate: nothing the filters read.
	return reflect.DeepEqual(now.Spec, seen.Spec) && reflect.DeepEqual(now.Description, seen.Description)
}
