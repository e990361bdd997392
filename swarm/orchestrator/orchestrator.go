package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// Orchestrator is the loop that runs Reconcile for every service whose
// service object, tasks or nodes changed, and writes the plans. Only the
// leader runs it.
type Orchestrator struct {
	store *store.MemoryStore
	log   *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// MaxChanges bounds the task writes of one reconciliation (Input);
	// zero means DefaultMaxChanges. Set it before Run.
	MaxChanges int
}

// New returns an orchestrator over s.
func New(s *store.MemoryStore, log *slog.Logger) *Orchestrator {
	if log == nil {
		log = slog.Default()
	}
	return &Orchestrator{store: s, log: log.With("component", "orchestrator"), Now: func() time.Time { return time.Now().UTC() }}
}

// Run reconciles until ctx ends: a loop.Loop keyed by service ID, whose
// Resync (at start, so a new leader picks up whatever was in flight, and
// after a restore of the store) looks at every service, and whose events
// bring back the services they touch.
func (o *Orchestrator) Run(ctx context.Context) error {
	r := &reconciler{o: o, tasks: newView(), global: map[string]bool{}}
	return loop.New[string](loop.Config{
		Name:    "orchestrator",
		Store:   o.store,
		Filters: []store.EventFilter{store.ByKinds(api.KindService, api.KindTask, api.KindNode)},
		Shared:  true,
		Log:     o.log,
	}, r).Run(ctx)
}

// reconciler is the orchestrator's loop.Reconciler: the loop calls it from
// one goroutine, so its view needs no lock.
type reconciler struct {
	o     *Orchestrator
	tasks *view
	// global holds the services that node changes concern: global ones,
	// and those that rebalance.
	global map[string]bool
}

// Resync reads every service and task afresh, and adds every service, those
// that only had tasks (deleted services) and those only the previous view
// knew (gone in a restored state) included.
func (r *reconciler) Resync(tx store.ReadTx, q *loop.Queue[string]) error {
	for _, id := range r.tasks.serviceIDs() {
		q.Add(id)
	}
	for id := range r.global {
		q.Add(id)
	}
	r.tasks, r.global = newView(), map[string]bool{}
	services, err := tx.FindServices(store.All)
	if err != nil {
		return err
	}
	for _, s := range services {
		q.Add(s.ID)
		if s.Spec.Mode.IsGlobal() || WantsRebalance(s) {
			r.global[s.ID] = true
		}
	}
	all, err := tx.FindTasks(store.All)
	if err != nil {
		return err
	}
	for _, t := range all {
		q.Add(t.ServiceID)
		r.tasks.put(t)
	}
	return nil
}

// Observe keeps the view of the tasks and adds the services an event
// concerns: the service itself, a task's service, and for a node those
// with tasks on it and those that follow nodes.
func (r *reconciler) Observe(ev store.Event, q *loop.Queue[string]) {
	switch obj := ev.Object.(type) {
	case *api.Service:
		q.Add(obj.ID)
		if (obj.Spec.Mode.IsGlobal() || WantsRebalance(obj)) && ev.Action != store.ActionDelete {
			r.global[obj.ID] = true
		} else {
			delete(r.global, obj.ID)
		}
	case *api.Task:
		q.Add(obj.ServiceID)
		if ev.Action == store.ActionDelete {
			r.tasks.delete(obj)
		} else {
			r.tasks.put(obj)
		}
	case *api.Node:
		for id := range r.global {
			q.Add(id)
		}
		// Only the service IDs are read: the stored tasks will do.
		r.o.store.ViewShared(func(tx store.ReadTx) {
			tasks, err := tx.FindTasks(store.ByNodeID(obj.ID))
			if err != nil {
				return
			}
			for _, t := range tasks {
				q.Add(t.ServiceID)
			}
		})
	}
}

// Reconcile reconciles one service over its tasks as of the events taken
// in, writes its plan, and says when to look again: at once when the plan
// stopped at its budget (the next pass reads the service again, so a
// scale-down or a removal since applies at once), at the plan's wake time
// (a restart delay, an update's delay or monitor period, a drain timeout).
// A failed write (a conflict: someone wrote in between) is retried on the
// loop's backoff, or at once when the event of that write comes in.
func (r *reconciler) Reconcile(ctx context.Context, id string) (loop.Result, error) {
	wake, more, err := r.o.reconcile(ctx, id, r.tasks.tasks(id))
	switch {
	case err != nil:
		return loop.Result{}, err
	case more:
		return loop.Result{Requeue: true}, nil
	case wake.IsZero():
		return loop.Result{}, nil
	}
	if d := wake.Sub(r.o.Now()); d > 0 {
		return loop.Result{RequeueAfter: d}, nil
	}
	return loop.Result{Requeue: true}, nil // due already
}

