// Package allocator gives services and tasks the network resources they
// need before they may be scheduled: today the published ports of the
// routing mesh (explicit ones checked, dynamic ones chosen from 30000-32767).
// A task leaves NEW for PENDING only once its service's endpoint is
// allocated, so no task is ever placed with its ports undecided. Virtual IPs
// and task addresses join here with the mesh.
package allocator

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

// The dynamic range of published ports, as Swarm's.
const (
	DynamicPortStart = 30000
	DynamicPortEnd   = 32767
)

// Allocator is the loop that allocates endpoints and releases new tasks.
type Allocator struct {
	store *store.MemoryStore
	log   *slog.Logger
}

// New returns an allocator over s.
func New(s *store.MemoryStore, log *slog.Logger) *Allocator {
	if log == nil {
		log = slog.Default()
	}
	return &Allocator{store: s, log: log.With("component", "allocator")}
}

// Run allocates until ctx ends.
func (a *Allocator) Run(ctx context.Context) error {
	// The events are only looked at, never kept or changed: shared, not copied.
	w, err := a.store.ViewAndWatchShared(func(store.ReadTx) error { return nil }, store.ByKinds(api.KindService, api.KindTask))
	if err != nil {
		return fmt.Errorf("allocator: watch store: %w", err)
	}
	defer w.Close()
	dirty := true // look at everything once at start
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		if dirty && w.Pending() == 0 {
			dirty = false
			more, err := a.pass(ctx)
			if more {
				retry.Reset(0) // the services this pass left for the next
			}
			if err != nil && ctx.Err() == nil {
				if !errors.Is(err, store.ErrConflict) {
					a.log.Warn("allocation pass failed", "err", err)
				}
				retry.Reset(100 * time.Millisecond)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				return errors.New("allocator: store watch closed")
			}
			if ev.Action == store.ActionCommit || ev.Action == store.ActionRestore {
				continue
			}
			if needsWork(ev) {
				dirty = true
			}
		case <-retry.C:
			dirty = true
		}
	}
}

func needsWork(ev store.Event) bool {
	switch o := ev.Object.(type) {
	case *api.Service:
		// A deleted service frees its ports for a service waiting on them.
		return ev.Action == store.ActionDelete || !allocated(o)
	case *api.Task:
		return ev.Action != store.ActionDelete && o.Status.State == api.TaskStateNew
	}
	return false
}

// allocated reports whether a service's endpoint matches its spec.
func allocated(s *api.Service) bool {
	if s.Endpoint == nil {
		return false
	}
	a, _ := json.Marshal(s.Endpoint.Spec)
	b, _ := json.Marshal(endpointSpec(s))
	return string(a) == string(b)
}

func endpointSpec(s *api.Service) api.EndpointSpec {
	if s.Spec.EndpointSpec == nil {
		return api.EndpointSpec{Mode: api.ResolutionModeVIP}
	}
	return s.Spec.EndpointSpec.Copy()
}

// servicesPerPass bounds the services one pass allocates, so that its
// transaction stays within a raft entry however many services wait (each
// is at most api.MaxSpecBytes); the rest wait for the next pass.
const servicesPerPass = 16

// pass allocates the endpoints of waiting services (one transaction), then
// releases the NEW tasks of allocated services, in bounded transactions.
// more says services are still waiting.
func (a *Allocator) pass(ctx context.Context) (more bool, err error) {
	if more, err = a.allocateServices(ctx); err != nil {
		return more, err
	}
	return more, a.releaseTasks(ctx)
}

