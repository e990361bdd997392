package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

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

// Run reconciles until ctx ends. It first looks at every service (so a new
// leader picks up whatever was in flight), then at those that events touch.
func (o *Orchestrator) Run(ctx context.Context) error {
	pending := map[string]bool{}
	global := map[string]bool{}
	tasks := newView()
	w, err := o.store.ViewAndWatchShared(func(tx store.ReadTx) error {
		services, err := tx.FindServices(store.All)
		if err != nil {
			return err
		}
		for _, s := range services {
			pending[s.ID] = true
			if s.Spec.Mode.IsGlobal() || WantsRebalance(s) {
				global[s.ID] = true // node changes concern it
			}
		}
		all, err := tx.FindTasks(store.All)
		if err != nil {
			return err
		}
		for _, t := range all {
			pending[t.ServiceID] = true // tasks of deleted services too
			tasks.put(t)
		}
		return nil
	}, store.ByKinds(api.KindService, api.KindTask, api.KindNode))
	if err != nil {
		return fmt.Errorf("orchestrator: watch store: %w", err)
	}
	defer w.Close()

	wakes := map[string]time.Time{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	armed := false
	rearm := func() {
		var first time.Time
		for _, at := range wakes {
			if first.IsZero() || at.Before(first) {
				first = at
			}
		}
		if armed && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		armed = !first.IsZero()
		if armed {
			timer.Reset(max(first.Sub(o.Now()), 0))
		}
	}

	for {
		if len(pending) > 0 && w.Pending() == 0 {
			for id := range pending {
				if ctx.Err() != nil {
					return nil
				}
				delete(pending, id)
				delete(wakes, id)
				at, more, err := o.reconcile(ctx, id, tasks.tasks(id))
				switch {
				case errors.Is(err, store.ErrConflict):
					// Someone wrote in between: the event it made will
					// bring the service back with fresh state.
					pending[id] = true
				case err != nil && ctx.Err() == nil:
					o.log.Warn("reconcile failed", "service", id, "err", err)
					wakes[id] = o.Now().Add(time.Second)
				case more:
					// The plan stopped at its budget: the next pass
					// reads the service again, so a scale-down or a
					// removal since this one applies at once.
					pending[id] = true
				case !at.IsZero():
					wakes[id] = at
				}
				if w.Pending() > 0 {
					break // take in fresh events before going on
				}
			}
			rearm()
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				return fmt.Errorf("orchestrator: store watch closed")
			}
			o.note(ev, pending, global, tasks)
		case <-timer.C:
			armed = false
			now := o.Now()
			for id, at := range wakes {
				if !at.After(now) {
					pending[id] = true
					delete(wakes, id)
				}
			}
			rearm()
		}
	}
}

// note marks the services an event concerns, and keeps the view of the
// tasks.
func (o *Orchestrator) note(ev store.Event, pending, global map[string]bool, tasks *view) {
	switch obj := ev.Object.(type) {
	case *api.Service:
		pending[obj.ID] = true
		if (obj.Spec.Mode.IsGlobal() || WantsRebalance(obj)) && ev.Action != store.ActionDelete {
			global[obj.ID] = true
		} else {
			delete(global, obj.ID)
		}
	case *api.Task:
		pending[obj.ServiceID] = true
		if ev.Action == store.ActionDelete {
			tasks.delete(obj)
		} else {
			tasks.put(obj)
		}
	case *api.Node:
		for id := range global {
			pending[id] = true
		}
		o.store.View(func(tx store.ReadTx) {
			tasks, err := tx.FindTasks(store.ByNodeID(obj.ID))
			if err != nil {
				return
			}
			for _, t := range tasks {
				pending[t.ServiceID] = true
			}
		})
	}
	if ev.Action == store.ActionRestore {
		// The whole state was replaced: look at everything again.
		for _, id := range tasks.serviceIDs() {
			pending[id] = true // services that had tasks, gone or not
		}
		*tasks = *newView()
		o.store.View(func(tx store.ReadTx) {
			services, _ := tx.FindServices(store.All)
			for _, s := range services {
				pending[s.ID] = true
			}
			all, _ := tx.FindTasks(store.All)
			for _, t := range all {
				pending[t.ServiceID] = true
				tasks.put(t)
			}
		})
	}
}

// reconcile runs one service's reconciliation over its tasks (as of the
// events taken in) and writes its plan. It returns when the service wants to
// be looked at again, and whether the plan left more to do at once.
func (o *Orchestrator) reconcile(ctx context.Context, id string, tasks []*api.Task) (wake time.Time, more bool, err error) {
	in := Input{ServiceID: id, Tasks: tasks, Now: o.Now(), RetentionLimit: api.DefaultTaskHistoryRetentionLimit, Nodes: map[string]*api.Node{},
		MaxChanges: o.MaxChanges}
	o.store.View(func(tx store.ReadTx) {
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
