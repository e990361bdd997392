package schedtest_test

import (
	"strings"
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"512": 512, "512B": 512, "64k": 64 << 10, "4m": 4 << 20, "4MiB": 4 << 20, "1.5g": 3 << 29,
		"4GB": 4 << 30, "4GiB": 4 << 30, "2t": 2 << 40, " 1 GiB ": 1 << 30,
	} {
		if got, err := schedtest.ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "1q", "-1", "GiB"} {
		if _, err := schedtest.ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) succeeded", bad)
		}
	}
}

func TestBuilders(t *testing.T) {
	n := schedtest.Node("n1").Label("zone", "a").EngineLabel("e", "1").CPUs(1.5).Memory("2GiB").
		Generic("gpu", 2).Named("fpga", "f1").Manager().Platform("linux", "arm64").Executor("process").Pause().Build()
	if n.Spec.Labels["zone"] != "a" || n.Description.Engine.Labels["e"] != "1" || n.Description.Resources.NanoCPUs != 1.5e9 ||
		n.Description.Resources.MemoryBytes != 2<<30 || len(n.Description.Resources.GenericResources) != 2 ||
		n.Spec.Role != api.NodeRoleManager || n.Description.Executor != "process" || n.Spec.Availability != api.NodeAvailabilityPause {
		t.Errorf("node %+v", n)
	}
	ts := schedtest.Task("web").Replicas(3).FirstID(4).Process().CPUs(0.5).Memory("1GiB").Constraint("node.role==worker").
		Spread("node.labels.zone").MaxReplicas(2).HostPort("53/udp").Binpack().On("n1", "n2").Build()
	if len(ts) != 3 || ts[0].ID != "web.4" || ts[2].ID != "web.6" || ts[1].NodeID != "n2" || ts[2].NodeID != "n1" {
		t.Fatalf("tasks %v %v", ts[0].ID, ts[1].NodeID)
	}
	ti := scheduler.NewTaskInfo(ts[0])
	if ti.Runtime != "process" || ti.NanoCPUs != 5e8 || ti.MaxReplicas != 2 || ti.Strategy != scheduler.StrategyBinpack ||
		len(ti.HostPorts) != 1 || ti.HostPorts[0].String() != "53/udp" || len(ti.Preferences) != 1 || len(ti.Constraints) != 1 {
		t.Errorf("task info %+v", ti)
	}
	// Tasks of a harness get distinct IDs per service.
	h := schedtest.New(t).Nodes(schedtest.Node("n1")).Running(schedtest.Task("web").Replicas(2).On("n1")).
		Pending(schedtest.Task("web").Replicas(2))
	if ids := []string{h.State().Tasks[1].ID, h.PendingTasks()[0].ID}; ids[0] != "web.2" || ids[1] != "web.3" {
		t.Errorf("ids %v", ids)
	}
}

// TestVerifyCatches feeds Verify decisions that break each rule.
func TestVerifyCatches(t *testing.T) {
	nodes := []*api.Node{
		schedtest.Node("ok").CPUs(1).Memory("1GiB").Generic("gpu", 1).Build(),
		schedtest.Node("down").Down().Build(),
		schedtest.Node("drain").Drain().Build(),
		schedtest.Node("proc").Executor("process").Build(),
		schedtest.Node("arm").Platform("linux", "arm64").Build(),
	}
	running := schedtest.Task("old").HostPort("80").On("ok").Build()
	st := scheduler.State{Nodes: nodes, Tasks: running}
	cases := []struct {
		task *schedtest.TaskBuilder
		node string
		want string
	}{
		{schedtest.Task("a"), "down", "node down is down"},
		{schedtest.Task("a"), "drain", "availability is drain"},
		{schedtest.Task("a"), "ghost", "unknown node"},
		{schedtest.Task("a").Container("x"), "proc", "runs process, task needs docker"},
		{schedtest.Task("a").Platform("linux", "amd64"), "arm", "platform not in"},
		{schedtest.Task("a").Constraint("node.id==arm"), "ok", "does not meet node.id==arm"},
		{schedtest.Task("a").CPUs(2), "ok", "NanoCPUs reserved"},
		{schedtest.Task("a").Memory("2GiB"), "ok", "bytes reserved"},
		{schedtest.Task("a").Generic("gpu", 2), "ok", "2 gpu reserved of 1"},
		{schedtest.Task("a").HostPort("80"), "ok", "host port 80/tcp published by 2 tasks"},
		{schedtest.Task("a").Named("gpu", "g9"), "ok", "named unit gpu=g9"},
		{schedtest.Task("a").Replicas(2).MaxReplicas(1), "ok", "max replicas 1"},
		{schedtest.Task("a"), "", "unplaced without a reason"},
	}
	for _, c := range cases {
		pending := c.task.Build()
		res := scheduler.Result{}
		for _, p := range pending {
			res.Decisions = append(res.Decisions, scheduler.Decision{TaskID: p.ID, Task: p, NodeID: c.node})
		}
		found := false
		var all []string
		for _, err := range schedtest.Verify(st, pending, res) {
			all = append(all, err.Error())
			found = found || strings.Contains(err.Error(), c.want)
		}
		if !found {
			t.Errorf("%s on %q: want an error containing %q, got %q", pending[0].ID, c.node, c.want, all)
		}
	}
	if errs := schedtest.Verify(st, nil, scheduler.Result{Decisions: make([]scheduler.Decision, 1)}); len(errs) != 1 {
		t.Errorf("count mismatch: %v", errs)
	}
}
