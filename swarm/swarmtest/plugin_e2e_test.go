package swarmtest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// zoneFilter is a program's own scheduler plugin: it places tasks only on
// nodes labelled zone=a. The built-in pipeline knows nothing of zones (no
// service here has a constraint), so where tasks land says which
// pipeline placed them.
type zoneFilter struct{}

func (zoneFilter) Name() string { return "ZoneA" }

func (zoneFilter) Filter(_ *scheduler.TaskInfo, n *scheduler.NodeInfo) *scheduler.Status {
	if n.Node.Spec.Labels["zone"] != "a" {
		return scheduler.Reject("not in zone a")
	}
	return nil
}

// A custom scheduler plugin, given to every manager through
// NodeConfig.Manager, decides placement on a cluster of three managers
// (InitNode, JoinNode, mutual TLS on loopback), and still decides once the
// leader is killed and another manager leads: a scale-up and a new service
// placed by the new leader land where the plugin says, following a change
// of labels made after the failover.
func TestCustomSchedulerPluginSurvivesLeaderLoss(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, Workers: 3, Configure: func(_ string, cfg *swarm.NodeConfig) {
		cfg.Manager.Scheduler.Register(zoneFilter{})
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	member := map[string]*swarmtest.Member{}
	for _, m := range c.Members {
		member[m.Name] = m
	}
	// Every manager says it runs the plugin, after the built-in filters.
	c.WaitFor("every manager to report the plugin", func() (bool, string) {
		nodes, err := c.Client(c.Alive()).ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		reported := 0
		for _, n := range nodes {
			if n.ManagerStatus == nil {
				continue
			}
			if !slices.Contains(n.ManagerStatus.SchedulerPlugins, api.SchedulerPlugin{Stage: api.SchedulerFilter, Name: "ZoneA"}) {
				return false, fmt.Sprintf("manager %s reports %v", n.ID, n.ManagerStatus.SchedulerPlugins)
			}
			reported++
		}
		return reported == 3, fmt.Sprintf("%d managers report", reported)
	})

	setZones := func(zones map[string]string) {
		t.Helper()
		cl := c.Client(c.Leader())
		for name, zone := range zones {
			if _, err := cl.EditNode(ctx, member[name].Node.NodeID(), func(s *api.NodeSpec) error {
				s.Labels = map[string]string{"zone": zone}
				return nil
			}); err != nil {
				t.Fatalf("label %s zone=%s: %v", name, zone, err)
			}
		}
	}
	// placedOn waits until the service runs replicas tasks, and checks
	// that each runs on one of the named members.
	placedOn := func(svc string, replicas int, names ...string) {
		t.Helper()
		allowed := map[string]string{}
		for _, n := range names {
			allowed[member[n].Node.NodeID()] = n
		}
		cl := c.Client(c.Leader())
		if err := cl.WaitConverged(ctx, svc); err != nil {
			t.Fatal(err)
		}
		tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: svc, DesiredStates: []api.TaskState{api.TaskStateRunning}})
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != replicas {
			t.Fatalf("service %s runs %d tasks, want %d", svc, len(tasks), replicas)
		}
		used := map[string]bool{}
		for _, tk := range tasks {
			name, ok := allowed[tk.NodeID]
			if !ok {
				t.Errorf("service %s: task %d placed on node %s, outside %v", svc, tk.Slot, tk.NodeID, names)
				continue
			}
			used[name] = true
		}
		if len(used) != len(names) {
			// The built-in spread still ranks the nodes the plugin keeps.
			t.Errorf("service %s uses %d of the %d nodes the plugin keeps", svc, len(used), len(names))
		}
	}

	setZones(map[string]string{"worker-1": "a", "worker-2": "a", "worker-3": "b"})
	cl := c.Client(c.Leader())
	if _, err := cl.CreateService(ctx, spec("web", 4)); err != nil {
		t.Fatal(err)
	}
	placedOn("web", 4, "worker-1", "worker-2")

	lead := c.Leader()
	c.Kill(lead)
	next := c.Leader()
	if next == lead {
		t.Fatal("the killed manager still leads")
	}
	cl = c.Client(next)
	if _, err := cl.ScaleService(ctx, "web", 10); err != nil {
		t.Fatal(err)
	}
	placedOn("web", 10, "worker-1", "worker-2")

	// The zones move; the new leader's plugin follows them.
	setZones(map[string]string{"worker-1": "b", "worker-3": "a"})
	if _, err := cl.CreateService(ctx, spec("api", 6)); err != nil {
		t.Fatal(err)
	}
	placedOn("api", 6, "worker-2", "worker-3")
}
