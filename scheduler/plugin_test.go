package scheduler_test

import (
	"strings"
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	. "github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

// avoidLabel refuses nodes labelled maintenance=true.
type avoidLabel struct{}

func (avoidLabel) Name() string { return "Maintenance" }
func (avoidLabel) Filter(_ *scheduler.TaskInfo, n *scheduler.NodeInfo) *scheduler.Status {
	if n.Node.Spec.Labels["maintenance"] == "true" {
		return scheduler.Reject("in maintenance")
	}
	return nil
}

// preferSSD scores nodes with disk=ssd.
type preferSSD struct{}

func (preferSSD) Name() string { return "PreferSSD" }
func (preferSSD) Score(_ *scheduler.TaskInfo, n *scheduler.NodeInfo) int64 {
	if n.Node.Spec.Labels["disk"] == "ssd" {
		return 1
	}
	return 0
}

// quota allows `limit` reservations per node and records them.
type quota struct {
	limit      int
	reserved   map[string]int
	unreserved []string
}

func (q *quota) Name() string { return "Quota" }
func (q *quota) Reserve(_ *scheduler.TaskInfo, n *scheduler.NodeInfo, task *api.Task) *scheduler.Status {
	if q.reserved[n.ID()] >= q.limit {
		return scheduler.Rejectf("quota of %d used", q.limit)
	}
	q.reserved[n.ID()]++
	return nil
}
func (q *quota) Unreserve(_ *scheduler.TaskInfo, n *scheduler.NodeInfo, task *api.Task) {
	q.reserved[n.ID()]--
	q.unreserved = append(q.unreserved, task.ID+"@"+n.ID())
}

// refuseOn refuses reservations on one node.
type refuseOn string

func (r refuseOn) Name() string { return "RefuseOn" }
func (r refuseOn) Reserve(_ *scheduler.TaskInfo, n *scheduler.NodeInfo, _ *api.Task) *scheduler.Status {
	if n.ID() == string(r) {
		return scheduler.Reject("refused at reserve")
	}
	return nil
}
func (refuseOn) Unreserve(*scheduler.TaskInfo, *scheduler.NodeInfo, *api.Task) {}

func TestRegisterFilter(t *testing.T) {
	New(t).Register(avoidLabel{}).
		Nodes(Node("n1").Label("maintenance", "true"), Node("n2"), Node("n3").Label("maintenance", "true")).
		Pending(Task("web").Replicas(3)).Run().
		ExpectCounts("web", map[string]int{"n2": 3})
	New(t).Register(avoidLabel{}).Nodes(Node("n1").Label("maintenance", "true")).
		Pending(Task("web")).Run().ExpectReason("web", "no suitable node (1 node in maintenance)")
}

func TestRegisterScore(t *testing.T) {
	// Weight 1 only breaks ties left by the built-ins...
	New(t).Register(preferSSD{}).Nodes(Node("n1"), Node("n2").Label("disk", "ssd")).
		Pending(Task("web").Replicas(1)).Run().ExpectCounts("web", map[string]int{"n2": 1})
	New(t).Register(preferSSD{}).Nodes(Node("n1"), Node("n2").Label("disk", "ssd")).
		Pending(Task("web").Replicas(2)).Run().ExpectCounts("web", map[string]int{"n1": 1, "n2": 1})
	// ...a weight above the spread's puts everything on SSD.
	cfg := scheduler.DefaultConfig()
	cfg.RegisterScore(preferSSD{}, 1<<30)
	New(t).Config(cfg).Nodes(Node("n1"), Node("n2").Label("disk", "ssd")).
		Pending(Task("web").Replicas(3)).Run().ExpectCounts("web", map[string]int{"n2": 3})
}

func TestRegisterReserve(t *testing.T) {
	q := &quota{limit: 2, reserved: map[string]int{}}
	cfg := scheduler.DefaultConfig()
	cfg.Register(q).Register(refuseOn("n2"))
	r := New(t).Config(cfg).Nodes(Node("n1"), Node("n2"), Node("n3")).
		Pending(Task("web").Replicas(5)).Run()
	// n2 is refused at reserve: Quota had reserved, so it is unreserved.
	r.ExpectCounts("web", map[string]int{"n1": 2, "n3": 2}).
		ExpectReason("web", "no suitable node (2 nodes quota of 2 used; 1 node refused at reserve)")
	if q.reserved["n1"] != 2 || q.reserved["n2"] != 0 || q.reserved["n3"] != 2 {
		t.Errorf("reserved %v", q.reserved)
	}
	if strings.Join(q.unreserved, ",") != "web.2@n2" {
		t.Errorf("unreserved %v", q.unreserved)
	}
}

func TestDisable(t *testing.T) {
	cfg := scheduler.DefaultConfig()
	cfg.Disable(scheduler.PluginNodeAvailable).Disable(scheduler.PluginServiceSpread)
	s := scheduler.New(cfg)
	st := scheduler.State{Nodes: []*api.Node{Node("n1").Drain().Build(), Node("n2").Build()}}
	res := s.Schedule(st, Task("web").Replicas(2).Build())
	// Drained n1 is allowed; without ServiceSpread, NodeLoad still spreads.
	if res.Decisions[0].NodeID != "n1" || res.Decisions[1].NodeID != "n2" {
		t.Errorf("decisions %+v", res.Decisions)
	}
	for _, f := range cfg.Filters {
		if f.Name() == scheduler.PluginNodeAvailable {
			t.Error("not disabled")
		}
	}
	if len(cfg.Scores) != 2 {
		t.Errorf("scores %v", cfg.Scores)
	}
}

// perRack allows one task of a service per rack: its answer for a node
// depends on the other nodes of the rack, so it declares CrossNode.
type perRack struct{ cross bool }

func (perRack) Name() string      { return "PerRack" }
func (p perRack) CrossNode() bool { return p.cross }
func (perRack) Filter(t *scheduler.TaskInfo, n *scheduler.NodeInfo) *scheduler.Status {
	// The plugin needs the other nodes: it reads them from a set the test
	// fills, as a real plugin would keep its own index.
	for _, other := range rackNodes[n.Node.Spec.Labels["rack"]] {
		if other.ServiceTasks(t.ServiceID) > 0 {
			return scheduler.Reject("rack taken")
		}
	}
	return nil
}

var rackNodes map[string][]*scheduler.NodeInfo

func TestCrossNodePlugin(t *testing.T) {
	nodes := []*api.Node{Node("n1").Label("rack", "r1").Build(), Node("n2").Label("rack", "r1").Build(), Node("n3").Label("rack", "r2").Build()}
	for _, cross := range []bool{false, true} {
		set := scheduler.NewNodeSetFromState(scheduler.State{Nodes: nodes})
		rackNodes = map[string][]*scheduler.NodeInfo{}
		for _, ni := range set.Nodes() {
			rackNodes[ni.Node.Spec.Labels["rack"]] = append(rackNodes[ni.Node.Spec.Labels["rack"]], ni)
		}
		cfg := scheduler.DefaultConfig()
		cfg.Register(perRack{cross: cross})
		res := scheduler.New(cfg).ScheduleSet(set, Task("web").Replicas(3).Build())
		if cross && res.Placed != 2 {
			t.Errorf("cross-node plugin: placed %d, want one per rack", res.Placed)
		}
		if !cross && res.Placed != 3 {
			// Documented limitation: a node-local pass does not see the
			// rack filling up.
			t.Errorf("node-local pass: placed %d", res.Placed)
		}
	}
}

func TestHarnessSkipVerify(t *testing.T) {
	cfg := scheduler.DefaultConfig()
	cfg.Disable(scheduler.PluginResources)
	New(t).Config(cfg).SkipVerify().Nodes(Node("n1").Memory("1GiB")).
		Pending(Task("web").Replicas(2).Memory("1GiB")).Run().ExpectOn("web", "n1", 2)
}
