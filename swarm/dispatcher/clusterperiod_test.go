package dispatcher_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// setClusterPeriod changes the cluster spec's heartbeat period, as
// Client.UpdateCluster does.
func (h *harness) setClusterPeriod(period time.Duration) {
	h.t.Helper()
	h.update(func(tx store.Tx) error {
		cs, err := tx.FindClusters(store.All)
		if err != nil || len(cs) != 1 {
			return fmt.Errorf("cluster object: %v (%d)", err, len(cs))
		}
		cs[0].Spec.Dispatcher.HeartbeatPeriod = period
		return tx.UpdateCluster(cs[0])
	})
}

// waitPeriod heartbeats s until the dispatcher hands out want.
func (h *harness) waitPeriod(s *dispatcher.RegisterResponse, want time.Duration) {
	h.t.Helper()
	testutil.EventuallyWhy(h.t, 10*time.Second, fmt.Sprintf("the period handed out to be %v", want), func() (bool, string) {
		resp, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: s.NodeID, SessionID: s.SessionID})
		if err != nil {
			h.t.Fatalf("heartbeat: %v", err)
		}
		return resp.Period == want, fmt.Sprintf("period %v", resp.Period)
	})
}

// The heartbeat period is the cluster's: the period handed to workers
// follows the cluster spec as it changes, back to adaptive at zero.
func TestHeartbeatPeriodFollowsTheClusterSpec(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, config(0), nil)
		a := h.register("", "a")
		if a.HeartbeatPeriod != time.Second {
			t.Fatalf("adaptive period of a small cluster = %v, want 1s", a.HeartbeatPeriod)
		}
		h.setClusterPeriod(300 * time.Millisecond)
		h.waitPeriod(a, 300*time.Millisecond)
		if b := h.register("", "b"); b.HeartbeatPeriod != 300*time.Millisecond {
			t.Errorf("a node registering after the change is told %v, want 300ms", b.HeartbeatPeriod)
		}
		h.setClusterPeriod(0)
		h.waitPeriod(a, time.Second)
	})
}

// A node is held to the period it was told: when the cluster's period
// shrinks, a node told the longer one is not declared down before its next
// heartbeat is due, and learns the new period from it.
func TestSessionKeepsThePeriodItWasTold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const told, now = time.Second, 50 * time.Millisecond
		h := newHarness(t, config(told), nil)
		slow := h.register("", "slow")
		if slow.HeartbeatPeriod != told {
			t.Fatalf("told %v, want %v", slow.HeartbeatPeriod, told)
		}
		fast := h.register("", "fast")
		h.setClusterPeriod(now)
		h.waitPeriod(fast, now)
		h.heartbeatUntilDone(fast, 10*time.Millisecond)
		// The slow node heartbeats as it was told, a little early; with the
		// grace of the new period (150 ms) it would be down by then.
		time.Sleep(told * 9 / 10)
		resp, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: slow.NodeID, SessionID: slow.SessionID})
		if err != nil {
			t.Fatalf("heartbeat within the period the node was told: %v", err)
		}
		if resp.Period != now {
			t.Errorf("the heartbeat tells the node %v, want the cluster's %v", resp.Period, now)
		}
		if st := h.node(slow.NodeID).Status.State; st != api.NodeStateReady {
			t.Errorf("node heartbeating within its period is %s", st)
		}
		// From now on it is held to the new period: silent, it goes down.
		testutil.EventuallyWhy(t, 10*time.Second, "the silent node down", func() (bool, string) {
			st := h.node(slow.NodeID).Status.State
			return st == api.NodeStateDown, string(st)
		})
	})
}
