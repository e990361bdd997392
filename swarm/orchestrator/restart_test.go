package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// failCurrent fails the current task of a slot at the sim's time and
// reconciles once; it reports whether a successor was made.
func failCurrent(t *testing.T, s *sim, slot string) bool {
	t.Helper()
	cur := s.wanted()[slot]
	if len(cur) == 0 {
		t.Fatalf("slot %s has no current task", slot)
	}
	s.setState(cur[len(cur)-1], api.TaskStateFailed)
	restarted := len(s.step().Create) == 1
	s.work()
	s.settle()
	s.work()
	return restarted
}

func TestRestartMaxAttemptsExactBeyondHistoryRetention(t *testing.T) {
	zero := time.Duration(0)
	s := newSim(t, replicated("web", 1), readyNode("n1"))
	s.retention = 2 // far fewer finished tasks kept than attempts allowed
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Condition: api.RestartConditionOnFailure, Delay: &zero, MaxAttempts: 7}
	s.converge()
	restarts := 0
	for i := 0; i < 12; i++ {
		s.now = s.now.Add(time.Second)
		if failCurrent(t, s, "1") {
			restarts++
		}
		if n := len(s.tasks); n > 1+2 {
			t.Fatalf("slot holds %d tasks, more than the current one and 2 of history", n)
		}
	}
	if restarts != 7 {
		t.Fatalf("restarted %d times, want exactly MaxAttempts=7 although the slot keeps 2 finished tasks", restarts)
	}
	cur := s.wanted()["1"][0]
	if cur.RestartCount != 7 || cur.Status.State != api.TaskStateFailed {
		t.Fatalf("last task: restart count %d state %s; want 7, failed (kept in its slot)", cur.RestartCount, cur.Status.State)
	}
}

func TestRestartWindowSlides(t *testing.T) {
	zero := time.Duration(0)
	s := newSim(t, replicated("web", 1), readyNode("n1"))
	s.retention = 1
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Condition: api.RestartConditionAny, Delay: &zero, MaxAttempts: 2, Window: time.Minute}
	s.converge()
	for _, step := range []struct {
		at      time.Duration
		restart bool
	}{
		{0, true},                 // attempts in the minute before: none
		{30 * time.Second, true},  // 1 (at 0s)
		{70 * time.Second, true},  // 1 (at 30s; the one at 0s left the window)
		{80 * time.Second, false}, // 2 (30s, 70s): the limit
	} {
		s.now = t0.Add(step.at)
		if got := failCurrent(t, s, "1"); got != step.restart {
			t.Fatalf("failure at +%v: restarted = %v, want %v", step.at, got, step.restart)
		}
	}
	// The refused task keeps its slot and is not restarted later, when
	// the window has moved on: the policy decided when it ended.
	s.now = t0.Add(10 * time.Minute)
	s.settle()
	if w := s.wanted()["1"]; len(w) != 1 || w[0].Status.State != api.TaskStateFailed {
		t.Fatalf("slot 1 after the window passed: %d tasks wanted, want the failed one alone", len(w))
	}
	if h := s.wanted()["1"][0].RestartHistory; len(h) != 2 {
		t.Fatalf("restart history %v: want the 2 most recent restarts (MaxAttempts)", h)
	}
}

func TestRestartCountStartsAfreshAfterUpdate(t *testing.T) {
	zero := time.Duration(0)
	s := newSim(t, replicated("web", 1), readyNode("n1"))
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero, MaxAttempts: 2}
	s.converge()
	failCurrent(t, s, "1")
	failCurrent(t, s, "1")
	if failCurrent(t, s, "1") {
		t.Fatal("restarted beyond MaxAttempts")
	}
	// A new template: past failures do not count against it.
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionContinue})
	if st := rollout(t, s, 100, func(string) {}); st != api.UpdateStateCompleted {
		t.Fatalf("update ended %q", st)
	}
	if cur := s.wanted()["1"]; cur[len(cur)-1].RestartCount != 0 {
		t.Fatalf("updated task restart count %d, want 0", cur[len(cur)-1].RestartCount)
	}
	if !failCurrent(t, s, "1") || !failCurrent(t, s, "1") || failCurrent(t, s, "1") {
		t.Fatal("the new template did not get its own 2 attempts")
	}
}

func TestRestartKeepsSlotAndOrphansDoNotCount(t *testing.T) {
	zero := time.Duration(0)
	s := newSim(t, replicated("web", 3), readyNode("n1"), readyNode("n2"))
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero, MaxAttempts: 1}
	s.converge()
	lost := s.wanted()["2"][0]
	s.setState(lost, api.TaskStateOrphaned)
	p := s.step()
	if len(p.Create) != 1 || p.Create[0].Slot != 2 || p.Create[0].RestartCount != 0 {
		t.Fatalf("orphaned task: created %+v, want one successor in slot 2 with no attempt counted", p.Create)
	}
	s.converge()
	if !failCurrent(t, s, "2") {
		t.Fatal("a failure after a lost node was refused: the orphan replacement used the only attempt")
	}
	for _, tk := range s.tasks {
		if tk.Slot < 1 || tk.Slot > 3 {
			t.Fatalf("task %s in slot %d: restarts reuse their slot", tk.ID, tk.Slot)
		}
	}
}

func TestRestartDelayIsStateNotTimer(t *testing.T) {
	// The wait is in the task (StartAfter): a "new leader" reconciling
	// from the same state, later, promotes at the same moment.
	delay := 3 * time.Second
	s := newSim(t, replicated("web", 1), readyNode("n1"))
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &delay}
	s.converge()
	s.setState(s.wanted()["1"][0], api.TaskStateFailed)
	p := s.step()
	nt := p.Create[0]
	in := s.input()
	in.Now = t0.Add(2 * time.Second)
	if q := Reconcile(in); len(q.Update) != 0 || !q.WakeAt.Equal(t0.Add(delay)) {
		t.Fatalf("before the delay: %d updates, wake %v; want none, wake at %v", len(q.Update), q.WakeAt, t0.Add(delay))
	}
	in.Now = t0.Add(delay)
	q := Reconcile(in)
	if len(q.Update) != 1 || q.Update[0].ID != nt.ID || q.Update[0].DesiredState != api.TaskStateRunning {
		t.Fatalf("at the delay: plan %+v, want the successor promoted to running", q.Update)
	}
}

func TestHistoryRetentionPerSlot(t *testing.T) {
	zero := time.Duration(0)
	s := newSim(t, replicated("web", 2), readyNode("n1"))
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero}
	s.converge()
	for i := 0; i < 8; i++ {
		s.now = s.now.Add(time.Second)
		failCurrent(t, s, "1")
		failCurrent(t, s, "2")
	}
	per := map[uint64]int{}
	for _, tk := range s.tasks {
		per[tk.Slot]++
	}
	if fmt.Sprint(per) != "map[1:6 2:6]" {
		t.Fatalf("tasks per slot %v, want 1 current + 5 finished in each", per)
	}
}
