package swarmtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// A node that joins with availability drain is drained from its first
// moment: no task of a service created right away lands on it; a bad
// availability is refused before the node joins.
func TestJoinDrained(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 2, Configure: func(name string, cfg *swarm.NodeConfig) {
		if name == "worker-2" {
			cfg.Availability = api.NodeAvailabilityDrain
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := c.Client(c.Leader())
	n, err := cl.GetNode(ctx, "worker-2")
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Availability != api.NodeAvailabilityDrain {
		t.Fatalf("worker-2 joined %s", n.Spec.Availability)
	}
	if w1, _ := cl.GetNode(ctx, "worker-1"); w1 == nil || w1.Spec.Availability != api.NodeAvailabilityActive {
		t.Fatalf("worker-1: %+v", w1)
	}
	if _, err := cl.CreateService(ctx, procSpec("web", 6)); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConverged(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: "web", Node: n.ID})
	if err != nil || len(tasks) != 0 {
		t.Fatalf("tasks on the drained node: %d (%v)", len(tasks), err)
	}

	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir, cfg.ListenAddr, cfg.Executor = t.TempDir(), "127.0.0.1:0", fake.New(fake.Config{})
	cfg.Availability = "asleep"
	if _, err := swarm.JoinNode(ctx, cfg, "SWMTKN-1-x", []string{"127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), `availability "asleep"`) {
		t.Fatalf("join with a bad availability: %v", err)
	}
}
