package allocator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/tidwall/btree"
)

// releasePerReconcile bounds the tasks one reconciliation releases: one
// transaction's worth. A service with more asks to be reconciled again
// (loop.Result.Requeue), after the keys ready before it, so a service of
// 100,000 new tasks does not hold up the others.
const releasePerReconcile = store.MaxChangesPerTransaction

// reconciler is the allocator's loop.Reconciler, keyed by service ID. Its
// view, kept from the store's events, says which services wait for their
// endpoint and which tasks of each service are NEW; a reconciliation reads
// the store for what it decides on, and re-reads in its transactions what
// it writes, so a view a moment behind costs a wasted read, never a wrong
// write.
type reconciler struct {
	store *store.MemoryStore
	log   *slog.Logger

	// waiting are the services whose endpoint does not match their spec:
	// those to retry when another service frees ports.
	waiting map[string]bool
	// newTasks are the IDs of the NEW tasks of each service, in order: a
	// release takes the lowest, which lie together in the store's trees,
	// so its transaction copies few of their nodes (taken at random, 1,000
	// tasks of 100,000 copied 2.5 times the memory and took twice as long).
	newTasks map[string]*btree.Set[string]
	// starved are the NEW tasks, by service, that found no free address
	// on one of their networks (or a network gone): out of newTasks, so
	// they are not tried again and again, until a task gives addresses
	// back or a network changes.
	starved map[string][]string
}

func newReconciler(s *store.MemoryStore, log *slog.Logger) *reconciler {
	return &reconciler{store: s, log: log, waiting: map[string]bool{}, newTasks: map[string]*btree.Set[string]{}, starved: map[string][]string{}}
}

// Resync rebuilds the view from the snapshot and adds every service.
func (r *reconciler) Resync(tx store.ReadTx, q *loop.Queue[string]) error {
	clear(r.waiting)
	clear(r.newTasks)
	clear(r.starved)
	services, err := tx.FindServices(store.All)
	if err != nil {
		return fmt.Errorf("allocator: read services: %w", err)
	}
	tasks, err := tx.FindTasks(store.ByTaskState(api.TaskStateNew))
	if err != nil {
		return fmt.Errorf("allocator: read new tasks: %w", err)
	}
	for _, t := range tasks {
		r.taskIsNew(t.ServiceID, t.ID, true)
	}
	for _, s := range services {
		if !allocated(s) {
			r.waiting[s.ID] = true
		}
		q.Add(s.ID)
	}
	return nil
}

// Observe keeps the view, and adds the services an event gives work: a
// service whose endpoint no longer matches its spec, or that was just
// allocated (its NEW tasks wait for it); every waiting service when ports
// are freed; the service of a NEW task.
func (r *reconciler) Observe(ev store.Event, q *loop.Queue[string]) {
	switch o := ev.Object.(type) {
	case *api.Service:
		var old *api.Service
		if ev.Action == store.ActionDelete {
			old = o
			delete(r.waiting, o.ID)
		} else {
			old, _ = ev.Old.(*api.Service)
			switch {
			case !allocated(o):
				r.waiting[o.ID] = true
				q.Add(o.ID)
			case old == nil || !allocated(old):
				delete(r.waiting, o.ID)
				q.Add(o.ID)
			}
		}
		// A service removed frees its VIPs, one changed may free ports.
		if ev.Action == store.ActionDelete || frees(old, o, false) {
			for id := range r.waiting {
				q.Add(id)
			}
		}
	case *api.Task:
		isNew := ev.Action != store.ActionDelete && o.Status.State == api.TaskStateNew
		r.taskIsNew(o.ServiceID, o.ID, isNew)
		if isNew {
			q.Add(o.ServiceID)
		}
		if len(r.starved) > 0 && len(o.Networks) > 0 && (ev.Action == store.ActionDelete || o.Status.State.Terminal()) {
			r.retryStarved(q)
		}
	case *api.Network:
		for id := range r.waiting {
			q.Add(id)
		}
		if len(r.starved) > 0 {
			r.retryStarved(q)
		}
	}
}

