package swarmtest_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// dryRunCluster is one manager and three workers of different sizes and
// zones: manager-1 (4 CPUs, zone a), worker-1 (1 CPU, zone a), worker-2
// (2 CPUs, zone b), worker-3 (4 CPUs, no zone; gpu=2).
func dryRunCluster(t *testing.T) (*swarmtest.Cluster, *swarm.Client, context.Context) {
	t.Helper()
	cpus := map[string]int64{"manager-1": 4, "worker-1": 1, "worker-2": 2, "worker-3": 4}
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 3, Executor: func(name string) executor.Executor {
		r := api.Resources{NanoCPUs: cpus[name] * 1e9, MemoryBytes: 8 << 30}
		if name == "worker-3" {
			r.GenericResources = []api.GenericResource{{DiscreteResourceSpec: &api.DiscreteGenericResource{Kind: "gpu", Value: 2}}}
		}
		return fake.New(fake.Config{Hostname: name, Resources: r})
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cl := c.Client(c.Leader())
	zones := map[string]string{"manager-1": "a", "worker-1": "a", "worker-2": "b"}
	for host, zone := range zones {
		n, err := cl.GetNode(ctx, host)
		if err != nil {
			t.Fatal(err)
		}
		spec := n.Spec
		spec.Labels = map[string]string{"zone": zone}
		if _, err := cl.UpdateNode(ctx, n.ID, n.Meta.Version, spec); err != nil {
			t.Fatal(err)
		}
	}
	return c, cl, ctx
}

// placement counts where a service's wanted tasks are: by node hostname,
// "" for those that fit nowhere (pending).
type placement map[string]int

// planned is where a plan says the service's tasks will be once it settles:
// its creations and replacements, and the tasks it keeps (read from the
// cluster before the change).
func planned(p *control.ServicePlan, before placement) placement {
	out := maps.Clone(before)
	if out == nil {
		out = placement{}
	}
	for _, t := range append(slices.Clone(p.Replace), p.Remove...) {
		out[t.OldNodeID]--
	}
	for _, t := range append(slices.Clone(p.Create), p.Replace...) {
		out[t.NodeHostname]++
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// actual reads where the service's wanted tasks are, by hostname ("" for
// pending ones, with the reasons they give), keyed by node ID in byID.
func actual(ctx context.Context, cl *swarm.Client, service string) (placement, map[string]int, []string, error) {
	tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: service, DesiredStates: []api.TaskState{api.TaskStateRunning}})
	if err != nil {
		return nil, nil, nil, err
	}
	nodes, err := cl.ListNodes(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	host := map[string]string{}
	for _, n := range nodes {
		host[n.ID] = n.Description.Hostname
	}
	out, byID := placement{}, map[string]int{}
	var reasons []string
	for _, t := range tasks {
		if t.Status.State == api.TaskStatePending || t.Status.State == api.TaskStateNew {
			out[""]++
			reasons = append(reasons, t.Status.Message)
			continue
		}
		out[host[t.NodeID]]++
		byID[t.NodeID]++
	}
	return out, byID, reasons, nil
}

func procSpec(name string, replicas int64) api.ServiceSpec {
	return api.ServiceSpec{
		Annotations:  api.Annotations{Name: name},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: replicas}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
	}
}

func withPlacement(s api.ServiceSpec, f func(*api.TaskSpec)) api.ServiceSpec {
	f(&s.TaskTemplate)
	return s
}

func cpus(n float64) *api.ResourceRequirements {
	return &api.ResourceRequirements{Reservations: &api.Resources{NanoCPUs: int64(n * 1e9)}}
}

// A dry run's placement is the placement that follows when the same spec
// is written: for new services (spread over a label, constraints,
// reservations that leave some tasks unplaced, generic resources, a global
// service) and for updates (a scale-up, a constraint that moves tasks) of
// services that already run; and nothing changes in the store meanwhile.
func TestDryRunPlacementMatchesApply(t *testing.T) {
	c, cl, ctx := dryRunCluster(t)
	// A service already holding CPU on the workers, so placements
	// account for others' reservations.
	base := procSpec("base", 3)
	base.TaskTemplate.Resources = cpus(1)
	base.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.role==worker"}}
	if _, err := cl.CreateService(ctx, base); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConverged(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	type step struct {
		name   string
		create bool
		spec   api.ServiceSpec
	}
	cases := []step{
		{name: "spread over zones", create: true, spec: withPlacement(procSpec("spread", 7), func(t *api.TaskSpec) {
			t.Placement = &api.Placement{Preferences: []api.PlacementPreference{{Spread: &api.SpreadOver{SpreadDescriptor: "node.labels.zone"}}}}
		})},
		{name: "scale up the spread", spec: withPlacement(procSpec("spread", 10), func(t *api.TaskSpec) {
			t.Placement = &api.Placement{Preferences: []api.PlacementPreference{{Spread: &api.SpreadOver{SpreadDescriptor: "node.labels.zone"}}}}
		})},
		{name: "constraint moves tasks", spec: withPlacement(procSpec("spread", 4), func(t *api.TaskSpec) {
			t.Placement = &api.Placement{Constraints: []string{"node.labels.zone==a"}}
		})},
		{name: "reservations some fit nowhere", create: true, spec: withPlacement(procSpec("big", 5), func(t *api.TaskSpec) {
			t.Resources = cpus(1.5)
		})},
		{name: "generic resource and max replicas", create: true, spec: withPlacement(procSpec("gpu", 3), func(t *api.TaskSpec) {
			t.Resources = &api.ResourceRequirements{Reservations: &api.Resources{GenericResources: []api.GenericResource{{DiscreteResourceSpec: &api.DiscreteGenericResource{Kind: "gpu", Value: 1}}}}}
			t.Placement = &api.Placement{MaxReplicas: 1}
		})},
		{name: "global on zone a", create: true, spec: func() api.ServiceSpec {
			s := procSpec("agent", 0)
			s.Mode = api.ServiceMode{Global: &api.GlobalService{}}
			s.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.labels.zone==a"}}
			return s
		}()},
	}
	for _, tc := range cases {
		var ref string
		var version uint64
		var cur placement
		if !tc.create {
			ref = tc.spec.Name
			var err error
			if cur, _, _, err = actual(ctx, cl, ref); err != nil {
				t.Fatal(err)
			}
			svc, err := cl.GetService(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			version = svc.Meta.Version
		}
		plan, err := cl.PlanService(ctx, ref, tc.spec)
		if err != nil {
			t.Fatalf("%s: plan: %v", tc.name, err)
		}
		// The dry run wrote nothing: no service made, none changed (the
		// controlapi tests check the whole store's index, with nothing
		// else running).
		svc, err := cl.GetService(ctx, tc.spec.Name)
		switch {
		case tc.create && err == nil:
			t.Fatalf("%s: the dry run created the service", tc.name)
		case !tc.create && (err != nil || svc.Meta.Version != version):
			t.Fatalf("%s: the dry run changed the service: %v", tc.name, err)
		}
		// Old node IDs → hostnames, so the plan reads as actual does.
		nodes, err := cl.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			for _, ts := range [][]control.PlannedTask{plan.Replace, plan.Remove} {
				for i := range ts {
					if ts[i].OldNodeID == n.ID {
						ts[i].OldNodeID = n.Description.Hostname
					}
				}
			}
		}
		want := planned(plan, cur)
		var reasons []string
		for _, p := range append(slices.Clone(plan.Create), plan.Replace...) {
			if p.NodeID == "" {
				reasons = append(reasons, p.Reason)
			}
		}
		if tc.create {
			if _, err := cl.CreateService(ctx, tc.spec); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		} else {
			svc, err := cl.GetService(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cl.UpdateService(ctx, svc.ID, svc.Meta.Version, tc.spec); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		var got placement
		var gotReasons []string
		c.WaitFor(tc.name+": the placement the plan foresaw", func() (bool, string) {
			p, _, rs, err := actual(ctx, cl, tc.spec.Name)
			if err != nil {
				return false, err.Error()
			}
			got, gotReasons = p, rs
			if !maps.Equal(got, want) {
				return false, fmt.Sprintf("placed %v, planned %v", got, want)
			}
			// Unplaced tasks wait with the reason the plan gave.
			slices.Sort(reasons)
			slices.Sort(gotReasons)
			return slices.Equal(reasons, gotReasons), fmt.Sprintf("reasons %q, planned %q", gotReasons, reasons)
		})
		if want[""] > 0 && plan.Unplaced != want[""] {
			t.Errorf("%s: plan counts %d unplaced, lists %d", tc.name, plan.Unplaced, want[""])
		}
		t.Logf("%s: %v (plan: %d create, %d replace, %d remove, %d unchanged)", tc.name, got, len(plan.Create), len(plan.Replace), len(plan.Remove), plan.Unchanged)
	}
}

// A dry run refuses what the write would refuse, naming the field, and a
// plan for an unknown service is not found.
func TestDryRunRefusesBadInput(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := c.Client(c.Leader())
	bad := procSpec("bad", -1)
	if _, err := cl.PlanService(ctx, "", bad); err == nil {
		t.Fatal("a negative replica count planned")
	}
	if _, err := cl.PlanService(ctx, "nosuch", procSpec("nosuch", 1)); err == nil {
		t.Fatal("an update of an unknown service planned")
	}
	if _, err := cl.CreateService(ctx, procSpec("job", 1)); err != nil {
		t.Fatal(err)
	}
	g := procSpec("job", 0)
	g.Mode = api.ServiceMode{Global: &api.GlobalService{}}
	if _, err := cl.PlanService(ctx, "job", g); err == nil {
		t.Fatal("a mode change planned")
	}
}
