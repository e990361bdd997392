package dispatcher_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/apiary-io/apiary/mesh/endpoint"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// A node in the routing mesh gets each of its tasks with the managers'
// proof of the assignment, under the cluster's assignment key, whose public
// half it is handed with the gossip keys; the store's tasks are left
// without one, and a node outside the mesh gets none.
func TestAssignmentsCarryProofsForMeshNodes(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	key := ed25519.NewKeyFromSeed(seed)
	h := newHarness(t, config(0), func(tx store.Tx) error {
		c := tx.GetCluster("cluster")
		c.GossipKeys = api.GossipKeyring{Keys: []api.GossipKey{{Key: bytes.Repeat([]byte{1}, api.GossipKeyLen), Lamport: 1}}, AssignmentKey: seed}
		if err := tx.UpdateCluster(c); err != nil {
			return err
		}
		for _, id := range []string{"meshed", "plain"} {
			if err := tx.CreateNode(readyNodeObj(id)); err != nil {
				return err
			}
		}
		return createTasks(mkTask("t1", "meshed", api.TaskStateAssigned), mkTask("t2", "plain", api.TaskStateAssigned))(tx)
	})
	meshed, err := h.d.Register(context.Background(), &dispatcher.RegisterRequest{NodeID: "meshed", Description: desc("meshed"), Addr: "10.0.0.1:4242", GossipAddr: "10.0.0.1:7946"})
	if err != nil {
		t.Fatal(err)
	}
	if meshed.GossipKeys == nil || !bytes.Equal(meshed.GossipKeys.AssignmentKey, key.Public().(ed25519.PublicKey)) {
		t.Fatalf("registration handed keys %+v, want the assignment key's public half", meshed.GossipKeys)
	}
	plain := h.register("plain", "plain")

	stream := func(s *dispatcher.RegisterResponse) dispatcher.AssignmentStream {
		st, err := h.d.Assignments(context.Background(), &dispatcher.AssignmentsRequest{NodeID: s.NodeID, SessionID: s.SessionID})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	check := func(tk *api.Task, wantProof bool) {
		t.Helper()
		if !wantProof {
			if tk.AssignmentProof != nil {
				t.Errorf("task %s sent to a node outside the mesh with a proof", tk.ID)
			}
			return
		}
		want, err := endpoint.SignAssignment(key, h.task(tk.ID))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tk.AssignmentProof, want) {
			t.Errorf("task %s: proof %x, want %x", tk.ID, tk.AssignmentProof, want)
		}
		if h.task(tk.ID).AssignmentProof != nil {
			t.Errorf("task %s: the store's copy got the proof", tk.ID)
		}
	}
	ms, ps := stream(meshed), stream(plain)
	for _, c := range []struct {
		st    dispatcher.AssignmentStream
		mesh  bool
		first string
	}{{ms, true, "t1"}, {ps, false, "t2"}} {
		m := recvTimeout(t, c.st, 10*time.Second)
		if len(m.Tasks) != 1 || m.Tasks[0].ID != c.first {
			t.Fatalf("complete set %+v", m)
		}
		check(m.Tasks[0], c.mesh)
	}
	// A change is proven too.
	h.update(createTasks(mkTask("t3", "meshed", api.TaskStateAssigned)))
	m := recvTimeout(t, ms, 10*time.Second)
	if len(m.Tasks) != 1 || m.Tasks[0].ID != "t3" {
		t.Fatalf("change %+v", m)
	}
	check(m.Tasks[0], true)
}

// In a cluster made before assignment keys, the first key makes every mesh
// node's stream send its complete set again, proven.
func TestFirstAssignmentKeyResendsProvenSets(t *testing.T) {
	h := newHarness(t, config(0), func(tx store.Tx) error {
		c := tx.GetCluster("cluster")
		c.GossipKeys = api.GossipKeyring{Keys: []api.GossipKey{{Key: bytes.Repeat([]byte{1}, api.GossipKeyLen), Lamport: 1}}}
		if err := tx.UpdateCluster(c); err != nil {
			return err
		}
		if err := tx.CreateNode(readyNodeObj("meshed")); err != nil {
			return err
		}
		return createTasks(mkTask("t1", "meshed", api.TaskStateAssigned))(tx)
	})
	s, err := h.d.Register(context.Background(), &dispatcher.RegisterRequest{NodeID: "meshed", Description: desc("meshed"), Addr: "10.0.0.1:4242", GossipAddr: "10.0.0.1:7946"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.d.Assignments(context.Background(), &dispatcher.AssignmentsRequest{NodeID: s.NodeID, SessionID: s.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	if m := recvTimeout(t, st, 10*time.Second); len(m.Tasks) != 1 || m.Tasks[0].AssignmentProof != nil {
		t.Fatalf("complete set without a key: %+v", m)
	}
	seed := bytes.Repeat([]byte{9}, ed25519.SeedSize)
	h.update(func(tx store.Tx) error {
		c := tx.GetCluster("cluster")
		c.GossipKeys.AssignmentKey = seed
		return tx.UpdateCluster(c)
	})
	m := recvTimeout(t, st, 10*time.Second)
	if m.Type != dispatcher.AssignmentsComplete || len(m.Tasks) != 1 {
		t.Fatalf("after the key: %+v, want the complete set again", m)
	}
	want, err := endpoint.SignAssignment(ed25519.NewKeyFromSeed(seed), h.task("t1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Tasks[0].AssignmentProof, want) {
		t.Fatalf("resent task's proof %x, want %x", m.Tasks[0].AssignmentProof, want)
	}
}
