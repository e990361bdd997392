package swarmtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// The leader is cut off from the other managers and the workers: the
// majority elects a new leader and keeps accepting writes, the workers'
// sessions move to it with their tasks running, and a write sent to the
// isolated manager is not acknowledged and never applied. Once the network
// heals, the old leader follows the new one and catches up.
func TestIsolatedLeader(t *testing.T) {
	c, ctx, svc := withService(t, 6)
	old := c.Leader()

	c.Isolate(old)
	var lead *swarmtest.Member
	c.WaitFor("a new leader on the majority side", func() (bool, string) {
		for _, m := range c.Members {
			if m != old && m.Node != nil && m.Node.Manager() != nil && m.Node.Manager().IsLeader() {
				lead = m
				return true, ""
			}
		}
		return false, "no leader among the others"
	})
	// The isolated manager cannot commit: its write fails.
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := c.Client(old).ScaleService(wctx, "web", 2)
	wcancel()
	if err == nil {
		t.Fatal("the isolated manager acknowledged a write")
	}
	// The majority side accepts writes, and the workers' tasks run there.
	if _, err := c.Client(lead).ScaleService(ctx, "web", 8); err != nil {
		t.Fatal(err)
	}
	if err := c.Client(lead).WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the isolated manager to step down", func() (bool, string) {
		return !old.Node.Manager().IsLeader(), "it still believes it leads"
	})
	for _, m := range c.Members[3:] {
		n, err := c.Client(lead).GetNode(ctx, m.Node.NodeID())
		if err != nil {
			t.Fatal(err)
		}
		if n.Status.State != api.NodeStateReady {
			t.Errorf("worker %s is %s on the majority side", m.Name, n.Status.State)
		}
	}

	c.Heal()
	c.WaitFor("the old leader to catch up", func() (bool, string) {
		s, err := c.Client(old).GetService(ctx, "web")
		if err != nil {
			return false, err.Error()
		}
		return s.Spec.Mode.Replicated.Replicas == 8, fmt.Sprint("replicas ", s.Spec.Mode.Replicated.Replicas)
	})
	if c.Leader() == old {
		t.Log("the old leader was elected again after the heal")
	}
	c.WaitReady()
	// The write sent to the isolated side was never applied.
	s, err := c.Client(c.Leader()).GetService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Spec.Mode.Replicated.Replicas; got != 8 {
		t.Errorf("replicas = %d after the heal, want 8 (the isolated write must not apply)", got)
	}
}
