package scheduler_test

import (
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

// NoCanary keeps tasks off nodes labelled canary=true unless their service
// is labelled canary=true too.
type NoCanary struct{}

func (NoCanary) Name() string { return "NoCanary" }

func (NoCanary) Filter(t *scheduler.TaskInfo, n *scheduler.NodeInfo) *scheduler.Status {
	if n.Node.Spec.Labels["canary"] == "true" && t.Task.ServiceAnnotations.Labels["canary"] != "true" {
		return scheduler.Reject("reserved for canaries")
	}
	return nil
}

// Register a filter plugin next to the built-ins and see it in the
// explanation of a task that fits nowhere.
func ExampleConfig_Register() {
	cfg := scheduler.DefaultConfig()
	cfg.Register(NoCanary{})
	s := scheduler.New(cfg)

	nodes := []*api.Node{
		schedtest.Node("n1").Label("canary", "true").Build(),
		schedtest.Node("n2").Build(),
		schedtest.Node("n3").Drain().Build(),
	}
	pending := schedtest.Task("web").Replicas(2).Build()
	res := s.Schedule(scheduler.State{Nodes: nodes}, pending)
	for _, d := range res.Decisions {
		fmt.Println(d.TaskID, "->", d.NodeID)
	}
	res = s.Schedule(scheduler.State{Nodes: nodes[:1]}, pending[:1])
	fmt.Println(res.Decisions[0].Reason)
	// Output:
	// web.1 -> n2
	// web.2 -> n2
	// no suitable node (1 node reserved for canaries)
}

// Weigh a score plugin against the built-in spread.
func ExampleConfig_RegisterScore() {
	cfg := scheduler.DefaultConfig()
	cfg.RegisterScore(preferSSD{}, 2*scheduler.WeightPrimary) // above the spread
	s := scheduler.New(cfg)
	nodes := []*api.Node{schedtest.Node("hdd").Build(), schedtest.Node("ssd").Label("disk", "ssd").Build()}
	res := s.Schedule(scheduler.State{Nodes: nodes}, schedtest.Task("db").Replicas(2).Build())
	fmt.Println(res.Decisions[0].NodeID, res.Decisions[1].NodeID)
	// Output: ssd ssd
}

// TestCanaryPolicy is the test to copy: a cluster, a policy, the assertions.
func TestCanaryPolicy(t *testing.T) {
	h := schedtest.New(t).Register(NoCanary{})
	h.Nodes(schedtest.Node("n1").Label("canary", "true"), schedtest.Node("n2"), schedtest.Node("n3"))
	h.Pending(
		schedtest.Task("web").Replicas(4),
		schedtest.Task("web-canary").ServiceLabel("canary", "true").Constraint("node.labels.canary==true"),
	)
	r := h.Run()
	r.ExpectCounts("web", map[string]int{"n2": 2, "n3": 2})
	r.ExpectCounts("web-canary", map[string]int{"n1": 1})
}
