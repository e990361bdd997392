package scheduler_test

import (
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	. "github.com/apiary-io/apiary/scheduler/schedtest"
	"github.com/apiary-io/apiary/swarm/api"
)

// TestCallShape is the manager's call: State in, one decision per pending task.
func TestCallShape(t *testing.T) {
	nodes := []*api.Node{Node("n1").Build(), Node("n2").Build(), Node("n3").Build()}
	placed := Task("db").On("n1").Build()
	pending := Task("web").Replicas(5).Build()
	s := scheduler.New(scheduler.DefaultConfig())
	res := s.Schedule(scheduler.State{Nodes: nodes, Tasks: placed}, pending)
	if len(res.Decisions) != 5 || res.Placed != 5 || res.Unplaced != 0 {
		t.Fatalf("got %d decisions, %d placed, %d unplaced", len(res.Decisions), res.Placed, res.Unplaced)
	}
	got := map[string]int{}
	for i, d := range res.Decisions {
		if d.TaskID != pending[i].ID || d.Task != pending[i] || d.Reason != "" {
			t.Errorf("decision %d: %+v", i, d)
		}
		got[d.NodeID]++
	}
	// Least tasks of the service first, then least tasks overall: n1
	// already runs a db task, so n2 and n3 get the extra replicas.
	if got["n1"] != 1 || got["n2"] != 2 || got["n3"] != 2 {
		t.Errorf("placement %v, want n1:1 n2:2 n3:2", got)
	}
	if pending[0].NodeID != "" {
		t.Error("Schedule changed its input")
	}
}

func TestNodeAvailableFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		node   *NodeBuilder
		fits   bool
		detail string
	}{
		{"ready active", Node("n"), true, ""},
		{"empty availability is active", Node("n").State(api.NodeStateReady), true, ""},
		{"pause", Node("n").Pause(), false, "availability pause"},
		{"drain", Node("n").Drain(), false, "availability drain"},
		{"down", Node("n").Down(), false, "node is down"},
		{"disconnected", Node("n").State(api.NodeStateDisconnected), false, "node is disconnected"},
		{"unknown", Node("n").State(api.NodeStateUnknown), false, "node is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFilter(t, tc.node, Task("web"), scheduler.PluginNodeAvailable, tc.fits,
				"no suitable node (1 node not available for new tasks)", tc.detail)
		})
	}
	// An empty availability is read as active.
	n := Node("n").Build()
	n.Spec.Availability = ""
	res := scheduler.New(scheduler.DefaultConfig()).Schedule(scheduler.State{Nodes: []*api.Node{n}}, Task("web").Build())
	if res.Placed != 1 {
		t.Errorf("empty availability: %s", res.Decisions[0].Reason)
	}
}

// checkFilter schedules one task on one node and checks that it fits, or
// that the plugin refuses it with the reason (and node detail, if given).
func checkFilter(t *testing.T, node *NodeBuilder, task *TaskBuilder, plugin string, fits bool, reason, detail string) {
	t.Helper()
	h := New(t).Nodes(node).Pending(task)
	r := h.Run()
	svc := h.PendingTasks()[0].ServiceID
	if fits {
		r.ExpectPlaced(svc, 1)
		return
	}
	r.ExpectPlaced(svc, 0).ExpectReason(svc, reason)
	if u := r.Unplaced(svc); len(u) == 1 && detail != "" {
		rej := u[0].Explanation.Rejected
		if len(rej) != 1 || rej[0].Plugin != plugin || rej[0].Status.Detail != detail {
			t.Errorf("rejections %+v, want %s with detail %q", rej, plugin, detail)
		}
	}
}

func TestExecutorFilter(t *testing.T) {
	for _, tc := range []struct {
		executor string
		task     *TaskBuilder
		fits     bool
		reason   string
	}{
		{"process", Task("web").Process(), true, ""},
		{"process", Task("web").Container("nginx"), false, "no suitable node (1 node cannot run docker tasks)"},
		{"docker", Task("web").Container("nginx"), true, ""},
		{"docker", Task("web").Process(), false, "no suitable node (1 node cannot run process tasks)"},
		{"fake", Task("web").Process(), true, ""},
		{"fake", Task("web").Container("nginx"), true, ""},
		{"", Task("web").Process(), true, ""}, // executor not reported
		{"process", Task("web"), true, ""},    // no runtime: anything runs it
		{"docker", Task("web"), true, ""},
		// A container whose image is an executable's path runs as a
		// process on process nodes (issue 17), and nowhere on Docker's.
		{"process", Task("web").Container("/opt/bin/web"), true, ""},
		{"docker", Task("web").Container("/opt/bin/web"), false, "no suitable node (1 node cannot run process tasks)"},
		{"process", Task("web").Container("process.apiary.invalid/opt/bin/web:latest"), true, ""},
		{"docker", Task("web").Container("process.apiary.invalid/opt/bin/web:latest"), false, "no suitable node (1 node cannot run process tasks)"},
	} {
		t.Run(tc.executor+"/"+tc.reason, func(t *testing.T) {
			checkFilter(t, Node("n").Executor(tc.executor), tc.task, scheduler.PluginExecutor, tc.fits, tc.reason, "executor "+tc.executor)
		})
	}
}

