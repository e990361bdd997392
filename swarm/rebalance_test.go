package swarm_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/scheduler"
)

// A service that opted in to rebalancing spreads onto nodes that join,
// one task at a time, start-first; one that did not stays where it is.
func TestRebalanceOntoJoiningNodes(t *testing.T) {
	tc := startCluster(t, 2)
	ctx := context.Background()
	spec := sleeper("spread", 4)
	spec.Labels = map[string]string{scheduler.RebalanceLabel: "true"}
	svc, err := tc.c.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := tc.c.CreateService(ctx, sleeper("fixed", 4))
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	tc.converge(fixed.ID)
	before := map[string]string{}
	for _, tk := range tc.running(fixed.ID) {
		before[tk.ID] = tk.NodeID
	}
	tc.addWorker("w3", "")
	tc.addWorker("w4", "")
	testutil.EventuallyWhy(t, 30*time.Second, "the opted-in service on all four nodes", func() (bool, string) {
		per := map[string]int{}
		for _, tk := range tc.running(svc.ID) {
			per[tk.NodeID]++
		}
		return len(per) == 4, fmt.Sprint(per)
	})
	tc.converge(svc.ID)
	if n := len(tc.running(svc.ID)); n != 4 {
		t.Fatalf("%d running after rebalancing, want 4", n)
	}
	for _, tk := range tc.running(fixed.ID) {
		if before[tk.ID] != tk.NodeID {
			t.Fatalf("task %s of the service that did not opt in moved", tk.ID)
		}
	}
}
