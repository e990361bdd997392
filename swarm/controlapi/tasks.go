package controlapi

import (
	"context"
	"sort"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// TaskFilter narrows ListTasks (the contract's).
type TaskFilter = control.TaskFilter

// GetTask returns a task by ID or unique ID prefix.
func (s *Server) GetTask(ctx context.Context, ref string) (*api.Task, error) {
	var out *api.Task
	var err error
	s.viewResult(ctx, func(tx store.ReadTx) {
		out, err = lookup("task", ref, tx.GetTask, tx.FindTasks)
	})
	return out, err
}

// ListTasks returns the tasks that match f, ordered by service, slot (or
// node) and newest first within a slot, as `docker service ps` shows them.
func (s *Server) ListTasks(ctx context.Context, f TaskFilter) ([]*api.Task, error) {
	var out []*api.Task
	var err error
	s.viewResult(ctx, func(tx store.ReadTx) {
		by := store.All
		if f.Service != "" {
			var svc *api.Service
			if svc, err = lookup("service", f.Service, tx.GetService, tx.FindServices); err != nil {
				return
			}
			by = store.ByServiceID(svc.ID)
		}
		if f.Node != "" {
			var n *api.Node
			if n, err = lookupNode(tx, f.Node); err != nil {
				return
			}
			if f.Service == "" {
				by = store.ByNodeID(n.ID)
			} else {
				defer func() { out = filterTasks(out, func(t *api.Task) bool { return t.NodeID == n.ID }) }()
			}
		}
		out, err = tx.FindTasks(by)
	})
	if err != nil {
		return nil, err
	}
	if len(f.DesiredStates) > 0 {
		out = filterTasks(out, func(t *api.Task) bool {
			for _, d := range f.DesiredStates {
				if t.DesiredState == d {
					return true
				}
			}
			return false
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.ServiceAnnotations.Name != b.ServiceAnnotations.Name {
			return a.ServiceAnnotations.Name < b.ServiceAnnotations.Name
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if a.Slot == 0 && a.NodeID != b.NodeID {
			return a.NodeID < b.NodeID
		}
		if !a.Meta.CreatedAt.Equal(b.Meta.CreatedAt) {
			return a.Meta.CreatedAt.After(b.Meta.CreatedAt)
		}
		return a.ID < b.ID
	})
	return out, nil
}

func filterTasks(ts []*api.Task, keep func(*api.Task) bool) []*api.Task {
	out := ts[:0]
	for _, t := range ts {
		if keep(t) {
			out = append(out, t)
		}
	}
	return out
}
