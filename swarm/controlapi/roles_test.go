package controlapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// noMembership is a raft group whose members other than refuse can be
// removed.
type noMembership struct{ refuse uint64 }

func (noMembership) AddManager(context.Context, string, string, uint64) ([]controlapi.Peer, error) {
	return nil, nil
}

func (m noMembership) CheckRemoveManager(_ context.Context, raftID uint64) error {
	if raftID == m.refuse {
		return fmt.Errorf("raft: cannot remove member %x: 2 voters would remain of which only 1 are reachable, below the quorum of 2", raftID)
	}
	return nil
}

func member(n *api.Node, raftID uint64, reach api.Reachability) *api.Node {
	n.ManagerStatus = &api.ManagerStatus{RaftID: raftID, Addr: "127.0.0.1:1", Reachability: reach}
	return n
}

func setRole(t *testing.T, srv *controlapi.Server, ref string, role api.NodeRole) (*api.Node, error) {
	t.Helper()
	n, err := srv.GetNode(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	spec := n.Spec
	spec.Role = role
	return srv.UpdateNode(context.Background(), ref, n.Meta.Version, spec)
}

// Promotion and demotion are recorded in the spec; the leader and the node
// carry them out. What cannot be carried out is refused up front, naming
// why, and changes nothing.
func TestRoleChangeChecks(t *testing.T) {
	t.Run("promote a worker", func(t *testing.T) {
		_, s := withNodes(t, member(nodeObj("m1", "m1", api.NodeRoleManager, api.NodeStateReady), 1, api.ReachabilityReachable),
			nodeObj("w1", "w1", api.NodeRoleWorker, api.NodeStateReady))
		srv := controlapi.New(s, controlapi.Options{Membership: noMembership{}})
		n, err := setRole(t, srv, "w1", api.NodeRoleManager)
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Role != api.NodeRoleManager || n.CertificateRole() != api.NodeRoleManager {
			t.Errorf("promoted node: spec role %s, certificate role %s", n.Spec.Role, n.CertificateRole())
		}
	})
	t.Run("demote the last manager", func(t *testing.T) {
		_, s := withNodes(t, member(nodeObj("m1", "m1", api.NodeRoleManager, api.NodeStateReady), 1, api.ReachabilityReachable),
			nodeObj("w1", "w1", api.NodeRoleWorker, api.NodeStateReady))
		srv := controlapi.New(s, controlapi.Options{Membership: noMembership{}})
		index := s.Index()
		_, err := setRole(t, srv, "m1", api.NodeRoleWorker)
		invalidNaming(t, err, "m1", "role", "last manager")
		if s.Index() != index {
			t.Error("a refused demotion wrote to the store")
		}
	})
	t.Run("demote when the rest would lose quorum", func(t *testing.T) {
		_, s := withNodes(t,
			member(nodeObj("m1", "m1", api.NodeRoleManager, api.NodeStateReady), 1, api.ReachabilityReachable),
			member(nodeObj("m2", "m2", api.NodeRoleManager, api.NodeStateDown), 2, api.ReachabilityUnreachable),
			member(nodeObj("m3", "m3", api.NodeRoleManager, api.NodeStateReady), 3, api.ReachabilityReachable))
		srv := controlapi.New(s, controlapi.Options{Membership: noMembership{refuse: 3}})
		// m1 and m2 would remain, m2 unreachable: raft says 1 of a
		// quorum of 2.
		index := s.Index()
		_, err := setRole(t, srv, "m3", api.NodeRoleWorker)
		invalidNaming(t, err, "m3", "role", "quorum of 2", "1 are reachable")
		if s.Index() != index {
			t.Error("a refused demotion wrote to the store")
		}
		// Demoting the unreachable one leaves m1 and m3, both reachable.
		n, err := setRole(t, srv, "m2", api.NodeRoleWorker)
		if err != nil {
			t.Fatal(err)
		}
		// Still a member until the leader removes it: the CA keeps
		// issuing it a manager certificate until then.
		if n.CertificateRole() != api.NodeRoleManager {
			t.Errorf("demoted member's certificate role = %s before its removal", n.CertificateRole())
		}
		n.ManagerStatus = nil
		if n.CertificateRole() != api.NodeRoleWorker {
			t.Errorf("certificate role after removal = %s", n.CertificateRole())
		}
	})
}
