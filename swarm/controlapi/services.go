package controlapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/allocator"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/orchestrator"
)

// CreateService validates spec (after filling Swarm's defaults) and creates
// the service. The orchestrator then creates its tasks.
func (s *Server) CreateService(ctx context.Context, spec api.ServiceSpec) (*api.Service, error) {
	spec = spec.Copy()
	spec.ApplyDefaults()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	id := api.NewID()
	tries := 0
	err := s.writeService(ctx, func(tx store.Tx) error {
		// svc is handed to the store (CreateServiceOwned); a retry makes
		// another from the spec as validated.
		svc := &api.Service{ID: id, Spec: spec, SpecVersion: 1}
		if tries++; tries > 1 {
			svc.Spec = spec.Copy()
		}
		if err := resolveNetworks(tx, &svc.Spec); err != nil {
			return err
		}
		if err := resolveSecretsAndConfigs(tx, &svc.Spec); err != nil {
			return err
		}
		if err := s.allocateEndpoint(svc); err != nil {
			return err
		}
		return tx.CreateServiceOwned(svc)
	})
	if err != nil {
		return nil, fmt.Errorf("create service %q: %w", spec.Name, err)
	}
	return s.GetService(ctx, id)
}

// GetService returns a service by ID, name or unique ID prefix.
func (s *Server) GetService(ctx context.Context, ref string) (*api.Service, error) {
	var out *api.Service
	var err error
	s.viewResult(ctx, func(tx store.ReadTx) {
		out, err = lookup("service", ref, tx.GetService, tx.FindServices)
	})
	return out, err
}

// ListServices returns every service, ordered by name, each with its task
// counts (ServiceStatus: running, desired, completed), as Docker's service
// list shows them.
func (s *Server) ListServices(ctx context.Context) ([]*api.Service, error) {
	var out []*api.Service
	var err error
	// The tasks are only counted: read without copying them (at 100,000
	// tasks a copy of each is ~150 MB of garbage per call); the services,
	// which the caller gets, are copied.
	s.store.ViewShared(func(tx store.ReadTx) {
		if out, err = tx.FindServices(store.All); err != nil {
			return
		}
		for i, svc := range out {
			out[i] = svc.Copy()
		}
		err = fillServiceStatus(tx, out)
	})
	if err != nil {
		return nil, err
	}
	sortByName(out, func(x *api.Service) string { return x.Spec.Name }, func(x *api.Service) string { return x.ID })
	return out, nil
}

// ServiceProgress counts a service's tasks against its desired state, as
// orchestrator.Measure does, and says whether it has converged
// (orchestrator.Converged), from one consistent view of the store.
func (s *Server) ServiceProgress(ctx context.Context, ref string) (*control.Progress, error) {
	var out *control.Progress
	var err error
	s.store.ViewShared(func(tx store.ReadTx) { // counted, never modified
		var svc *api.Service
		if svc, err = lookup("service", ref, tx.GetService, tx.FindServices); err != nil {
			return
		}
		var tasks []*api.Task
		if tasks, err = tx.FindTasks(store.ByServiceID(svc.ID)); err != nil {
			return
		}
		var nodes []*api.Node
		if svc.Spec.Mode.IsGlobal() {
			if nodes, err = tx.FindNodes(store.All); err != nil {
				return
			}
		}
		p := orchestrator.Measure(svc, tasks, nodes)
		ok, why := orchestrator.Converged(svc, tasks, nodes)
		out = &control.Progress{Desired: p.Desired, Running: p.Running, UpToDate: p.UpToDate, Stopping: p.Stopping,
			Completed: p.Completed, Total: p.Total, Converged: ok, Waiting: why}
	})
	return out, err
}