func TestPlatformFilter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		os, arch string
		task     *TaskBuilder
		fits     bool
		reason   string
	}{
		{"none wanted", "linux", "arm64", Task("web"), true, ""},
		{"match", "linux", "amd64", Task("web").Platform("linux", "amd64"), true, ""},
		{"one of several", "linux", "arm64", Task("web").Platform("linux", "amd64").Platform("linux", "arm64"), true, ""},
		{"os only", "linux", "arm64", Task("web").Platform("linux", ""), true, ""},
		{"arch alias", "linux", "x86_64", Task("web").Platform("linux", "amd64"), true, ""},
		{"case", "Linux", "AMD64", Task("web").Platform("linux", "amd64"), true, ""},
		{"wrong arch", "linux", "arm64", Task("web").Platform("linux", "amd64"), false,
			"no suitable node (1 node platform not supported (want linux/amd64))"},
		{"wrong os", "windows", "amd64", Task("web").Platform("linux", "amd64").Platform("darwin", ""), false,
			"no suitable node (1 node platform not supported (want linux/amd64, darwin/*))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFilter(t, Node("n").Platform(tc.os, tc.arch), tc.task, scheduler.PluginPlatform, tc.fits, tc.reason, "node is "+tc.os+"/"+tc.arch)
		})
	}
}

func TestConstraintsFilter(t *testing.T) {
	node := func() *NodeBuilder {
		return Node("n1").Hostname("host-1").Manager().Platform("linux", "arm64").
			Label("zone", "a").Label("Disk", "SSD").EngineLabel("gpu", "nvidia")
	}
	for _, tc := range []struct {
		expr string
		fits bool
	}{
		{"node.id==n1", true},
		{"node.id==n2", false},
		{"node.id!=n2", true},
		{"node.id!=n1", false},
		{"node.hostname==host-1", true},
		{"node.hostname==HOST-1", true}, // values compare case-insensitively, as in Swarm
		{"node.hostname!=host-1", false},
		{"node.hostname==host-2", false},
		{"node.role==manager", true},
		{"node.role==worker", false},
		{"node.role!=worker", true},
		{"node.role!=manager", false},
		{"node.platform.os==linux", true},
		{"node.platform.os==windows", false},
		{"node.platform.os!=windows", true},
		{"node.platform.os!=linux", false},
		{"node.platform.arch==arm64", true},
		{"node.platform.arch==amd64", false},
		{"node.platform.arch!=amd64", true},
		{"node.platform.arch!=arm64", false},
		{"node.labels.zone==a", true},
		{"node.labels.zone==b", false},
		{"node.labels.zone!=b", true},
		{"node.labels.zone!=a", false},
		{"node.labels.Disk==ssd", true}, // label names keep their case
		{"node.labels.disk==ssd", false},
		{"node.labels.missing==x", false}, // a missing label fails ==
		{"node.labels.missing!=x", true},  // and passes !=
		{"engine.labels.gpu==nvidia", true},
		{"engine.labels.gpu==amd", false},
		{"engine.labels.gpu!=amd", true},
		{"engine.labels.gpu!=nvidia", false},
		{"engine.labels.missing!=x", true},
		{"NODE.ROLE == manager", true}, // keys in any case, spaces around the operator
	} {
		t.Run(tc.expr, func(t *testing.T) {
			c, err := api.ParseConstraint(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			checkFilter(t, node(), Task("web").Constraint(tc.expr), scheduler.PluginConstraints, tc.fits,
				"no suitable node (1 node constraint "+c.String()+" not met)", "")
		})
	}
	t.Run("all must hold", func(t *testing.T) {
		New(t).Nodes(Node("n1").Label("zone", "a").Label("disk", "ssd"), Node("n2").Label("zone", "a"), Node("n3").Label("disk", "ssd")).
			Pending(Task("web").Replicas(2).Constraint("node.labels.zone==a", "node.labels.disk==ssd")).
			Run().ExpectCounts("web", map[string]int{"n1": 2})
	})
	t.Run("node without description", func(t *testing.T) {
		checkFilter(t, Node("n1").NoDescription(), Task("web").Constraint("node.hostname==n1"), scheduler.PluginConstraints, false,
			"no suitable node (1 node constraint node.hostname==n1 not met)", "")
		checkFilter(t, Node("n1").NoDescription(), Task("web").Constraint("node.hostname!=n1"), scheduler.PluginConstraints, true, "", "")
	})
}

func TestConstraintParseErrors(t *testing.T) {
	for _, tc := range []struct{ expr, reason string }{
		{"node.labels.zone=a", `invalid placement constraint: constraint "node.labels.zone=a": expected KEY==VALUE or KEY!=VALUE`},
		{"node.colour==red", `invalid placement constraint: constraint "node.colour==red": unknown key "node.colour"`},
		{"node.labels.==a", `invalid placement constraint: constraint "node.labels.==a": label name missing after node.labels.`},
		{"node.id==", `invalid placement constraint: constraint "node.id==": missing value after ==`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			r := New(t).Nodes(Node("n1")).Pending(Task("web").Replicas(2).Constraint("node.role==worker", tc.expr)).Run()
			r.ExpectUnplaced("web", 2, tc.reason)
			if e := r.Unplaced("web")[0].Explanation; e == nil || e.Invalid == "" || len(e.Rejected) != 0 {
				t.Errorf("explanation %+v", e)
			}
		})
	}
}