// allocateServices gives up to servicesPerPass waiting services their
// endpoints; more says others wait.
func (a *Allocator) allocateServices(ctx context.Context) (more bool, err error) {
	err = a.store.UpdateContext(ctx, func(tx store.Tx) error {
		more = false
		services, err := tx.FindServices(store.All)
		if err != nil {
			return err
		}
		used := map[string]bool{}
		for _, s := range services {
			if allocated(s) {
				for _, p := range s.Endpoint.Ports {
					if p.PublishMode != api.PublishModeHost && p.PublishedPort != 0 {
						used[portKey(p)] = true
					}
				}
			}
		}
		// Ports the waiting services ask for by number: a dynamic port
		// must not take one of them from a service allocated later in
		// this pass.
		wanted := map[string]bool{}
		for _, s := range services {
			if !allocated(s) {
				for _, p := range endpointSpec(s).Ports {
					if p.PublishMode != api.PublishModeHost && p.PublishedPort != 0 {
						if p.Protocol == "" {
							p.Protocol = api.PortProtocolTCP
						}
						wanted[portKey(p)] = true
					}
				}
			}
		}
		n := 0
		for _, s := range services {
			if !allocated(s) && n == servicesPerPass {
				more = true
			}
			if !allocated(s) && n < servicesPerPass {
				n++
				ep, err := allocate(s, used, wanted)
				if err != nil {
					a.log.Warn("cannot allocate service endpoint", "service", s.Spec.Name, "err", err)
					continue
				}
				s.Endpoint = ep
				if err := tx.UpdateService(s); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return more, err
}

// releaseTasks moves the NEW tasks of allocated services to PENDING, with
// their service's endpoint.
func (a *Allocator) releaseTasks(ctx context.Context) error {
	var ids []string
	a.store.View(func(tx store.ReadTx) {
		tasks, _ := tx.FindTasks(store.ByTaskState(api.TaskStateNew))
		for _, t := range tasks {
			ids = append(ids, t.ID)
		}
	})
	now := time.Now().UTC()
	_, err := a.store.UpdateInChunks(ctx, len(ids), func(tx store.Tx, lo, hi int) error {
		services := map[string]*api.Service{}
		for _, id := range ids[lo:hi] {
			t := tx.GetTask(id)
			if t == nil || t.Status.State != api.TaskStateNew {
				continue
			}
			s, seen := services[t.ServiceID]
			if !seen {
				s = tx.GetService(t.ServiceID)
				if s != nil && !allocated(s) {
					s = nil
				}
				services[t.ServiceID] = s
			}
			if s == nil {
				continue
			}
			e := *s.Endpoint
			e.Spec = s.Endpoint.Spec.Copy()
			e.Ports = append([]api.PortConfig(nil), s.Endpoint.Ports...)
			t.Endpoint = &e
			t.Status = api.TaskStatus{Timestamp: now, State: api.TaskStatePending, Message: "pending task scheduling"}
			if err := tx.UpdateTask(t); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

func portKey(p api.PortConfig) string { return fmt.Sprintf("%s/%d", p.Protocol, p.PublishedPort) }

// allocate fills in a service's endpoint: explicit ingress ports must be
// free, ports left at 0 get the lowest port of the dynamic range that is
// neither used nor wanted by number. The ports are marked used only when
// the whole endpoint is allocated.
func allocate(s *api.Service, used, wanted map[string]bool) (*api.Endpoint, error) {
	spec := endpointSpec(s)
	ep := &api.Endpoint{Spec: spec}
	mine := map[string]bool{}
	taken := func(k string) bool { return used[k] || mine[k] }
	for _, p := range spec.Ports {
		if p.Protocol == "" {
			p.Protocol = api.PortProtocolTCP
		}
		if p.PublishMode == "" {
			p.PublishMode = api.PublishModeIngress
		}
		if p.PublishMode == api.PublishModeHost {
			ep.Ports = append(ep.Ports, p)
			continue
		}
		if p.PublishedPort == 0 {
			for port := uint32(DynamicPortStart); port <= DynamicPortEnd; port++ {
				p.PublishedPort = port
				if k := portKey(p); !taken(k) && !wanted[k] {
					break
				}
				p.PublishedPort = 0
			}
			if p.PublishedPort == 0 {
				return nil, fmt.Errorf("service %q: no free port left in %d-%d for target port %d", s.Spec.Name, DynamicPortStart, DynamicPortEnd, p.TargetPort)
			}
		} else if taken(portKey(p)) {
			return nil, fmt.Errorf("service %q: published port %s is already in use", s.Spec.Name, portKey(p))
		}
		mine[portKey(p)] = true
		ep.Ports = append(ep.Ports, p)
	}
	for k := range mine {
		used[k] = true
	}
	return ep, nil
}