// fillServiceStatus sets each service's ServiceStatus from its tasks (and,
// for global services, the nodes) as orchestrator.Measure counts them.
func fillServiceStatus(tx store.ReadTx, services []*api.Service) error {
	tasks, err := tx.FindTasks(store.All)
	if err != nil {
		return err
	}
	byService := map[string][]*api.Task{}
	for _, t := range tasks {
		byService[t.ServiceID] = append(byService[t.ServiceID], t)
	}
	var nodes []*api.Node
	for _, svc := range services {
		if svc.Spec.Mode.IsGlobal() && nodes == nil {
			if nodes, err = tx.FindNodes(store.All); err != nil {
				return err
			}
		}
		svc.ServiceStatus = orchestrator.Measure(svc, byService[svc.ID], nodes).Status()
	}
	return nil
}

// UpdateService replaces the spec of the service ref. version must be the
// Meta.Version the caller read: if the service changed since, the update is
// refused with store.ErrConflict and nothing changes. The old spec is kept
// as PreviousSpec for rollback.
func (s *Server) UpdateService(ctx context.Context, ref string, version uint64, spec api.ServiceSpec) (*api.Service, error) {
	given := spec // the caller's, left as it is
	spec = given.Copy()
	spec.ApplyDefaults()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	var id string
	tries := 0
	err := s.writeService(ctx, func(tx store.Tx) error {
		// The service as stored, shared: read, never changed. The new
		// version is a shallow copy of it with what changes replaced, and
		// tx.UpdateService copies that in whole; copying the stored one
		// first, its previous spec included, made three of an update's
		// eight copies of a spec, all garbage at once. The store checks at
		// commit that nobody wrote the service since this read.
		var cur *api.Service
		var err error
		s.store.ViewShared(func(latest store.ReadTx) {
			cur, err = lookup("service", ref, latest.GetService, latest.FindServices)
		})
		if err != nil {
			return err
		}
		id = cur.ID
		if cur.Meta.Version != version {
			return fmt.Errorf("service %q: read at version %d, now at %d: %w", cur.Spec.Name, version, cur.Meta.Version, store.ErrConflict)
		}
		if cur.Spec.Mode.ModeName() != spec.Mode.ModeName() {
			return invalid("service %q: mode: cannot change from %s to %s", cur.Spec.Name, cur.Spec.Mode.ModeName(), spec.Mode.ModeName())
		}
		if tries++; tries > 1 {
			// A retry starts from the spec as given: the last try resolved
			// its networks, secrets and configs in place.
			spec = given.Copy()
			spec.ApplyDefaults()
		}
		// next and prev are handed to the store (UpdateServiceOwned):
		// they share the stored version's parts, never point at it.
		next, prev := *cur, cur.Spec
		next.PreviousSpec = &prev
		next.PreviousSpecVersion = cur.SpecVersion
		next.Spec = spec
		if err := resolveNetworks(tx, &next.Spec); err != nil {
			return err
		}
		if err := resolveSecretsAndConfigs(tx, &next.Spec); err != nil {
			return err
		}
		if err := s.allocateEndpoint(&next); err != nil {
			return err
		}
		next.SpecVersion++
		next.UpdateStatus = nil
		return tx.UpdateServiceOwned(&next)
	})
	if err != nil {
		return nil, fmt.Errorf("update service %q: %w", ref, err)
	}
	return s.GetService(ctx, id)
}

// RollbackService returns the service to its previous spec, to be rolled out
// with the rollback config.
func (s *Server) RollbackService(ctx context.Context, ref string) (*api.Service, error) {
	var id string
	err := s.writeService(ctx, func(tx store.Tx) error {
		cur, err := lookup("service", ref, tx.GetService, tx.FindServices)
		if err != nil {
			return err
		}
		id = cur.ID
		if cur.PreviousSpec == nil {
			return invalid("service %q: has no previous spec to roll back to", cur.Spec.Name)
		}
		prev := *cur.PreviousSpec
		old := cur.Spec
		cur.PreviousSpec = &old
		cur.PreviousSpecVersion = cur.SpecVersion
		cur.Spec = prev
		// Its ports may have been published by another service since, and
		// its networks removed.
		if err := resolveNetworks(tx, &cur.Spec); err != nil {
			return err
		}
		if err := resolveSecretsAndConfigs(tx, &cur.Spec); err != nil {
			return err
		}
		if err := s.allocateEndpoint(cur); err != nil {
			return err
		}
		// A rollback is a new spec change: tasks compare templates, not
		// versions, so the counter keeps growing.
		cur.SpecVersion++
		now := nowUTC()
		cur.UpdateStatus = &api.UpdateStatus{State: api.UpdateStateRollbackStarted, StartedAt: &now, Message: "manually requested rollback"}
		return tx.UpdateService(cur)
	})
	if err != nil {
		return nil, fmt.Errorf("rollback service %q: %w", ref, err)
	}
	return s.GetService(ctx, id)
}

