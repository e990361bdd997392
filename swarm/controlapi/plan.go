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

// PlanService is a dry run of CreateService (ref "") or UpdateService (ref
// names the service): spec is checked as they check it (defaults,
// validation, networks, secrets and configs, published ports), then the
// orchestrator's Reconcile and the manager's scheduler are run over a
// read of the store (orchestrator.Simulate) until the service settles. It
// writes nothing: the store, the allocator's ports and the task IDs it
// makes up are its own copies. Bad input answers as the write would
// (ErrInvalidArgument naming the field).
func (s *Server) PlanService(ctx context.Context, ref string, spec api.ServiceSpec) (*control.ServicePlan, error) {
	spec = spec.Copy()
	spec.ApplyDefaults()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("plan service %q: %w: %w", spec.Name, ErrInvalidArgument, err)
	}
	var in orchestrator.DryRunInput
	var err error
	s.store.View(func(tx store.ReadTx) { in, err = s.dryRunInput(tx, ref, spec) })
	if err != nil {
		if ref == "" {
			ref = spec.Name
		}
		return nil, fmt.Errorf("plan service %q: %w", ref, err)
	}
	run := orchestrator.Simulate(in)
	return planOf(in, run), nil
}

// dryRunInput reads what Simulate needs: the service as the write would
// store it, its tasks, the nodes and the tasks holding resources.
func (s *Server) dryRunInput(tx store.ReadTx, ref string, spec api.ServiceSpec) (orchestrator.DryRunInput, error) {
	in := orchestrator.DryRunInput{Scheduler: s.sched, Now: nowUTC(), RetentionLimit: api.DefaultTaskHistoryRetentionLimit}
	var svc *api.Service
	if ref == "" {
		svc = &api.Service{ID: api.NewID(), Spec: spec, SpecVersion: 1}
	} else {
		cur, err := lookup("service", ref, tx.GetService, tx.FindServices)
		if err != nil {
			return in, err
		}
		if cur.Spec.Mode.ModeName() != spec.Mode.ModeName() {
			return in, invalid("service %q: mode: cannot change from %s to %s", cur.Spec.Name, cur.Spec.Mode.ModeName(), spec.Mode.ModeName())
		}
		svc = cur.Copy()
		prev := svc.Spec
		svc.PreviousSpec, svc.PreviousSpecVersion = &prev, svc.SpecVersion
		svc.Spec = spec
		svc.SpecVersion++
		svc.UpdateStatus = nil
	}
	if err := resolveNetworks(tx, &svc.Spec); err != nil {
		return in, err
	}
	if err := resolveSecretsAndConfigs(tx, &svc.Spec); err != nil {
		return in, err
	}
	// allocator.Endpoint only reads: the ports it picks are not taken.
	ep, err := allocator.Endpoint(tx, svc)
	if errors.Is(err, allocator.ErrPortInUse) || errors.Is(err, allocator.ErrNoDynamicPort) ||
		errors.Is(err, allocator.ErrNoAddress) || errors.Is(err, allocator.ErrUnknownNetwork) {
		return in, fmt.Errorf("%w: %w", ErrInvalidArgument, err) // as allocateEndpoint says it
	}
	if err != nil {
		return in, err
	}
	svc.Endpoint = ep
	in.Service = svc
	if cs, _ := tx.FindClusters(store.All); len(cs) > 0 {
		in.RetentionLimit = int(cs[0].Spec.Orchestration.TaskHistoryRetentionLimit)
	}
	if in.Nodes, err = tx.FindNodes(store.All); err != nil {
		return in, err
	}
	tasks, err := tx.FindTasks(store.All)
	if err != nil {
		return in, err
	}
	for _, t := range tasks {
		switch {
		case t.ServiceID == svc.ID:
			in.Tasks = append(in.Tasks, t)
		case t.NodeID != "" && t.Status.State >= api.TaskStateAssigned && !t.Status.State.Terminal() && t.DesiredState <= api.TaskStateRunning:
			in.Others = append(in.Others, t) // holds resources, as the placer counts
		}
	}
	return in, nil
}

// planOf turns a simulation into the API's plan, naming nodes by hostname.
func planOf(in orchestrator.DryRunInput, run orchestrator.DryRun) *control.ServicePlan {
	host := map[string]string{}
	for _, n := range in.Nodes {
		if n.Description != nil {
			host[n.ID] = n.Description.Hostname
		}
	}
	p := &control.ServicePlan{Name: in.Service.Spec.Name, Mode: in.Service.Spec.Mode.ModeName(),
		Unchanged: run.Unchanged, Truncated: run.Truncated}
	if in.Service.SpecVersion > 1 {
		p.ServiceID = in.Service.ID
	}
	if run.Service != nil && run.Service.UpdateStatus != nil {
		p.UpdateState = run.Service.UpdateStatus.State
	}
	conv := func(cs []orchestrator.SlotChange) []control.PlannedTask {
		var out []control.PlannedTask
		for _, c := range cs {
			t := control.PlannedTask{Slot: c.Slot, Reason: c.Reason}
			if c.Old != nil {
				t.Name, t.OldTaskID, t.OldNodeID = c.Old.Name, c.Old.ID, c.Old.NodeID
			}
			if c.New != nil {
				t.Name, t.NodeID = c.New.Name, c.New.NodeID
				t.NodeHostname = host[c.New.NodeID]
				if t.NodeID == "" {
					p.Unplaced++
				}
			}
			out = append(out, t)
		}
		return out
	}
	p.Create, p.Replace, p.Remove = conv(run.Create), conv(run.Replace), conv(run.Remove)
	return p
}
