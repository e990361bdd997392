package schedtest_test

import (
	"fmt"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

// Build a cluster (nodes, tasks already running) and the tasks to place,
// schedule them, read the plan and check it against the built-in rules. In
// a test, a Harness does the same: schedtest.New(t).Nodes(...).Running(...)
// .Pending(...).Run(), which fails the test on any violation Verify finds.
func Example() {
	st := scheduler.State{
		Nodes: []*api.Node{
			schedtest.Node("n1").Label("zone", "a").CPUs(2).Memory("4GiB").Build(),
			schedtest.Node("n2").Label("zone", "b").CPUs(2).Memory("4GiB").Build(),
			schedtest.Node("n3").Label("zone", "b").CPUs(2).Memory("4GiB").Drain().Build(),
		},
		Tasks: schedtest.Task("db").Memory("3GiB").On("n1").Build(),
	}
	pending := schedtest.Task("web").Replicas(3).Memory("2GiB").Spread("node.labels.zone").Build()

	plan := scheduler.New(scheduler.DefaultConfig()).Schedule(st, pending)
	for _, d := range plan.Decisions {
		if d.Placed() {
			fmt.Println(d.TaskID, "->", d.NodeID)
		} else {
			fmt.Println(d.TaskID, "unplaced:", d.Reason)
		}
	}
	fmt.Println("violations:", schedtest.Verify(st, pending, plan))
	// Output:
	// web.1 -> n2
	// web.2 -> n2
	// web.3 unplaced: no suitable node (1 node not available for new tasks; 2 nodes insufficient memory (need 2GiB, max free 1GiB))
	// violations: []
}
