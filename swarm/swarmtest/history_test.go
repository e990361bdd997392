package swarmtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// The cluster's task history limit is read by the orchestrator at each
// pass over a service: lowered at runtime (UpdateCluster, no restart), the
// next pass over a service deletes the finished tasks beyond it.
func TestTaskHistoryLimitChangesAtRuntime(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := c.Client(c.Leader())
	const replicas = 2
	s := spec("web", replicas)
	// Every update replaces all the tasks at once and is over when they run.
	s.UpdateConfig = &api.UpdateConfig{Parallelism: 0, Monitor: time.Millisecond}
	if _, err := cl.CreateService(ctx, s); err != nil {
		t.Fatal(err)
	}
	force := func() {
		t.Helper()
		svc, err := cl.GetService(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		s := svc.Spec.Copy()
		s.TaskTemplate.ForceUpdate++
		if _, err := cl.UpdateService(ctx, svc.ID, svc.Meta.Version, s); err != nil {
			t.Fatal(err)
		}
		if err := cl.WaitConverged(ctx, "web"); err != nil {
			t.Fatal(err)
		}
	}
	// history waits until every slot keeps exactly want finished tasks
	// (besides its running one).
	history := func(want int) {
		t.Helper()
		c.WaitFor(fmt.Sprintf("%d finished tasks per slot", want), func() (bool, string) {
			tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: "web"})
			if err != nil {
				return false, err.Error()
			}
			finished := map[uint64]int{}
			for _, tk := range tasks {
				if tk.Status.State.Terminal() {
					finished[tk.Slot]++
				}
			}
			for slot := uint64(1); slot <= replicas; slot++ {
				if finished[slot] != want {
					return false, fmt.Sprintf("slot %d keeps %d finished tasks", slot, finished[slot])
				}
			}
			return true, ""
		})
	}
	for range 3 {
		force()
	}
	history(3) // within the default limit of 5
	if _, err := cl.EditCluster(ctx, func(s *api.ClusterSpec) error {
		s.Orchestration.TaskHistoryRetentionLimit = 1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	force()
	history(1)
}
