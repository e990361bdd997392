package dispatcher_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// A restore replaces the store's state with a snapshot: the expiry loop
// re-reads the nodes from it and re-arms every deadline. A node whose
// heartbeats stopped is down again at once, though the snapshot says it is
// ready; a node that heartbeats keeps its session and its assignments
// stream, which carries the complete set of the new state, and is ready
// again at its next heartbeat, though the snapshot says it is down; a node
// only the snapshot knows as ready gets the grace of an inherited node.
func TestRestoreReArmsHeartbeatDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const period = time.Second
		const grace = 3 * period
		cfg := config(period)
		setup := func(tx store.Tx) error {
			for _, id := range []string{"alive", "silent"} {
				n := readyNodeObj(id)
				n.Status.State = api.NodeStateDown
				if err := tx.CreateNode(n); err != nil {
					return err
				}
			}
			return createTasks(mkTask("alive-before", "alive", api.TaskStateRunning), mkTask("silent-t", "silent", api.TaskStateRunning))(tx)
		}
		// The snapshot: silent and a node "inherited" are ready, alive is
		// down, and alive runs another task than it does when restored.
		snap := snapshot(t, cfg.period, func(tx store.Tx) error {
			for id, state := range map[string]api.NodeState{"alive": api.NodeStateDown, "silent": api.NodeStateReady, "inherited": api.NodeStateReady} {
				n := readyNodeObj(id)
				n.Status.State = state
				if err := tx.CreateNode(n); err != nil {
					return err
				}
			}
			return createTasks(mkTask("alive-restored", "alive", api.TaskStateRunning), mkTask("silent-t", "silent", api.TaskStateRunning))(tx)
		})

		h := newHarness(t, cfg, setup)
		alive := h.register("alive", "alive")
		h.heartbeatUntilDone(alive, period)
		stream, err := h.d.Assignments(context.Background(), &dispatcher.AssignmentsRequest{NodeID: alive.NodeID, SessionID: alive.SessionID})
		if err != nil {
			t.Fatal(err)
		}
		if m := recvTimeout(t, stream, time.Second); m.Type != dispatcher.AssignmentsComplete || strings.Join(taskIDs(m.Tasks), ",") != "alive-before" {
			t.Fatalf("first assignments: type %v, tasks %q", m.Type, taskIDs(m.Tasks))
		}
		h.register("silent", "silent") // and never heartbeat
		time.Sleep(grace + period)
		synctest.Wait()
		if st := h.node("silent").Status.State; st != api.NodeStateDown {
			t.Fatalf("silent node is %s %v after its last heartbeat, want down", st, grace+period)
		}

		restoredAt := time.Now()
		if err := h.s.Restore(snap); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if st := h.node("silent").Status.State; st != api.NodeStateDown {
			t.Errorf("silent node is %s right after the restore, want down again", st)
		}
		if st := h.task("silent-t").Status.State; st != api.TaskStateOrphaned {
			t.Errorf("the silent node's task is %s after the restore, want orphaned", st)
		}
		// The stream goes on, with the complete set of the new state.
		if m := recvTimeout(t, stream, time.Second); m.Type != dispatcher.AssignmentsComplete || strings.Join(taskIDs(m.Tasks), ",") != "alive-restored" {
			t.Errorf("assignments after the restore: type %v, tasks %q, want the complete set alive-restored", m.Type, taskIDs(m.Tasks))
		}

		// Through many grace periods: alive is ready (from its first
		// heartbeat since) and keeps its session; inherited goes down
		// once its grace as an inherited node has passed, not before.
		for time.Since(restoredAt) < 5*(grace+5*time.Second) {
			time.Sleep(period / 2)
			synctest.Wait()
			el := time.Since(restoredAt)
			if st := h.node("alive").Status.State; el >= period && st != api.NodeStateReady {
				t.Fatalf("heartbeating node is %s %v after the restore", st, el)
			}
			st := h.node("inherited").Status.State
			switch {
			case el < grace+5*time.Second && st != api.NodeStateReady:
				t.Fatalf("inherited node is %s %v after the restore, before its grace (%v) ran out", st, el, grace+5*time.Second)
			case el > grace+5*time.Second && st != api.NodeStateDown:
				t.Fatalf("inherited node is %s %v after the restore, past its grace", st, el)
			}
		}
		if _, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: alive.NodeID, SessionID: alive.SessionID}); err != nil {
			t.Errorf("the live session ended: %v", err)
		}
		if st := h.node("silent").Status.State; st != api.NodeStateDown {
			t.Errorf("silent node is %s, want down", st)
		}
	})
}

// snapshot returns a store snapshot holding a cluster object with the
// heartbeat period and what setup writes.
func snapshot(t *testing.T, period time.Duration, setup func(tx store.Tx) error) *bytes.Buffer {
	t.Helper()
	s := store.NewMemoryStore(nil)
	defer s.Close()
	spec := api.DefaultClusterSpec()
	spec.Dispatcher.HeartbeatPeriod = period
	if err := s.Update(func(tx store.Tx) error {
		if err := tx.CreateCluster(&api.Cluster{ID: "cluster", Spec: spec}); err != nil {
			return err
		}
		return setup(tx)
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(&buf); err != nil {
		t.Fatal(err)
	}
	return &buf
}
