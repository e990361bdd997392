package orchestrator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// rollout drives an update to its end, one reconciliation and one round of
// the workers per step, advancing the clock to the plan's wake time (or by
// a second), and calls check after every reconciliation and every work
// round. It returns the final update state.
func rollout(t *testing.T, s *sim, steps int, check func(phase string)) string {
	t.Helper()
	for i := 0; i < steps; i++ {
		switch s.svc.UpdateStatus.GetState() {
		case api.UpdateStateCompleted, api.UpdateStateRollbackCompleted, api.UpdateStatePaused, api.UpdateStateRollbackPaused:
			return s.svc.UpdateStatus.GetState()
		}
		p := s.step()
		check(fmt.Sprintf("step %d after reconcile", i))
		s.work()
		check(fmt.Sprintf("step %d after work", i))
		if !p.WakeAt.IsZero() && p.WakeAt.After(s.now) {
			s.now = p.WakeAt
		} else {
			s.now = s.now.Add(time.Second)
		}
	}
	return s.svc.UpdateStatus.GetState()
}

func withCheck(svc *api.Service) *api.Service {
	svc.Spec.TaskTemplate.HealthCheck = &api.HealthConfig{Test: []string{"CMD", "probe"}, Interval: time.Second, Retries: 3}
	return svc
}

func TestStopFirstNeverExceedsDesired(t *testing.T) {
	for _, par := range []uint64{1, 2, 0} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			s := newSim(t, withCheck(replicated("web", 5)), readyNode("n1"), readyNode("n2"))
			s.converge()
			// New tasks take two work rounds to become healthy.
			s.health = slowHealth(s, 2*time.Second)
			update(s, api.UpdateConfig{Parallelism: par, Delay: 2 * time.Second, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause})
			state := rollout(t, s, 300, func(phase string) {
				if n := s.processes(); n > 5 {
					t.Fatalf("%s: %d processes run, stop-first must never exceed the 5 desired", phase, n)
				}
			})
			if state != api.UpdateStateCompleted {
				t.Fatalf("update ended %q", state)
			}
			for slot, ts := range s.wanted() {
				if len(ts) != 1 || !UpToDate(ts[0], s.svc) || !ready(ts[0]) {
					t.Fatalf("slot %s: %d wanted tasks, want one up-to-date healthy", slot, len(ts))
				}
			}
		})
	}
}

func TestStartFirstNeverBelowDesired(t *testing.T) {
	for _, par := range []uint64{1, 3, 0} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) {
			s := newSim(t, withCheck(replicated("web", 5)), readyNode("n1"), readyNode("n2"))
			s.converge()
			s.health = slowHealth(s, 3*time.Second)
			update(s, api.UpdateConfig{Parallelism: par, Order: api.UpdateOrderStartFirst, FailureAction: api.UpdateFailureActionPause})
			maxProcs := 0
			state := rollout(t, s, 300, func(phase string) {
				if n := s.up(); n < 5 {
					t.Fatalf("%s: %d tasks up (running and healthy), start-first must never drop below the 5 desired", phase, n)
				}
				maxProcs = max(maxProcs, s.processes())
			})
			if state != api.UpdateStateCompleted {
				t.Fatalf("update ended %q", state)
			}
			limit := 5 + int(par)
			if par == 0 {
				limit = 10
			}
			if maxProcs > limit {
				t.Fatalf("%d processes at once, more than desired + parallelism (%d)", maxProcs, limit)
			}
		})
	}
}

// slowHealth makes a task healthy d after it started running.
func slowHealth(s *sim, d time.Duration) func(*api.Task) string {
	return func(t *api.Task) string {
		if t.Status.Health == api.HealthHealthy || s.now.Sub(startedAt(t)) >= d {
			return api.HealthHealthy
		}
		return api.HealthStarting
	}
}

