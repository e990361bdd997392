package swarm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// Promotion and demotion, as Swarm does them, split between the leader and
// the node:
//
//   - `node promote` sets Spec.Role to manager. The CA now issues the node
//     a manager certificate (api.Node.CertificateRole); the node learns it
//     from its next heartbeat, renews, starts a raft member under a fresh
//     member ID and asks the leader to admit it (AddManager).
//   - `node demote` sets Spec.Role to worker (refused for the last manager
//     or when the rest would lose quorum). The leader's role reconciler
//     removes the node's raft member (raft checks quorum again, and hands
//     leadership over first if the node leads), then clears its
//     ManagerStatus. Only then does the CA issue a worker certificate: the
//     node renews, stops its manager components and runs on as a worker.
//
// Tasks keep running through either switch: the agent restarts and adopts
// them, as it does when the daemon restarts.
//
// A manager's member can also leave the group without a demotion: a
// forced new cluster (NodeConfig.ForceNewCluster) removes every member but
// the one it recovers from, and `swarm leave --force` removes the leaving
// node's. Such a node is recorded as a worker without a ManagerStatus, and
// down: it no longer counts among the managers (nor in their quorum
// checks), new managers do not try to reach its member, nothing is placed
// on it (the dispatcher replaces its tasks once its grace has passed),
// `node rm` can remove it, and should it come back it is told to run as a
// worker (its raft member, refused by the group, stops).

// rolePeriod is how often the leader retries demotions that raft refused
// (quorum) or that a lost leadership interrupted.
const rolePeriod = time.Second

// reconcileRoles carries out demotions while this manager leads.
func (m *Manager) reconcileRoles(ctx context.Context) error {
	w := m.store.Watch(store.ByKinds(api.KindNode))
	defer w.Close()
	t := time.NewTicker(rolePeriod)
	defer t.Stop()
	for {
		var pending, managers []*api.Node
		m.store.View(func(tx store.ReadTx) {
			nodes, err := tx.FindNodes(store.All)
			if err != nil {
				return
			}
			for _, n := range nodes {
				switch {
				case n.ManagerStatus == nil:
				case n.Spec.Role == api.NodeRoleWorker:
					pending = append(pending, n)
				default:
					managers = append(managers, n)
				}
			}
		})
		for _, n := range pending {
			if err := m.removeManager(ctx, n.ID, n.ManagerStatus.RaftID); err != nil && ctx.Err() == nil {
				m.log.Warn("demotion waits", "node", n.ID, "err", err)
			}
		}
		for _, n := range managers {
			if err := m.forgetRemovedMember(ctx, n.ID, n.ManagerStatus.RaftID); err != nil && ctx.Err() == nil {
				m.log.Warn("recording a removed manager as a worker failed", "node", n.ID, "err", err)
			}
		}
		if !waitNodeChange(ctx, w, t.C) {
			return nil
		}
	}
}

// waitNodeChange waits for a node event or a tick; false once ctx is done.
// A commit event alone (every write has one, and the watcher's filter
// passes them) changes no node: waking on it made every user write cost
// a read of every node and a raft view per manager.
func waitNodeChange(ctx context.Context, w *store.Watcher, tick <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-w.Events():
			if !ok || ev.Object != nil {
				return true
			}
		case <-tick:
			return true
		}
	}
}

// removeManager takes a demoted node's member out of the raft group, then
// clears its ManagerStatus (which lets the CA issue it a worker
// certificate).
func (m *Manager) removeManager(ctx context.Context, nodeID string, raftID uint64) error {
	m.membershipMu.Lock()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := m.raft.RemoveMember(rctx, raftID)
	cancel()
	m.membershipMu.Unlock()
	if err != nil && !errors.Is(err, raft.ErrRemoved) && !errors.Is(err, raft.ErrUnknownMember) {
		return fmt.Errorf("remove raft member %x: %w", raftID, err)
	}
	m.log.Info("demoted: raft member removed", "demoted", nodeID, "raft_id", fmt.Sprintf("%x", raftID))
	return m.store.UpdateContext(ctx, func(tx store.Tx) error {
		n := tx.GetNode(nodeID)
		if n == nil || n.Spec.Role != api.NodeRoleWorker || n.ManagerStatus == nil || n.ManagerStatus.RaftID != raftID {
			return nil
		}
		n.ManagerStatus = nil
		return tx.UpdateNode(n)
	})
}

