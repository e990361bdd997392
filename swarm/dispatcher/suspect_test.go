package dispatcher_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// stateAt advances the bubble's clock to at and returns the node's state
// once every goroutine has settled.
func (h *harness) stateAt(at time.Time, nodeID string) api.NodeState {
	time.Sleep(time.Until(at))
	synctest.Wait()
	return h.node(nodeID).Status.State
}

// A node gossip suspects is down at its first missed heartbeat: at once
// when one is already overdue, else 1.5 periods after its last; not after
// the whole grace of 3 periods (12 s).
func TestSuspectedNodeDownAtItsFirstMissedHeartbeat(t *testing.T) {
	const period = 4 * time.Second
	for _, tc := range []struct {
		name      string
		suspectAt time.Duration // after the last heartbeat
		downAt    time.Duration
	}{
		{"heartbeat overdue", 7 * time.Second, 7 * time.Second},
		{"heartbeat not yet due", time.Second, 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, config(period), nil)
				s := h.register("", "dead")
				last := time.Now()
				if st := h.stateAt(last.Add(tc.suspectAt), s.NodeID); st != api.NodeStateReady {
					t.Fatalf("before the suspicion: %s, want ready", st)
				}
				h.d.Suspect(s.NodeID)
				if tc.downAt == tc.suspectAt {
					synctest.Wait()
					if st := h.node(s.NodeID).Status.State; st != api.NodeStateDown {
						t.Fatalf("suspected with its heartbeat overdue: %s, want down at once", st)
					}
					return
				}
				if st := h.stateAt(last.Add(tc.downAt-time.Millisecond), s.NodeID); st != api.NodeStateReady {
					t.Fatalf("%v after its last heartbeat: %s, want still ready", tc.downAt-time.Millisecond, st)
				}
				if st := h.stateAt(last.Add(tc.downAt+time.Millisecond), s.NodeID); st != api.NodeStateDown {
					t.Fatalf("%v after its last heartbeat: %s, want down (the grace alone would take 12 s)", tc.downAt+time.Millisecond, st)
				}
			})
		})
	}
}

// A suspicion does not bring down a node that keeps heartbeating (a false
// suspicion, or gossip cut off alone), and its heartbeat clears it: a
// later silence gets the whole grace again.
func TestSuspectedNodeThatHeartbeatsStaysUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const period = time.Second
		h := newHarness(t, config(period), nil)
		s := h.register("", "alive")
		beat := func() {
			t.Helper()
			if _, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: s.NodeID, SessionID: s.SessionID}); err != nil {
				t.Fatal(err)
			}
		}
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			h.d.Suspect(s.NodeID)
			time.Sleep(900 * time.Millisecond)
			beat()
		}
		last := time.Now()
		if st := h.stateAt(last.Add(3*period-time.Millisecond), s.NodeID); st != api.NodeStateReady {
			t.Fatalf("suspected node that heartbeated: %s within its grace", st)
		}
		if st := h.stateAt(last.Add(3*period+time.Millisecond), s.NodeID); st != api.NodeStateDown {
			t.Fatalf("silent node after its grace: %s, want down", st)
		}
	})
}

// Suspicions of nodes without a session, and on a dispatcher that does not
// run, are ignored.
func TestSuspectUnknownNodeIgnored(t *testing.T) {
	h := newHarness(t, config(time.Second), nil)
	h.d.Suspect("nobody")
	h.stop()
	h.d.Suspect("nobody")
	dispatcher.New(h.s, dispatcher.DefaultConfig()).Suspect("nobody")
}
