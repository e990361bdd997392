package swarm_test

import (
	"context"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

// EditNode applies its edit to the node as it is when the write lands: a
// status change between the read and the write (which a node's record sees
// all the time) makes it read again, not fail.
func TestEditNodeRetriesWhenTheNodeChanged(t *testing.T) {
	cfg := swarm.DefaultManagerConfig()
	cfg.Logger = quietLogger()
	mgr, err := swarm.StartManager(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	s := mgr.Store()
	if err := s.Update(func(tx store.Tx) error {
		return tx.CreateNode(&api.Node{ID: "n1", Spec: api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
			Status: api.NodeStatus{State: api.NodeStateReady}})
	}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	n, err := mgr.Client().EditNode(context.Background(), "n1", func(spec *api.NodeSpec) error {
		calls++
		if calls == 1 {
			// Another writer changes the node's status meanwhile.
			if err := s.Update(func(tx store.Tx) error {
				cur := tx.GetNode("n1")
				cur.Status.Message = "heartbeat"
				return tx.UpdateNode(cur)
			}); err != nil {
				t.Fatal(err)
			}
		}
		spec.Availability = api.NodeAvailabilityDrain
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || n.Spec.Availability != api.NodeAvailabilityDrain || n.Status.Message != "heartbeat" {
		t.Errorf("after %d edits: availability %s, status message %q", calls, n.Spec.Availability, n.Status.Message)
	}
}
