package scheduler_test

import (
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm/api"
)

// benchNodes returns n READY, active nodes with 16 CPUs and 64GiB. When
// labelled, 90% have node.labels.zone (z0..z2) and 80% node.labels.type=worker.
func benchNodes(n int, labelled bool) []*api.Node {
	nodes := make([]*api.Node, n)
	for i := range nodes {
		nd := &api.Node{
			ID:   fmt.Sprintf("node-%06d", i),
			Spec: api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
			Description: &api.NodeDescription{
				Hostname:  fmt.Sprintf("host-%06d", i),
				Platform:  api.Platform{OS: "linux", Architecture: "amd64"},
				Resources: api.Resources{NanoCPUs: 16e9, MemoryBytes: 64 << 30},
				Executor:  "process",
			},
			Status: api.NodeStatus{State: api.NodeStateReady},
		}
		if labelled {
			nd.Spec.Labels = map[string]string{}
			if i%10 != 9 {
				nd.Spec.Labels["zone"] = fmt.Sprintf("z%d", i%3)
			}
			if i%5 != 4 {
				nd.Spec.Labels["type"] = "worker"
			}
		}
		nodes[i] = nd
	}
	return nodes
}

// benchTasks returns n pending tasks of `services` services (one group each)
// reserving 0.01 CPU and 32MiB.
func benchTasks(n, services int, constrained bool) []*api.Task {
	tasks := make([]*api.Task, n)
	for i := range tasks {
		svc := fmt.Sprintf("svc-%d", i%services)
		t := &api.Task{
			ID:           fmt.Sprintf("task-%07d", i),
			ServiceID:    svc,
			SpecVersion:  1,
			DesiredState: api.TaskStateRunning,
			Status:       api.TaskStatus{State: api.TaskStatePending},
			Spec: api.TaskSpec{
				Process:   &api.ProcessSpec{Command: []string{"sleep", "1000"}},
				Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCPUs: 1e7, MemoryBytes: 32 << 20}},
			},
		}
		if constrained {
			t.Spec.Placement = &api.Placement{
				Constraints: []string{"node.labels.type==worker", "node.platform.os==linux"},
				Preferences: []api.PlacementPreference{{Spread: &api.SpreadOver{SpreadDescriptor: "node.labels.zone"}}},
			}
		}
		tasks[i] = t
	}
	return tasks
}

func benchSchedule(b *testing.B, nodes, tasks, services int, constrained bool) {
	st := scheduler.State{Nodes: benchNodes(nodes, constrained)}
	pending := benchTasks(tasks, services, constrained)
	s := scheduler.New(scheduler.DefaultConfig())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res := s.Schedule(st, pending)
		if res.Placed != tasks {
			b.Fatalf("placed %d of %d: %s", res.Placed, tasks, res.Decisions[len(res.Decisions)-1].Reason)
		}
	}
	b.ReportMetric(float64(tasks)*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

func BenchmarkSchedule1kNodes1kTasks(b *testing.B)   { benchSchedule(b, 1_000, 1_000, 1, false) }
func BenchmarkSchedule1kNodes10kTasks(b *testing.B)  { benchSchedule(b, 1_000, 10_000, 1, false) }
func BenchmarkSchedule1kNodes100kTasks(b *testing.B) { benchSchedule(b, 1_000, 100_000, 1, false) }
func BenchmarkSchedule100kNodes100kTasks(b *testing.B) {
	benchSchedule(b, 100_000, 100_000, 1, false)
}
func BenchmarkSchedule10kNodes100kTasksConstraintSpread(b *testing.B) {
	benchSchedule(b, 10_000, 100_000, 1, true)
}

// Not in the list: the cost of many small groups (100 services of
// 100 tasks, and 10k tasks each its own service).
func BenchmarkSchedule1kNodes10kTasks100Services(b *testing.B) {
	benchSchedule(b, 1_000, 10_000, 100, false)
}
func BenchmarkSchedule1kNodes10kTasksUngrouped(b *testing.B) {
	benchSchedule(b, 1_000, 10_000, 10_000, false)
}
