package orchestrator

import (
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

func replicatedJob(name string, maxConcurrent, total int64) *api.Service {
	s := replicated(name, 0)
	s.Spec.Mode = api.ServiceMode{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: maxConcurrent, TotalCompletions: total}}
	zero := time.Duration(0)
	s.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Condition: api.RestartConditionOnFailure, Delay: &zero}
	return s
}

func globalJob(name string) *api.Service {
	s := replicatedJob(name, 0, 0)
	s.Spec.Mode = api.ServiceMode{GlobalJob: &api.GlobalJob{}}
	return s
}

// activeJobTasks counts a job's tasks that run or may run: wanted and not
// ended, or still running although no longer wanted.
func (s *sim) activeJobTasks() int {
	n := 0
	for _, t := range s.tasks {
		if (runnable(t) && !t.Status.State.Terminal()) || alive(t) {
			n++
		}
	}
	return n
}

func TestReplicatedJobCompletions(t *testing.T) {
	s := newSim(t, replicatedJob("batch", 3, 10), readyNode("n1"), readyNode("n2"))
	// Each task runs for two rounds, then completes; the first tasks of
	// slots 2 and 7 fail instead.
	failOnce := map[uint64]bool{2: true, 7: true}
	s.exit = func(tk *api.Task) api.TaskState {
		if s.now.Sub(startedAt(tk)) < 2*time.Second {
			return 0
		}
		if failOnce[tk.Slot] {
			delete(failOnce, tk.Slot)
			return api.TaskStateFailed
		}
		return api.TaskStateComplete
	}
	completedIDs := map[string]bool{}
	maxRunning := 0
	for i := 0; i < 100; i++ {
		s.step()
		if n := s.activeJobTasks(); n > 3 {
			t.Fatalf("round %d: %d tasks active, more than MaxConcurrent 3", i, n)
		}
		s.work()
		maxRunning = max(maxRunning, s.processes())
		for id, tk := range s.tasks {
			if tk.Status.State == api.TaskStateComplete {
				completedIDs[id] = true
			}
		}
		s.now = s.now.Add(time.Second)
	}
	if maxRunning != 3 {
		t.Fatalf("at most %d tasks ran at once, want MaxConcurrent 3 used", maxRunning)
	}
	complete, failed := 0, 0
	slots := map[uint64]bool{}
	for _, tk := range s.tasks {
		switch tk.Status.State {
		case api.TaskStateComplete:
			complete++
			if slots[tk.Slot] {
				t.Fatalf("slot %d completed twice: a completed task was run again", tk.Slot)
			}
			slots[tk.Slot] = true
		case api.TaskStateFailed:
			failed++
		default:
			t.Fatalf("task %s of slot %d is %s after the job is done", tk.ID, tk.Slot, tk.Status.State)
		}
	}
	if complete != 10 || len(completedIDs) != 10 || failed != 2 {
		t.Fatalf("%d complete (%d ever), %d failed; want exactly 10 completions and the 2 failures retried", complete, len(completedIDs), failed)
	}
	if ok, why := Converged(s.svc, s.list(), s.nodeList()); !ok {
		t.Fatalf("finished job not converged: %s", why)
	}
	p := Measure(s.svc, s.list(), s.nodeList())
	if p.Completed != 10 || p.Desired != 0 || p.Running != 0 || p.Total != 10 {
		t.Fatalf("progress %+v", p)
	}
	if !s.step().Empty() {
		t.Fatal("a finished job still plans work")
	}
}

