package dispatcher_test

import (
	"context"
	"errors"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// A worker whose known managers all refuse its session (none leads any
// more: a node it never heard of was promoted and elected) asks them which
// managers exist now, and registers with the new leader.
func TestFailoverLearnsManagersFromFollowers(t *testing.T) {
	managers := func(tx store.Tx) error {
		for _, n := range []*api.Node{
			{ID: "m1", Spec: api.NodeSpec{Role: api.NodeRoleManager, Availability: api.NodeAvailabilityActive}, Status: api.NodeStatus{State: api.NodeStateReady},
				ManagerStatus: &api.ManagerStatus{RaftID: 1, Addr: "m1:1", Reachability: api.ReachabilityReachable}},
			{ID: "m2", Spec: api.NodeSpec{Role: api.NodeRoleManager, Availability: api.NodeAvailabilityActive}, Status: api.NodeStatus{State: api.NodeStateReady},
				ManagerStatus: &api.ManagerStatus{RaftID: 2, Addr: "m2:1", Reachability: api.ReachabilityReachable, Leader: true}},
		} {
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		return nil
	}
	// The follower: its dispatcher does not run, but it knows the managers.
	fs := store.NewMemoryStore(nil)
	t.Cleanup(fs.Close)
	if err := fs.Update(managers); err != nil {
		t.Fatal(err)
	}
	follower := dispatcher.New(fs, config(0).Config)
	if got, _ := follower.Managers(context.Background()); len(got) != 2 || got[0] != "m2:1" {
		t.Fatalf("follower lists managers %v, want the leader m2:1 first", got)
	}
	// The leader.
	lead := newHarness(t, config(0), func(tx store.Tx) error {
		if err := managers(tx); err != nil {
			return err
		}
		return tx.CreateNode(&api.Node{ID: "w1", Spec: api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive}, Status: api.NodeStatus{State: api.NodeStateUnknown}})
	})

	fc := agent.NewFailoverClient([]dispatcher.API{follower}, []string{"m1:1"})
	dialled := []string{}
	fc.Dial = func(addr string) (dispatcher.API, error) {
		dialled = append(dialled, addr)
		if addr == "m2:1" {
			return lead.d, nil
		}
		return nil, errors.New("no such manager")
	}
	resp, err := fc.Register(context.Background(), &dispatcher.RegisterRequest{NodeID: "w1", Description: api.NodeDescription{Hostname: "w1"}})
	if err != nil {
		t.Fatalf("register: %v (dialled %v)", err, dialled)
	}
	if resp.SessionID == "" {
		t.Fatal("no session")
	}
	if got := fc.Known(); len(got) == 0 || got[0] != "m2:1" {
		t.Errorf("current manager first: %v", got)
	}
}
