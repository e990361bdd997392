package orchestrator_test

import (
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/orchestrator"
)

func dryNodes(n int) []*api.Node {
	var out []*api.Node
	for i := 0; i < n; i++ {
		id := string(rune('a' + i))
		out = append(out, &api.Node{ID: id, Spec: api.NodeSpec{Availability: api.NodeAvailabilityActive},
			Status:      api.NodeStatus{State: api.NodeStateReady},
			Description: &api.NodeDescription{Hostname: id, Resources: api.Resources{NanoCPUs: 4e9, MemoryBytes: 8 << 30}}})
	}
	return out
}

func drySvc(mode api.ServiceMode) *api.Service {
	s := &api.Service{ID: "svc", SpecVersion: 1, Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "s"}, Mode: mode,
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"/a"}}}}}
	s.Spec.ApplyDefaults()
	return s
}

// Simulate settles jobs too: a replicated job's completions all run (its
// slots created), a global job gets a task per node; a rolling update of
// many slots stops at MaxRounds and says so, with the replacements made
// so far. Without the bound the same update replaces every slot.
func TestSimulateJobsAndBound(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	run := orchestrator.Simulate(orchestrator.DryRunInput{Service: drySvc(api.ServiceMode{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}),
		Nodes: dryNodes(2), RetentionLimit: 5, Now: now})
	if run.Truncated || len(run.Create) != 5 {
		t.Errorf("replicated job: %d created, truncated %v", len(run.Create), run.Truncated)
	}
	for _, c := range run.Create {
		if c.New == nil || c.New.NodeID == "" {
			t.Errorf("replicated job slot %d not placed: %+v", c.Slot, c)
		}
	}
	run = orchestrator.Simulate(orchestrator.DryRunInput{Service: drySvc(api.ServiceMode{GlobalJob: &api.GlobalJob{}}),
		Nodes: dryNodes(3), RetentionLimit: 5, Now: now})
	if run.Truncated || len(run.Create) != 3 {
		t.Errorf("global job: %d created, truncated %v", len(run.Create), run.Truncated)
	}

	// 50 running tasks updated one at a time: far more than 5 rounds.
	svc := drySvc(api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 50}})
	var tasks []*api.Task
	for i := 1; i <= 50; i++ {
		tasks = append(tasks, &api.Task{ID: api.NewID(), ServiceID: svc.ID, Slot: uint64(i), NodeID: "a", Spec: svc.Spec.TaskTemplate.Copy(),
			SpecVersion: 1, DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: api.TaskStateRunning, Timestamp: now}})
	}
	svc.SpecVersion = 2
	svc.Spec.TaskTemplate.Process.Command = []string{"/b"}
	run = orchestrator.Simulate(orchestrator.DryRunInput{Service: svc, Tasks: tasks, Nodes: dryNodes(2), RetentionLimit: 5, Now: now, MaxRounds: 5})
	if !run.Truncated || run.Rounds != 5 || len(run.Replace) == 0 || len(run.Replace) == 50 {
		t.Errorf("bounded run: rounds %d, truncated %v, %d replaced", run.Rounds, run.Truncated, len(run.Replace))
	}
	run = orchestrator.Simulate(orchestrator.DryRunInput{Service: svc, Tasks: tasks, Nodes: dryNodes(2), RetentionLimit: 5, Now: now})
	if run.Truncated || len(run.Replace) != 50 || run.Service.UpdateStatus.GetState() != api.UpdateStateCompleted {
		t.Errorf("unbounded update: %d replaced, truncated %v, state %q", len(run.Replace), run.Truncated, run.Service.UpdateStatus.GetState())
	}
}