// ScaleService sets the replica count of a replicated service, retrying on
// concurrent edits of other fields.
func (s *Server) ScaleService(ctx context.Context, ref string, replicas int64) (*api.Service, error) {
	for {
		cur, err := s.GetService(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("scale service %q: %w", ref, err)
		}
		if cur.Spec.Mode.Replicated == nil {
			return nil, invalid("scale service %q: replicas: only replicated services scale (mode is %s)", cur.Spec.Name, cur.Spec.Mode.ModeName())
		}
		spec := cur.Spec.Copy()
		spec.Mode.Replicated.Replicas = replicas
		out, err := s.UpdateService(ctx, cur.ID, cur.Meta.Version, spec)
		if isConflict(err) && ctx.Err() == nil {
			continue
		}
		return out, err
	}
}

// RemoveService deletes a service; the orchestrator then shuts its tasks down
// and removes them.
func (s *Server) RemoveService(ctx context.Context, ref string) error {
	err := s.updateRetrying(ctx, func(tx store.Tx) error {
		cur, err := lookup("service", ref, tx.GetService, tx.FindServices)
		if err != nil {
			return err
		}
		return tx.DeleteService(cur.ID)
	})
	if err != nil {
		return fmt.Errorf("remove service %q: %w", ref, err)
	}
	return nil
}

// writeService runs a transaction that writes a service and its endpoint.
// When another writer took one of the ports it chose before it committed
// (store.PortTakenError), it runs again on the new state, where
// allocateEndpoint refuses the port naming its holder, or picks another
// dynamic one. Each retry follows another writer's commit, so it makes
// progress; maxPortRetries bounds them all the same.
func (s *Server) writeService(ctx context.Context, fn func(tx store.Tx) error) error {
	err := s.store.UpdateContext(ctx, fn)
	for try := 0; try < maxPortRetries && ctx.Err() == nil; try++ {
		_, portTaken := errors.AsType[*store.PortTakenError](err)
		_, addrTaken := errors.AsType[*store.AddrTakenError](err)
		if !portTaken && !addrTaken {
			break
		}
		err = s.store.UpdateContext(ctx, fn)
	}
	return err
}

const maxPortRetries = 16

// allocateEndpoint gives svc its endpoint (published ports, VIPs) in the
// write that creates or changes it, as the allocator would after it: the
// write is then one raft entry, and the service the caller gets back is
// the one stored, at its final version. A port another service holds is
// refused, naming the port and the holder, as is a network with no
// address left, and nothing is written. What is taken is read from the
// store's latest state, shared (no older than the transaction's, whose
// reads would copy every task of each network): the transaction writes
// only svc, which the allocation leaves out by ID, and the store refuses,
// when it applies the write, a port or address another writer took
// meanwhile (writeService tries again).
func (s *Server) allocateEndpoint(svc *api.Service) error {
	var ep *api.Endpoint
	var err error
	s.store.ViewShared(func(latest store.ReadTx) { ep, err = allocator.Endpoint(latest, svc) })
	if errors.Is(err, allocator.ErrPortInUse) || errors.Is(err, allocator.ErrNoDynamicPort) ||
		errors.Is(err, allocator.ErrNoAddress) || errors.Is(err, allocator.ErrUnknownNetwork) {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err != nil {
		return err
	}
	svc.Endpoint = ep
	return nil
}