func TestHealthGatedRolloutNeverHealthyStopsAfterFirstBatch(t *testing.T) {
	s := newSim(t, withCheck(replicated("web", 6)), readyNode("n1"))
	s.converge()
	s.health = func(t *api.Task) string {
		if UpToDate(t, s.svc) {
			return api.HealthStarting // the new version never passes its check
		}
		return api.HealthHealthy
	}
	update(s, api.UpdateConfig{Parallelism: 2, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause, Monitor: 5 * time.Second})
	for i := 0; i < 100; i++ {
		s.step()
		s.work()
		s.now = s.now.Add(10 * time.Second)
	}
	created := 0
	for _, tk := range s.tasks {
		if UpToDate(tk, s.svc) {
			created++
		}
	}
	if created != 2 {
		t.Fatalf("%d tasks of the new version made, want 2: only the first batch while its tasks never become healthy", created)
	}
	if st := s.svc.UpdateStatus.GetState(); st != api.UpdateStateUpdating {
		t.Fatalf("update state %q, want still updating", st)
	}
	if ok, why := Converged(s.svc, s.list(), s.nodeList()); ok || why == "" {
		t.Fatal("a service whose update waits for health reports converged")
	}

	// Once healthy, the rollout goes on and completes.
	s.health = nil
	if state := rollout(t, s, 200, func(string) {}); state != api.UpdateStateCompleted {
		t.Fatalf("update ended %q after the tasks turned healthy", state)
	}
	s.converge()
}

func TestUpdateMonitorWindow(t *testing.T) {
	cfg := api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause, Monitor: 10 * time.Second}
	zero := time.Duration(0)
	for _, tc := range []struct {
		failAfter time.Duration
		paused    bool
	}{
		{5 * time.Second, true},   // within the monitor period: a failure of the update
		{15 * time.Second, false}, // after it: an ordinary restart
	} {
		t.Run(tc.failAfter.String(), func(t *testing.T) {
			s := newSim(t, replicated("web", 3), readyNode("n1"))
			s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero}
			s.converge()
			update(s, cfg)
			p := s.step()
			s.work()
			s.settle()
			s.work()
			first := s.tasks[p.Create[0].ID]
			if !ready(first) {
				t.Fatalf("first new task not running: %s", first.Status.State)
			}
			s.now = startedAt(first).Add(tc.failAfter)
			s.setState(first, api.TaskStateFailed)
			s.settle()
			if got := s.svc.UpdateStatus.GetState() == api.UpdateStatePaused; got != tc.paused {
				t.Fatalf("failure %v after start: paused = %v, want %v (state %q)", tc.failAfter, got, tc.paused, s.svc.UpdateStatus.GetState())
			}
			if !tc.paused {
				if st := rollout(t, s, 100, func(string) {}); st != api.UpdateStateCompleted {
					t.Fatalf("update ended %q", st)
				}
			}
		})
	}
}

func TestUpdateCompletesOnlyAfterMonitorPeriod(t *testing.T) {
	s := newSim(t, replicated("web", 2), readyNode("n1"))
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 0, Order: api.UpdateOrderStartFirst, FailureAction: api.UpdateFailureActionPause, Monitor: 5 * time.Second})
	s.step()
	s.work() // both new tasks run from now
	runningAt := s.now
	p := s.step()
	if st := s.svc.UpdateStatus.GetState(); st != api.UpdateStateUpdating {
		t.Fatalf("state %q right after the last batch runs, want updating (monitoring)", st)
	}
	if want := runningAt.Add(5 * time.Second); !p.WakeAt.Equal(want) {
		t.Fatalf("wake at %v, want the end of the monitor period %v", p.WakeAt, want)
	}
	s.now = runningAt.Add(4 * time.Second)
	s.settle()
	if st := s.svc.UpdateStatus.GetState(); st != api.UpdateStateUpdating {
		t.Fatalf("state %q before the monitor period ended", st)
	}
	s.now = runningAt.Add(5 * time.Second)
	s.settle()
	if st := s.svc.UpdateStatus.GetState(); st != api.UpdateStateCompleted || s.svc.UpdateStatus.CompletedAt == nil {
		t.Fatalf("update status %+v after the monitor period, want completed", s.svc.UpdateStatus)
	}
}