// reconcile runs one service's reconciliation over its tasks (as of the
// events taken in) and writes its plan. It returns when the service wants to
// be looked at again, and whether the plan left more to do at once.
func (o *Orchestrator) reconcile(ctx context.Context, id string, tasks []*api.Task) (wake time.Time, more bool, err error) {
	in := Input{ServiceID: id, Tasks: tasks, Now: o.Now(), RetentionLimit: api.DefaultTaskHistoryRetentionLimit, Nodes: map[string]*api.Node{},
		MaxChanges: o.MaxChanges}
	// Read without copying: Reconcile changes nothing it is given, and
	// copying the service and the cluster object (its CA and keys) was
	// 2.5% of the leader's CPU per service update (docs/benchmarks.md).
	o.store.ViewShared(func(tx store.ReadTx) {
		in.Service = tx.GetService(id)
		if cs, _ := tx.FindClusters(store.All); len(cs) > 0 {
			in.RetentionLimit = int(cs[0].Spec.Orchestration.TaskHistoryRetentionLimit)
		}
		if in.Service != nil && (in.Service.Spec.Mode.IsGlobal() || WantsRebalance(in.Service)) {
			nodes, ferr := tx.FindNodes(store.All)
			if ferr != nil {
				err = ferr
				return
			}
			for _, n := range nodes {
				in.Nodes[n.ID] = n
			}
			return
		}
		for _, t := range in.Tasks {
			if t.NodeID != "" {
				if _, ok := in.Nodes[t.NodeID]; !ok {
					if n := tx.GetNode(t.NodeID); n != nil {
						in.Nodes[n.ID] = n
					}
				}
			}
		}
	})
	if err != nil {
		return time.Time{}, false, err
	}
	plan := Reconcile(in)
	if plan.Empty() {
		return plan.WakeAt, plan.More, nil
	}
	// The spec the plan was made for: a chunk is written only while the
	// service still has it (a scale, an update or a removal since stops
	// the plan, and the next one starts from the new spec).
	want := specVersion(in.Service)
	if plan.Service != nil {
		want = plan.Service.SpecVersion // a rollback the plan starts
	}
	for i, c := range chunks(plan, txLimit{writes: TransactionChanges, bytes: TransactionBytes, size: taskBytes()}) {
		if i > 0 {
			var now uint64
			o.store.View(func(tx store.ReadTx) { now = specVersion(tx.GetService(id)) })
			if now != want || ctx.Err() != nil {
				return time.Time{}, true, nil
			}
		}
		if err := o.store.UpdateContext(ctx, func(tx store.Tx) error { return apply(tx, c) }); err != nil {
			return time.Time{}, false, fmt.Errorf("service %s: %w", id, err)
		}
	}
	o.log.Debug("reconciled", "service", id, "created", len(plan.Create), "updated", len(plan.Update), "deleted", len(plan.Delete), "more", plan.More)
	return plan.WakeAt, plan.More, nil
}

// taskOverhead is what a task encodes to besides its template and service
// annotations: IDs, name, states, times, a status message (~0.7 KB).
const taskOverhead = 1 << 10

// taskBytes estimates the encoded size of tasks. Tasks of one spec version
// share their template and annotations, so each version is encoded once.
func taskBytes() func(*api.Task) int {
	seen := map[uint64]int{}
	return func(t *api.Task) int {
		n, ok := seen[t.SpecVersion]
		if !ok {
			spec, _ := json.Marshal(t.Spec)
			ann, _ := json.Marshal(t.ServiceAnnotations)
			n = len(spec) + len(ann) + taskOverhead
			seen[t.SpecVersion] = n
		}
		return n
	}
}

// specVersion is a service's SpecVersion, 0 once it is deleted.
func specVersion(s *api.Service) uint64 {
	if s == nil {
		return 0
	}
	return s.SpecVersion
}

// apply writes a plan in one transaction.
func apply(tx store.Tx, p Plan) error {
	if p.Service != nil {
		if err := tx.UpdateService(p.Service); err != nil {
			return err
		}
	}
	for _, t := range p.Create {
		if err := tx.CreateTask(t); err != nil {
			return err
		}
	}
	for _, t := range p.Update {
		if err := tx.UpdateTask(t); err != nil {
			return err
		}
	}
	for _, t := range p.Delete {
		if err := tx.DeleteTask(t.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}
