package controlapi

import (
	"context"
	"fmt"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// lookupNode resolves a node by ID, hostname, spec name or unique ID prefix.
func lookupNode(tx store.ReadTx, ref string) (*api.Node, error) {
	n, err := lookup("node", ref, tx.GetNode, tx.FindNodes)
	if err == nil {
		return n, nil
	}
	all, ferr := tx.FindNodes(store.All)
	if ferr != nil {
		return nil, ferr
	}
	var match []*api.Node
	for _, x := range all {
		if x.Description != nil && x.Description.Hostname == ref {
			match = append(match, x)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, err
	}
	return nil, invalid("node %q is ambiguous: %d nodes have this hostname", ref, len(match))
}

// GetNode returns a node by ID, hostname or unique ID prefix.
func (s *Server) GetNode(ctx context.Context, ref string) (*api.Node, error) {
	var out *api.Node
	var err error
	s.store.View(func(tx store.ReadTx) { out, err = lookupNode(tx, ref) })
	return out, err
}

// ListNodes returns every node, ordered by hostname.
func (s *Server) ListNodes(ctx context.Context) ([]*api.Node, error) {
	var out []*api.Node
	var err error
	s.store.View(func(tx store.ReadTx) { out, err = tx.FindNodes(store.All) })
	if err != nil {
		return nil, err
	}
	sortByName(out, nodeHostname, func(n *api.Node) string { return n.ID })
	return out, nil
}

func nodeHostname(n *api.Node) string {
	if n.Description != nil {
		return n.Description.Hostname
	}
	return n.Spec.Name
}

// UpdateNode replaces a node's spec (availability, labels, role). version
// must be the Meta.Version the caller read.
func (s *Server) UpdateNode(ctx context.Context, ref string, version uint64, spec api.NodeSpec) (*api.Node, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	// A demotion raft would refuse (the rest would lose quorum) is refused
	// here, with raft's live view on the leader; the store's lags a second.
	var member *api.ManagerStatus
	var early error
	s.store.View(func(tx store.ReadTx) {
		if cur, err := lookupNode(tx, ref); err == nil && cur.Spec.Role == api.NodeRoleManager && spec.Role == api.NodeRoleWorker {
			member = cur.ManagerStatus
			early = s.checkRoleChange(tx, cur, spec.Role)
		}
	})
	if early != nil {
		return nil, fmt.Errorf("update node %q: %w", ref, early)
	}
	if member != nil && s.membership != nil {
		if err := s.membership.CheckRemoveManager(ctx, member.RaftID); err != nil {
			return nil, fmt.Errorf("update node %q: %w: role: demoting it: %w", ref, ErrInvalidArgument, err)
		}
	}
	var id string
	err := s.store.UpdateContext(ctx, func(tx store.Tx) error {
		cur, err := lookupNode(tx, ref)
		if err != nil {
			return err
		}
		id = cur.ID
		if cur.Meta.Version != version {
			return fmt.Errorf("node %q: read at version %d, now at %d: %w", ref, version, cur.Meta.Version, store.ErrConflict)
		}
		if spec.Role != cur.Spec.Role {
			if err := s.checkRoleChange(tx, cur, spec.Role); err != nil {
				return err
			}
		}
		cur.Spec = spec
		return tx.UpdateNode(cur)
	})
	if err != nil {
		return nil, fmt.Errorf("update node %q: %w", ref, err)
	}
	return s.GetNode(ctx, id)
}

// RemoveNode deletes a node from the cluster. A node that is still up is
// refused unless force is set; its tasks are rescheduled by the orchestrator.
func (s *Server) RemoveNode(ctx context.Context, ref string, force bool) error {
	err := s.updateRetrying(ctx, func(tx store.Tx) error {
		cur, err := lookupNode(tx, ref)
		if err != nil {
			return err
		}
		if cur.Spec.Role == api.NodeRoleManager {
			return invalid("node %q: is a manager: demote it before removing it", ref)
		}
		if cur.Status.State == api.NodeStateReady && !force {
			return invalid("node %q: is ready: stop it first or remove with force", ref)
		}
		// Remember the ID: the node's certificate stays valid until it
		// expires, and must be refused all the same.
		if cs, err := tx.FindClusters(store.All); err == nil && len(cs) > 0 {
			c := cs[0]
			c.RemovedNodes = append(c.RemovedNodes, cur.ID)
			if err := tx.UpdateCluster(c); err != nil {
				return err
			}
		}
		return tx.DeleteNode(cur.ID)
	})
	if err != nil {
		return fmt.Errorf("remove node %q: %w", ref, err)
	}
	return nil
}

// checkRoleChange refuses a promotion or demotion that cannot be carried
// out. The change itself is made by the leader's role reconciler (the
// node's raft membership) and by the node (its certificate, its manager
// components). Quorum is checked before (UpdateNode), and by raft again
// when the member is removed.
func (s *Server) checkRoleChange(tx store.ReadTx, cur *api.Node, role api.NodeRole) error {
	if s.membership == nil {
		return invalid("node %q: role: cannot change %s to %s: this manager runs without replication (no raft group to join or leave)", cur.ID, cur.Spec.Role, role)
	}
	if role != api.NodeRoleWorker {
		return nil
	}
	managers, err := tx.FindNodes(store.ByRole(api.NodeRoleManager))
	if err != nil {
		return err
	}
	if len(managers) <= 1 {
		return invalid("node %q: role: it is the last manager; promote another node first", cur.ID)
	}
	return nil
}