// forgetRemovedMember records manager nodeID as a worker if raft removed
// its member raftID (a forced new cluster, a forced leave).
func (m *Manager) forgetRemovedMember(ctx context.Context, nodeID string, raftID uint64) error {
	if err := m.raft.CheckRemove(ctx, raftID); !errors.Is(err, raft.ErrRemoved) {
		return nil
	}
	changed := false
	err := m.store.UpdateContext(ctx, func(tx store.Tx) error {
		n := tx.GetNode(nodeID)
		changed = n != nil && n.ManagerStatus != nil && n.ManagerStatus.RaftID == raftID
		if !changed {
			return nil
		}
		n.Spec.Role = api.NodeRoleWorker
		n.ManagerStatus = nil
		// Lost (or gone): nothing may be placed on it. Its agent, should
		// it be up, heals the state at its next heartbeat.
		if n.Status.State == api.NodeStateReady {
			n.Status.State = api.NodeStateDown
			n.Status.Message = "raft member removed without a demotion"
		}
		return tx.UpdateNode(n)
	})
	if err != nil || !changed {
		return err
	}
	m.log.Warn("a manager's raft member was removed without a demotion (forced new cluster or forced leave): the node is now a worker",
		"removed", nodeID, "raft_id", fmt.Sprintf("%x", raftID))
	return nil
}

// AddManager implements controlapi.Membership: the joining manager (whose
// certificate, when the call came over mutual TLS, must name the same node)
// becomes raft member raftID (0: RaftID(nodeID)) at addr. The member ID is
// recorded in the node's ManagerStatus before the member exists, so that
// peers can tell whose messages they receive.
func (m *Manager) AddManager(ctx context.Context, nodeID, addr string, raftID uint64) ([]controlapi.Peer, error) {
	if id, err := pki.PeerIdentityFromContext(ctx); err == nil {
		if id.NodeID != nodeID || id.Role != pki.RoleManager {
			return nil, fmt.Errorf("%w: node %s (%s) cannot add node %s as a manager", controlapi.ErrInvalidArgument, id.NodeID, id.Role, nodeID)
		}
	}
	if raftID == 0 {
		raftID = RaftID(nodeID)
	}
	// One membership change at a time: etcd raft turns a configuration
	// change proposed while another is pending into an empty entry, which
	// AddMember would take for the learner's admission and then wait for a
	// learner that never comes.
	m.membershipMu.Lock()
	defer m.membershipMu.Unlock()
	members := map[uint64]bool{}
	for _, mem := range m.raft.Members() {
		members[mem.ID] = true
	}
	err := m.store.UpdateContext(ctx, func(tx store.Tx) error {
		n := tx.GetNode(nodeID)
		if n == nil {
			return fmt.Errorf("%w: node %s is not part of the cluster", controlapi.ErrInvalidArgument, nodeID)
		}
		if n.Spec.Role != api.NodeRoleManager {
			return fmt.Errorf("%w: node %s is not a manager (role %s)", controlapi.ErrInvalidArgument, nodeID, n.Spec.Role)
		}
		others, err := tx.FindNodes(store.All)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.ID != nodeID && o.ManagerStatus != nil && o.ManagerStatus.RaftID == raftID {
				return fmt.Errorf("%w: raft member ID %x belongs to node %s", controlapi.ErrInvalidArgument, raftID, o.ID)
			}
		}
		if ms := n.ManagerStatus; ms != nil {
			if ms.RaftID == raftID && ms.Addr == addr {
				return nil
			}
			if ms.RaftID != raftID && members[ms.RaftID] {
				return fmt.Errorf("%w: node %s already is raft member %x", controlapi.ErrInvalidArgument, nodeID, ms.RaftID)
			}
		}
		n.ManagerStatus = &api.ManagerStatus{RaftID: raftID, Addr: addr, Reachability: api.ReachabilityUnknown}
		return tx.UpdateNode(n)
	})
	if err != nil {
		return nil, fmt.Errorf("add manager %s: %w", nodeID, err)
	}
	if err := m.raft.AddMember(ctx, raftID, addr); err != nil && !errors.Is(err, raft.ErrMemberExists) {
		return nil, fmt.Errorf("add manager %s at %s: %w", nodeID, addr, err)
	}
	var peers []controlapi.Peer
	for _, mem := range m.raft.Members() {
		peers = append(peers, controlapi.Peer{ID: mem.ID, Addr: mem.Addr})
	}
	return peers, nil
}

// CheckRemoveManager implements controlapi.Membership with raft's live view
// on the leader; a follower cannot tell and answers nil.
func (m *Manager) CheckRemoveManager(ctx context.Context, raftID uint64) error {
	if !m.raft.IsLeader() {
		return nil
	}
	err := m.raft.CheckRemove(ctx, raftID)
	if errors.Is(err, raft.ErrRemoved) || errors.Is(err, raft.ErrUnknownMember) {
		return nil
	}
	var nl *raft.NotLeaderError
	if errors.As(err, &nl) {
		return nil
	}
	return err
}

// ownsRaftID reports whether raft member id may be node nodeID: its default
// ID, or the one the store records for it. A store that does not know the
// node's member yet (a member still catching up) cannot contradict it.
func (m *Manager) ownsRaftID(nodeID string, id uint64) bool {
	if id == RaftID(nodeID) {
		return true
	}
	ok := true
	m.store.View(func(tx store.ReadTx) {
		if n := tx.GetNode(nodeID); n != nil && n.ManagerStatus != nil {
			ok = n.ManagerStatus.RaftID == id
		}
	})
	return ok
}