func TestMaxReplicasFilter(t *testing.T) {
	r := New(t).Nodes(Node("n1"), Node("n2")).
		Running(Task("web").On("n1")).
		Pending(Task("web").Replicas(4).MaxReplicas(2)).Run()
	r.ExpectCounts("web", map[string]int{"n1": 1, "n2": 2}).
		ExpectReason("web", "no suitable node (2 nodes max replicas per node (2) reached)")
	// Other services do not count.
	New(t).Nodes(Node("n1")).Running(Task("db").Replicas(3).On("n1")).
		Pending(Task("web").Replicas(2).MaxReplicas(2)).Run().ExpectOn("web", "n1", 2)
}

func TestHostPortsFilter(t *testing.T) {
	r := New(t).Nodes(Node("n1"), Node("n2"), Node("n3")).
		Running(Task("old").HostPort("8080").On("n1")).
		Pending(Task("web").Replicas(3).HostPort("8080")).Run()
	r.ExpectCounts("web", map[string]int{"n2": 1, "n3": 1}).
		ExpectReason("web", "no suitable node (3 nodes host port 8080/tcp in use)")
	// Protocols are distinct ports; ingress ports do not conflict.
	New(t).Nodes(Node("n1")).Running(Task("dns").HostPort("53/udp").On("n1")).
		Pending(Task("web").HostPort("53")).Run().ExpectOn("web", "n1", 1)
	ingress := Task("lb").On("n1").Build()[0]
	ingress.Endpoint = &api.Endpoint{Ports: []api.PortConfig{{TargetPort: 80, PublishedPort: 80, PublishMode: api.PublishModeIngress}}}
	st := scheduler.State{Nodes: []*api.Node{Node("n1").Build()}, Tasks: []*api.Task{ingress}}
	if res := scheduler.New(scheduler.DefaultConfig()).Schedule(st, Task("web").HostPort("80").Build()); res.Placed != 1 {
		t.Errorf("ingress port conflicted: %s", res.Decisions[0].Reason)
	}
}

func TestResourcesFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		node   *NodeBuilder
		task   *TaskBuilder
		fits   bool
		reason string
	}{
		{"no reservation", Node("n"), Task("web"), true, ""},
		{"cpu fits exactly", Node("n").CPUs(2), Task("web").CPUs(2), true, ""},
		{"cpu", Node("n").CPUs(1.5), Task("web").CPUs(2), false, "no suitable node (1 node insufficient CPU (need 2, max free 1.5))"},
		{"memory fits", Node("n").Memory("4GiB"), Task("web").Memory("4GiB"), true, ""},
		{"memory", Node("n").Memory("1GiB"), Task("web").Memory("2GiB"), false, "no suitable node (1 node insufficient memory (need 2GiB, max free 1GiB))"},
		{"no description", Node("n").NoDescription(), Task("web").Memory("1MiB"), false, "no suitable node (1 node insufficient memory (need 1MiB, max free 0B))"},
		{"generic counted", Node("n").Generic("gpu", 2), Task("web").Generic("gpu", 2), true, ""},
		{"generic counted short", Node("n").Generic("gpu", 1), Task("web").Generic("gpu", 2), false, "no suitable node (1 node insufficient gpu (need 2, max free 1))"},
		{"generic absent", Node("n"), Task("web").Generic("fpga", 1), false, "no suitable node (1 node insufficient fpga (need 1, max free 0))"},
		{"generic named units count", Node("n").Named("gpu", "GPU-a", "GPU-b"), Task("web").Generic("gpu", 2), true, ""},
		{"generic named and counted", Node("n").Named("gpu", "GPU-a").Generic("gpu", 1), Task("web").Generic("gpu", 2), true, ""},
		{"named unit wanted", Node("n").Named("gpu", "GPU-a", "GPU-b"), Task("web").Named("gpu", "GPU-b"), true, ""},
		{"named unit missing", Node("n").Named("gpu", "GPU-a"), Task("web").Named("gpu", "GPU-b"), false, "no suitable node (1 node gpu GPU-b not free)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkFilter(t, tc.node, tc.task, scheduler.PluginResources, tc.fits, tc.reason, "")
		})
	}
}

// TestResourceAccounting checks that placements within one call, and tasks
// already running, are accounted for.
func TestResourceAccounting(t *testing.T) {
	t.Run("memory across a group", func(t *testing.T) {
		New(t).Nodes(Node("n1").Memory("4GiB"), Node("n2").Memory("2GiB")).
			Pending(Task("web").Replicas(7).Memory("1GiB")).Run().
			ExpectCounts("web", map[string]int{"n1": 4, "n2": 2}).
			ExpectReason("web", "no suitable node (2 nodes insufficient memory (need 1GiB, max free 0B))")
	})
	t.Run("across groups of one call", func(t *testing.T) {
		New(t).Nodes(Node("n1").CPUs(4)).
			Pending(Task("a").Replicas(3).CPUs(1), Task("b").Replicas(2).CPUs(1)).Run().
			ExpectPlaced("a", 3).ExpectPlaced("b", 1).
			ExpectReason("b", "no suitable node (1 node insufficient CPU (need 1, max free 0))")
	})
	t.Run("running tasks", func(t *testing.T) {
		New(t).Nodes(Node("n1").Memory("4GiB"), Node("n2").Memory("4GiB")).
			Running(Task("db").Memory("3GiB").On("n1")).
			Pending(Task("web").Replicas(5).Memory("1GiB")).Run().
			ExpectCounts("web", map[string]int{"n1": 1, "n2": 4})
	})
	t.Run("ended tasks free their resources", func(t *testing.T) {
		done := Task("db").Memory("4GiB").On("n1").Build()
		done[0].Status.State = api.TaskStateComplete
		stopping := Task("db").Memory("4GiB").FirstID(2).On("n1").Build()
		stopping[0].DesiredState = api.TaskStateShutdown
		st := scheduler.State{Nodes: []*api.Node{Node("n1").Memory("4GiB").Build()}, Tasks: append(done, stopping...)}
		if res := scheduler.New(scheduler.DefaultConfig()).Schedule(st, Task("web").Memory("4GiB").Build()); res.Placed != 1 {
			t.Error(res.Decisions[0].Reason)
		}
	})
	t.Run("generic units across a group", func(t *testing.T) {
		New(t).Nodes(Node("n1").Generic("gpu", 3), Node("n2").Named("gpu", "a", "b")).
			Pending(Task("ml").Replicas(3).Generic("gpu", 1)).
			Pending(Task("ml2").Replicas(2).Generic("gpu", 1)).Run().
			ExpectPlaced("ml", 3).ExpectPlaced("ml2", 2)
	})
	t.Run("named unit held once", func(t *testing.T) {
		New(t).Nodes(Node("n1").Named("gpu", "a", "b")).
			Running(Task("x").Named("gpu", "a").On("n1")).
			Pending(Task("y").Replicas(2).Named("gpu", "a"), Task("z").Named("gpu", "b")).Run().
			ExpectPlaced("y", 0).ExpectReason("y", "no suitable node (1 node gpu a not free)").
			ExpectPlaced("z", 1)
	})
}