func TestMaxFailureRatioAsDocker(t *testing.T) {
	// Docker pauses once failures / slots of the rollout > MaxFailureRatio:
	// with 10 slots and 0.2, two failures are tolerated, the third is not.
	zero := time.Duration(0)
	s := newSim(t, replicated("web", 10), readyNode("n1"))
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero}
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause, MaxFailureRatio: 0.2, Monitor: time.Minute})
	failed := map[string]bool{}
	s.exit = func(tk *api.Task) api.TaskState {
		// The first three tasks of the new version fail at once.
		if UpToDate(tk, s.svc) && !failed[tk.ID] && len(failed) < 3 {
			failed[tk.ID] = true
			return api.TaskStateFailed
		}
		return 0
	}
	var pausedAfter int
	rollout(t, s, 300, func(string) {
		if s.svc.UpdateStatus.GetState() == api.UpdateStatePaused && pausedAfter == 0 {
			pausedAfter = len(failed)
		}
	})
	if s.svc.UpdateStatus.GetState() != api.UpdateStatePaused || pausedAfter != 3 {
		t.Fatalf("state %q, paused after %d failures; want paused after the 3rd", s.svc.UpdateStatus.GetState(), pausedAfter)
	}
	if want := "update paused due to failure or early termination of task"; len(s.svc.UpdateStatus.Message) < len(want) || s.svc.UpdateStatus.Message[:len(want)] != want {
		t.Fatalf("pause message %q", s.svc.UpdateStatus.Message)
	}

	// With 0.3 the same three failures are tolerated and the update completes.
	s = newSim(t, replicated("web", 10), readyNode("n1"))
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero}
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause, MaxFailureRatio: 0.3, Monitor: time.Minute})
	failed = map[string]bool{}
	s.exit = func(tk *api.Task) api.TaskState {
		if UpToDate(tk, s.svc) && !failed[tk.ID] && len(failed) < 3 {
			failed[tk.ID] = true
			return api.TaskStateFailed
		}
		return 0
	}
	if st := rollout(t, s, 300, func(string) {}); st != api.UpdateStateCompleted || len(failed) != 3 {
		t.Fatalf("state %q after %d failures, want completed", st, len(failed))
	}
}

func TestFailureActionContinue(t *testing.T) {
	zero := time.Duration(0)
	s := newSim(t, replicated("web", 4), readyNode("n1"))
	s.svc.Spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &zero}
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionContinue})
	failed := map[string]bool{}
	s.exit = func(tk *api.Task) api.TaskState {
		if UpToDate(tk, s.svc) && !failed[tk.ID] && len(failed) < 2 {
			failed[tk.ID] = true
			return api.TaskStateFailed
		}
		return 0
	}
	if st := rollout(t, s, 300, func(string) {}); st != api.UpdateStateCompleted {
		t.Fatalf("state %q, want completed despite failures (continue)", st)
	}
}

func TestAutomaticRollbackAndFailedRollbackPauses(t *testing.T) {
	s := newSim(t, replicated("web", 3), readyNode("n1"))
	s.converge()
	s.svc.Spec.RollbackConfig = &api.UpdateConfig{Parallelism: 2, Order: api.UpdateOrderStartFirst, FailureAction: api.UpdateFailureActionRollback}
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionRollback})
	s.exit = func(tk *api.Task) api.TaskState {
		if tk.Spec.Process.Command[1] == "v2" {
			return api.TaskStateFailed // v2 never stays up
		}
		return 0
	}
	var states []string
	maxBatch := map[string]int{} // most tasks made in one step, per state
	rollout(t, s, 300, func(phase string) {
		st := s.svc.UpdateStatus.GetState()
		if len(states) == 0 || states[len(states)-1] != st {
			states = append(states, st)
		}
		if strings.HasSuffix(phase, "after reconcile") {
			maxBatch[st] = max(maxBatch[st], len(s.last.Create))
		}
	})
	if fmt.Sprint(states) != "[updating rollback_started rollback_completed]" {
		t.Fatalf("update states %v, want updating, rollback_started, rollback_completed", states)
	}
	// The rollback ran under the rollback config (2 at a time), the update
	// under the update config (1 at a time).
	if maxBatch[api.UpdateStateUpdating] != 1 || maxBatch[api.UpdateStateRollbackStarted] != 2 {
		t.Fatalf("largest batches %v, want 1 while updating and 2 while rolling back", maxBatch)
	}
	for slot, ts := range s.wanted() {
		if cmd := ts[len(ts)-1].Spec.Process.Command[1]; cmd != "v1" || !ready(ts[len(ts)-1]) {
			t.Fatalf("slot %s runs %s after the rollback", slot, cmd)
		}
	}
	if s.svc.Spec.TaskTemplate.Process.Command[1] != "v1" || s.svc.PreviousSpec.TaskTemplate.Process.Command[1] != "v2" {
		t.Fatal("the service's spec is not back to v1")
	}

	// A rollback that fails is never rolled back: it pauses.
	s = newSim(t, replicated("web", 3), readyNode("n1"))
	// The rollback runs under the rollback config of the spec it returns to.
	s.svc.Spec.RollbackConfig = &api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionRollback}
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionRollback})
	s.exit = func(tk *api.Task) api.TaskState { // nothing new stays up, v1 included
		if tk.Meta.CreatedAt.After(t0.Add(time.Millisecond)) {
			return api.TaskStateFailed
		}
		return 0
	}
	if st := rollout(t, s, 300, func(string) {}); st != api.UpdateStateRollbackPaused {
		t.Fatalf("state %q, want rollback_paused", st)
	}
	if msg := s.svc.UpdateStatus.Message; len(msg) < 15 || msg[:15] != "rollback paused" {
		t.Fatalf("message %q", msg)
	}
}

