package raft

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestProposeOnAStoppedNode: a proposal to a node that has stopped fails
// with ErrStopped at once, not when its context ends (the proposal queue
// has room after a stop, and nothing drains it any more).
func TestProposeOnAStoppedNode(t *testing.T) {
	c := newCluster(t, memNet, 1, nil)
	lead := c.leader(c.ids, 10*time.Second)
	n := c.node(lead)
	c.kill(lead)
	for i := 0; i < 50; i++ {
		// A context that never ends: the call must return on its own.
		_, err := n.Propose(context.Background(), kvOp("k", "v"))
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("proposal %d to a stopped node: %v, want ErrStopped", i, err)
		}
	}
}