func TestReplicatedJobRerunIsANewIteration(t *testing.T) {
	s := newSim(t, replicatedJob("batch", 2, 4), readyNode("n1"))
	s.exit = func(*api.Task) api.TaskState { return api.TaskStateComplete }
	for i := 0; i < 10; i++ {
		s.step()
		s.work()
	}
	if p := Measure(s.svc, s.list(), nil); p.Completed != 4 {
		t.Fatalf("first run: %+v", p)
	}
	first := s.svc.SpecVersion
	// Re-run: a forced update.
	s.svc.Spec.TaskTemplate.ForceUpdate++
	s.svc.SpecVersion++
	p := s.step()
	if len(p.Create) != 2 {
		t.Fatalf("re-run created %d tasks, want MaxConcurrent 2 of the new iteration", len(p.Create))
	}
	for _, tk := range p.Create {
		if tk.JobIteration != s.svc.SpecVersion {
			t.Fatalf("new task iteration %d, want %d", tk.JobIteration, s.svc.SpecVersion)
		}
	}
	for i := 0; i < 10; i++ {
		s.step()
		s.work()
	}
	old, cur := 0, 0
	for _, tk := range s.tasks {
		switch tk.JobIteration {
		case first:
			old++
			if tk.DesiredState != api.TaskStateShutdown || tk.Status.State != api.TaskStateComplete {
				t.Fatalf("old iteration task: desired %s state %s, want history (shutdown/complete)", tk.DesiredState, tk.Status.State)
			}
		case s.svc.SpecVersion:
			cur++
		}
	}
	if old != 4 || cur != 4 {
		t.Fatalf("%d old and %d current tasks, want 4 of each (old ones kept as history)", old, cur)
	}
	if pr := Measure(s.svc, s.list(), nil); pr.Completed != 4 || pr.Desired != 0 {
		t.Fatalf("second run: %+v", pr)
	}
}

func TestReplicatedJobRerunRemovesRunningTasks(t *testing.T) {
	s := newSim(t, replicatedJob("batch", 2, 4), readyNode("n1"))
	s.step()
	s.work()
	s.svc.SpecVersion++
	s.svc.Spec.TaskTemplate.ForceUpdate++
	s.step()
	for _, tk := range s.tasks {
		if tk.JobIteration != s.svc.SpecVersion && tk.DesiredState != api.TaskStateRemove {
			t.Fatalf("running task of the old iteration: desired %s, want remove", tk.DesiredState)
		}
	}
	s.work()
	s.step()
	for _, tk := range s.tasks {
		if tk.JobIteration != s.svc.SpecVersion {
			t.Fatalf("removed old-iteration task %s was not deleted once stopped", tk.ID)
		}
	}
}

func TestJobFailedTaskRespectsRestartPolicy(t *testing.T) {
	s := newSim(t, replicatedJob("batch", 1, 1), readyNode("n1"))
	s.svc.Spec.TaskTemplate.RestartPolicy.Condition = api.RestartConditionNone
	s.exit = func(*api.Task) api.TaskState { return api.TaskStateFailed }
	for i := 0; i < 10; i++ {
		s.step()
		s.work()
	}
	if len(s.tasks) != 1 {
		t.Fatalf("%d tasks: a failed job task with condition none must not be retried", len(s.tasks))
	}
	if ok, _ := Converged(s.svc, s.list(), nil); ok {
		t.Fatal("a job whose only task failed reports converged")
	}
}

func TestGlobalJobOncePerNode(t *testing.T) {
	s := newSim(t, globalJob("setup"), readyNode("n1"), readyNode("n2"))
	failed := false
	s.exit = func(tk *api.Task) api.TaskState {
		if tk.NodeID == "n2" && !failed {
			failed = true
			return api.TaskStateFailed
		}
		return api.TaskStateComplete
	}
	for i := 0; i < 10; i++ {
		s.step()
		s.work()
	}
	if ok, why := Converged(s.svc, s.list(), s.nodeList()); !ok {
		t.Fatalf("not done: %s", why)
	}
	s.nodes["n3"] = readyNode("n3")
	s.nodes["n4"] = readyNode("n4")
	s.nodes["n4"].Spec.Availability = api.NodeAvailabilityPause
	for i := 0; i < 10; i++ {
		s.step()
		s.work()
	}
	per := map[string]int{}
	for _, tk := range s.tasks {
		if tk.Status.State == api.TaskStateComplete {
			per[tk.NodeID]++
		}
	}
	if per["n1"] != 1 || per["n2"] != 1 || per["n3"] != 1 || per["n4"] != 0 {
		t.Fatalf("completions per node %v, want one on n1, n2 (after a retry), n3 (joined later), none on paused n4", per)
	}
	if ok, why := Converged(s.svc, s.list(), s.nodeList()); !ok {
		t.Fatalf("not done: %s", why)
	}
}