// retryStarved puts the tasks that wait for an address back among the
// NEW tasks, and adds their services.
func (r *reconciler) retryStarved(q *loop.Queue[string]) {
	for svc, ids := range r.starved {
		for _, id := range ids {
			r.taskIsNew(svc, id, true)
		}
		q.Add(svc)
	}
	clear(r.starved)
}

// frees reports whether a change of a service gives up ingress ports it
// held: it was deleted, or holds fewer ports since.
func frees(old, cur *api.Service, deleted bool) bool {
	held := portsUsed(old)
	if len(held) == 0 {
		return false
	}
	if deleted {
		return true
	}
	now := map[string]bool{}
	for _, k := range portsUsed(cur) {
		now[k] = true
	}
	for _, k := range held {
		if !now[k] {
			return true
		}
	}
	return false
}

// taskIsNew records whether a task of a service is NEW.
func (r *reconciler) taskIsNew(serviceID, taskID string, isNew bool) {
	if serviceID == "" {
		return // not the allocator's: it belongs to no service
	}
	ids := r.newTasks[serviceID]
	switch {
	case isNew && ids == nil:
		ids = &btree.Set[string]{}
		r.newTasks[serviceID] = ids
		fallthrough
	case isNew:
		ids.Insert(taskID)
	case ids != nil:
		ids.Delete(taskID)
		if ids.Len() == 0 {
			delete(r.newTasks, serviceID)
		}
	}
}

// Reconcile allocates a service's endpoint if it does not match its spec,
// then releases up to releasePerReconcile of its NEW tasks.
func (r *reconciler) Reconcile(ctx context.Context, id string) (loop.Result, error) {
	if id == "" {
		return loop.Result{}, nil
	}
	var s *api.Service
	var ep *api.Endpoint
	var err error
	// Read, never modified: the stored objects, not copies (a dynamic
	// port may look at thousands of holders before it finds a free one).
	r.store.ViewShared(func(tx store.ReadTx) {
		s = tx.GetService(id)
		if s != nil && !allocated(s) {
			ep, err = Endpoint(tx, s)
		}
	})
	if s == nil {
		return loop.Result{}, nil // its tasks stay NEW
	}
	if !allocated(s) {
		if errors.Is(err, ErrPortInUse) || errors.Is(err, ErrNoDynamicPort) ||
			errors.Is(err, ErrNoAddress) || errors.Is(err, ErrUnknownNetwork) {
			// Not an error of the loop's, to retry on a backoff: it
			// waits for a service to free ports or addresses, or for a
			// network to change (Observe adds it).
			r.log.Warn("cannot allocate service endpoint", "service", s.Spec.Name, "err", err)
			return loop.Result{}, nil
		}
		if err != nil {
			return loop.Result{}, fmt.Errorf("allocate service %s: %w", id, err)
		}
		version := s.Meta.Version
		if err := r.store.UpdateContext(ctx, func(tx store.Tx) error {
			cur := tx.GetService(id)
			if cur == nil {
				return nil
			}
			if cur.Meta.Version != version {
				return fmt.Errorf("service %s changed while allocating: %w", id, store.ErrConflict)
			}
			// The control API allocates too, in the transactions that
			// create and update services: a port chosen above may have
			// gone since. Only the chosen ports are looked at again, on
			// the store's latest state (no older than tx's) shared rather
			// than in tx, whose reads copy every service found: the
			// service itself under each of its ports (1,000 ports made
			// a million port copies).
			var free bool
			var err error
			r.store.ViewShared(func(latest store.ReadTx) { free, err = stillFree(latest, cur, ep) })
			if err != nil {
				return err
			}
			if !free {
				return fmt.Errorf("service %s: a port chosen was taken meanwhile: %w", id, store.ErrConflict)
			}
			cur.Endpoint = ep
			return tx.UpdateService(cur)
		}); err != nil {
			return loop.Result{}, fmt.Errorf("allocate service %s: %w", id, err)
		}
	}
	return r.release(ctx, id)
}

