package swarm_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm"
)

// A node that comes back after its service was removed finds the service's
// processes still running from before; nothing assigns them any more, so the
// agent removes them (found through the executor's records).
func TestReturningNodeRemovesStrayProcesses(t *testing.T) {
	tc := startCluster(t, 1)
	ctx := context.Background()
	svc, err := tc.c.CreateService(ctx, sleeper("gone", 2))
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	var pids []int
	for _, tk := range tc.running(svc.ID) {
		pids = append(pids, tk.Status.ContainerStatus.PID)
	}
	w := tc.workers[0]
	nodeID := w.w.NodeID()
	w.w.Stop() // the agent goes; its processes run on
	_ = w.ex.Close()
	if err := tc.c.RemoveService(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 20*time.Second, "the removed service's tasks deleted", func() (bool, string) {
		ts, err := tc.c.ListTasks(ctx, swarm.TaskFilter{})
		return err == nil && len(ts) == 0, fmt.Sprint(len(ts), err)
	})
	for _, p := range pids {
		if !pidAlive(p) {
			t.Fatalf("pid %d died while its agent was away", p)
		}
	}
	tc.addWorker(w.name, nodeID)
	testutil.EventuallyWhy(t, 20*time.Second, "stray processes removed", func() (bool, string) {
		for _, p := range pids {
			if pidAlive(p) {
				return false, fmt.Sprintf("pid %d alive", p)
			}
		}
		return true, ""
	})
}
