package placer_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// changeOnReserve changes the store the first time the scheduler commits a
// task to a node: the node changes after the round decided from its view
// and before the round writes, the race a busy cluster runs into by chance
// (a round of 100,000 tasks takes a second or more), made deterministic.
type changeOnReserve struct {
	t        *testing.T
	s        *store.MemoryStore
	change   func(tx store.Tx) error
	reserves atomic.Int32
}

func (*changeOnReserve) Name() string { return "test-change-on-reserve" }

func (c *changeOnReserve) Reserve(*scheduler.TaskInfo, *scheduler.NodeInfo, *api.Task) *scheduler.Status {
	if c.reserves.Add(1) == 1 {
		if err := c.s.Update(c.change); err != nil {
			c.t.Errorf("changing the node during the round: %v", err)
		}
	}
	return nil
}

func (*changeOnReserve) Unreserve(*scheduler.TaskInfo, *scheduler.NodeInfo, *api.Task) {}

// runRacing runs a placer whose first reservation makes change, over a
// store that setup filled first.
func runRacing(t *testing.T, change, setup func(tx store.Tx) error) (*harness, *changeOnReserve) {
	t.Helper()
	h := fill(t, setup)
	race := &changeOnReserve{t: t, s: h.s, change: change}
	cfg := scheduler.DefaultConfig()
	h.start(scheduler.New(*cfg.Register(race)))
	return h, race
}

// A task is never left ASSIGNED to a node that went down, was drained,
// removed or shrunk while the round that chose it ran: it stays pending,
// the next round (which the node's change brings) says why nothing fits,
// and the task is placed once the node is back.
func TestNodeChangedBeforeTheWriteKeepsTaskPending(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(tx store.Tx) error
		reason string // the next round's
		back   func(tx store.Tx) error
	}{{
		name:   "down",
		change: setNode("n1", down),
		reason: "1 node not available for new tasks",
		back:   setNode("n1", func(n *api.Node) { n.Status.State = api.NodeStateReady }),
	}, {
		name:   "drained",
		change: setNode("n1", drained),
		reason: "1 node not available for new tasks",
		back:   setNode("n1", func(n *api.Node) { n.Spec.Availability = api.NodeAvailabilityActive }),
	}, {
		name:   "removed",
		change: func(tx store.Tx) error { return tx.DeleteNode("n1") },
		reason: "no suitable node",
		back:   create(node("n1")),
	}, {
		name:   "shrunk",
		change: setNode("n1", cpus(1)),
		reason: "insufficient CPU",
		back:   setNode("n1", cpus(4)),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h, _ := runRacing(t, tc.change, create(node("n1"), pending("t1", "web", reserveCPUs(2))))
				if got := h.waiting("t1", func(m string) bool { return strings.Contains(m, tc.reason) }); got.NodeID != "" {
					t.Fatalf("pending task has node %q", got.NodeID)
				}
				h.update(tc.back)
				if got := h.assigned("t1"); got.NodeID != "n1" {
					t.Fatalf("assigned to %s, want n1", got.NodeID)
				}
			})
		})
	}
}

// A change of the node that its filters do not read (its status message,
// its address) leaves the round's assignment standing: no second round.
func TestNodeTouchedBeforeTheWriteKeepsAssignment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, race := runRacing(t, setNode("n1", func(n *api.Node) { n.Status.Addr = "10.0.0.9:4242" }), create(node("n1")))
		h.update(create(pending("t1", "web")))
		if got := h.assigned("t1"); got.NodeID != "n1" {
			t.Fatalf("assigned to %s, want n1", got.NodeID)
		}
		if n := race.reserves.Load(); n != 1 {
			t.Fatalf("the task was reserved %d times, want once: the round's assignment did not stand", n)
		}
	})
}