// stillFree reports whether the ingress ports an endpoint chosen for s
// publishes are still free in tx, by Endpoint's rules: an explicit port
// must be held by no other service's endpoint, a dynamic one also not asked
// for by number by another service. (A writer that commits between this
// look and the allocation's commit is not seen: the store does not check
// ports at apply time, as it checks names.)
func stillFree(tx store.ReadTx, s *api.Service, ep *api.Endpoint) (bool, error) {
	for i, p := range ep.Ports {
		if !usesPort(p) {
			continue
		}
		// Endpoint gives each port of the spec its place in ep.Ports.
		dynamic := i < len(ep.Spec.Ports) && ep.Spec.Ports[i].PublishedPort == 0
		others, err := tx.FindServices(store.ByPublishedPort(p.Protocol, p.PublishedPort))
		if err != nil {
			return false, err
		}
		for _, o := range others {
			if o.ID != s.ID && (dynamic || o.Endpoint != nil && len(o.Endpoint.Ports) > 0) {
				return false, nil
			}
		}
	}
	return true, nil
}

// errNotAllocated stops a release whose service is no longer allocated.
var errNotAllocated = errors.New("service not allocated")

// release moves up to releasePerReconcile NEW tasks of an allocated
// service to PENDING, with its endpoint; more asks to come back.
func (r *reconciler) release(ctx context.Context, serviceID string) (loop.Result, error) {
	ids := r.newTasks[serviceID]
	if ids == nil {
		return loop.Result{}, nil
	}
	batch := make([]string, 0, min(ids.Len(), releasePerReconcile))
	ids.Scan(func(id string) bool {
		batch = append(batch, id)
		return len(batch) < releasePerReconcile
	})
	now := time.Now().UTC()
	var starved map[string]error // tasks left NEW: no address for them
	written, err := r.store.UpdateInChunks(ctx, len(batch), func(tx store.Tx, lo, hi int) error {
		s := tx.GetService(serviceID)
		if s == nil || !allocated(s) {
			return errNotAllocated
		}
		var err error
		// The addresses taken are read from the store's latest state,
		// shared (no older than tx's: what tx would copy, every task of
		// each network, is only looked at); two writers that choose one
		// address are told apart by the store when the second applies.
		r.store.ViewShared(func(latest store.ReadTx) {
			sp := NewSpaces(latest)
			for _, id := range batch[lo:hi] {
				t := tx.GetTask(id)
				if t == nil || t.ServiceID != serviceID || t.Status.State != api.TaskStateNew {
					continue
				}
				nets, aerr := sp.TaskAttachments(s, t)
				if errors.Is(aerr, ErrNoAddress) || errors.Is(aerr, ErrUnknownNetwork) {
					if starved == nil {
						starved = map[string]error{}
					}
					starved[id] = aerr
					continue
				}
				if aerr != nil {
					err = aerr
					return
				}
				e := *s.Endpoint
				e.Spec = s.Endpoint.Spec.Copy()
				e.Ports = append([]api.PortConfig(nil), s.Endpoint.Ports...)
				e.VirtualIPs = append([]api.EndpointVirtualIP(nil), s.Endpoint.VirtualIPs...)
				t.Endpoint = &e
				t.Networks = nets
				t.Status = api.TaskStatus{Timestamp: now, State: api.TaskStatePending, Message: "pending task scheduling"}
				if err = tx.UpdateTask(t); err != nil {
					return
				}
			}
		})
		return err
	})
	// The tasks written (or found no longer NEW) leave the view now
	// rather than when their events come, so the next round takes others;
	// those left NEW for want of an address wait, apart, for one to be
	// freed.
	for _, id := range batch[:written] {
		r.taskIsNew(serviceID, id, false)
		if why := starved[id]; why != nil {
			if len(r.starved[serviceID]) == 0 {
				r.log.Warn("tasks wait for a network address", "service", serviceID, "err", why)
			}
			r.starved[serviceID] = append(r.starved[serviceID], id)
		}
	}
	if errors.Is(err, errNotAllocated) {
		// Changed or removed meanwhile: its tasks wait, in the view, for
		// the event that allocates it again.
		return loop.Result{}, nil
	}
	if err != nil {
		return loop.Result{}, fmt.Errorf("release new tasks of service %s: %w", serviceID, err)
	}
	return loop.Result{Requeue: r.newTasks[serviceID] != nil}, nil
}