func TestNewUpdateSupersedesRunningOne(t *testing.T) {
	for _, order := range []string{api.UpdateOrderStopFirst, api.UpdateOrderStartFirst} {
		t.Run(order, func(t *testing.T) {
			s := newSim(t, withCheck(replicated("web", 4)), readyNode("n1"), readyNode("n2"))
			s.converge()
			s.health = slowHealth(s, 2*time.Second)
			cfg := api.UpdateConfig{Parallelism: 2, Delay: 5 * time.Second, Order: order, FailureAction: api.UpdateFailureActionPause}
			update(s, cfg)
			// Mid-batch: the first batch is made and partly running.
			s.step()
			s.work()
			s.step()
			s.work()
			// v3 replaces v2 (as controlapi does: status reset).
			prev := s.svc.Spec.Copy()
			s.svc.PreviousSpec = &prev
			s.svc.Spec.TaskTemplate.Process.Command = []string{"app", "v3"}
			s.svc.SpecVersion++
			s.svc.UpdateStatus = nil
			state := rollout(t, s, 300, func(phase string) {
				for slot, ts := range s.wanted() {
					if order == api.UpdateOrderStopFirst && len(ts) > 1 {
						t.Fatalf("%s: slot %s has %d wanted tasks under stop-first", phase, slot, len(ts))
					}
					if len(ts) > 2 {
						t.Fatalf("%s: slot %s has %d wanted tasks", phase, slot, len(ts))
					}
				}
				if order == api.UpdateOrderStartFirst && s.up() < 4 {
					t.Fatalf("%s: %d up under start-first", phase, s.up())
				}
			})
			if state != api.UpdateStateCompleted {
				t.Fatalf("update ended %q", state)
			}
			for slot, ts := range s.wanted() {
				if len(ts) != 1 || ts[0].Spec.Process.Command[1] != "v3" {
					t.Fatalf("slot %s does not run v3 alone", slot)
				}
			}
			s.converge()
		})
	}
}

func TestGlobalRollingUpdate(t *testing.T) {
	s := newSim(t, global("agent"), readyNode("n1"), readyNode("n2"), readyNode("n3"))
	s.converge()
	update(s, api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause})
	if st := rollout(t, s, 100, func(phase string) {
		if n := s.processes(); n > 3 {
			t.Fatalf("%s: %d processes on 3 nodes", phase, n)
		}
	}); st != api.UpdateStateCompleted {
		t.Fatalf("state %q", st)
	}
	for node, ts := range s.wanted() {
		if len(ts) != 1 || !UpToDate(ts[0], s.svc) || ts[0].NodeID != node {
			t.Fatalf("node %s: not one updated task", node)
		}
	}
}
