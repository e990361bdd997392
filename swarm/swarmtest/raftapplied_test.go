package swarmtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// TestNodeStatusRaftApplied: a manager's control socket says how far its
// store has applied the raft log (NodeStatus.RaftApplied, what the write
// benchmark counts entries with when the managers are other processes);
// a write moves it on, and a worker says 0.
func TestNodeStatusRaftApplied(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leader := c.Leader()
	cl := c.Client(leader)
	applied := func() uint64 {
		t.Helper()
		before := leader.Node.Manager().Raft().AppliedIndex()
		st, err := cl.NodeStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after := leader.Node.Manager().Raft().AppliedIndex()
		if st.RaftApplied < before || st.RaftApplied > after || st.RaftApplied == 0 {
			t.Fatalf("RaftApplied = %d, want a value in [%d, %d], not 0", st.RaftApplied, before, after)
		}
		return st.RaftApplied
	}
	from := applied()
	if _, err := cl.CreateService(ctx, benchSpec("applied", 0)); err != nil {
		t.Fatal(err)
	}
	// The leader applies a write before it answers it.
	if now := applied(); now <= from {
		t.Fatalf("RaftApplied = %d after a write, was %d", now, from)
	}
	var worker *swarmtest.Member
	for _, m := range c.Members {
		if !m.Manager {
			worker = m
		}
	}
	st, err := c.Client(worker).NodeStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != "worker" || st.RaftApplied != 0 {
		t.Fatalf("a worker's status: %+v, want role worker and RaftApplied 0", st)
	}
}
