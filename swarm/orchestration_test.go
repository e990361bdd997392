package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

// Cluster tests of issue 7's orchestration: one manager and fake-executor
// workers (scripted failures, exits and health) in this process, and a few
// with the process executor for real health checks and timing.

type fakeCluster struct {
	t       *testing.T
	mgr     *swarm.Manager
	c       *swarm.Client
	workers []*fakeWorker
	script  func(*api.Task) fake.Script
}

type fakeWorker struct {
	name string
	w    *swarm.Worker
	ex   *fake.Executor
}

func startFakeCluster(t *testing.T, workers int, script func(*api.Task) fake.Script, tune func(*swarm.ManagerConfig)) *fakeCluster {
	t.Helper()
	cfg := swarm.DefaultManagerConfig()
	cfg.ClusterSpec.Dispatcher.HeartbeatPeriod = 100 * time.Millisecond
	cfg.Logger = quietLogger()
	if tune != nil {
		tune(&cfg)
	}
	mgr, err := swarm.StartManager(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeCluster{t: t, mgr: mgr, c: mgr.Client(), script: script}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, w := range fc.workers {
			_ = w.w.Kill(ctx)
		}
		mgr.Stop()
	})
	for i := 1; i <= workers; i++ {
		fc.addWorker(fmt.Sprintf("w%d", i))
	}
	return fc
}

func (fc *fakeCluster) addWorker(name string) *fakeWorker {
	fc.t.Helper()
	ex := fake.New(fake.Config{Hostname: name, Behavior: fc.script})
	w, err := swarm.StartWorker(context.Background(), swarm.WorkerConfig{Manager: fc.mgr.Dispatcher(), Executor: ex, Logger: quietLogger()})
	if err != nil {
		fc.t.Fatal(err)
	}
	fw := &fakeWorker{name: name, w: w, ex: ex}
	fc.workers = append(fc.workers, fw)
	return fw
}

// waitConverged waits for the service to converge (a job: to be done).
func waitConverged(t *testing.T, c *swarm.Client, ref string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := c.WaitConverged(ctx, ref); err != nil {
		t.Fatal(err)
	}
}

func listTasks(t *testing.T, c *swarm.Client, svc string) []*api.Task {
	t.Helper()
	ts, err := c.ListTasks(context.Background(), swarm.TaskFilter{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func getService(t *testing.T, c *swarm.Client, ref string) *api.Service {
	t.Helper()
	s, err := c.GetService(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// updateSpec changes a service's spec, retrying when someone (the
// orchestrator writing its update status) changed it in between.
func updateSpec(t *testing.T, c *swarm.Client, ref string, change func(*api.ServiceSpec)) {
	t.Helper()
	for {
		cur := getService(t, c, ref)
		spec := cur.Spec.Copy()
		change(&spec)
		_, err := c.UpdateService(context.Background(), cur.ID, cur.Meta.Version, spec)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

func updateNode(t *testing.T, c *swarm.Client, ref string, change func(*api.NodeSpec)) {
	t.Helper()
	for {
		n, err := c.GetNode(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		spec := n.Spec.Copy()
		change(&spec)
		_, err = c.UpdateNode(context.Background(), n.ID, n.Meta.Version, spec)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

func envOf(tk *api.Task) string { return strings.Join(tk.Spec.Process.Env, ",") }

func appSpec(name string, replicas int64) api.ServiceSpec {
	zero := time.Duration(0)
	return api.ServiceSpec{
		Annotations: api.Annotations{Name: name},
		Mode:        api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: replicas}},
		TaskTemplate: api.TaskSpec{
			Process:       &api.ProcessSpec{Command: []string{"app"}},
			RestartPolicy: &api.RestartPolicy{Delay: &zero},
		},
	}
}

// commitWatch checks a service's tasks, as the store holds them, after every
// committed transaction: the orchestrator's invariants hold at every step,
// not only in the end.
type commitWatch struct {
	w      *store.Watcher
	done   chan struct{}
	mu     sync.Mutex
	failed string
}

func watchCommits(t *testing.T, st *store.MemoryStore, svcID string, check func(tasks map[string]*api.Task) string) *commitWatch {
	t.Helper()
	tasks := map[string]*api.Task{}
	w, err := st.ViewAndWatch(func(tx store.ReadTx) error {
		ts, err := tx.FindTasks(store.ByServiceID(svcID))
		for _, tk := range ts {
			tasks[tk.ID] = tk
		}
		return err
	}, store.TaskOfService(svcID))
	if err != nil {
		t.Fatal(err)
	}
	cw := &commitWatch{w: w, done: make(chan struct{})}
	if msg := check(tasks); msg != "" {
		cw.failed = "at the start: " + msg
	}
	go func() {
		defer close(cw.done)
		for ev := range w.Events() {
			switch ev.Action {
			case store.ActionCreate, store.ActionUpdate:
				tk := ev.Object.(*api.Task)
				tasks[tk.ID] = tk
			case store.ActionDelete:
				delete(tasks, ev.Object.(*api.Task).ID)
			case store.ActionCommit:
				if msg := check(tasks); msg != "" {
					cw.mu.Lock()
					if cw.failed == "" {
						cw.failed = fmt.Sprintf("at commit %d: %s", ev.Version, msg)
					}
					cw.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(cw.stop)
	return cw
}

func (cw *commitWatch) stop() {
	cw.w.Close()
	<-cw.done
}

// verify stops the watch and fails the test if a check failed.
func (cw *commitWatch) verify(t *testing.T) {
	t.Helper()
	cw.stop()
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.failed != "" {
		t.Fatal(cw.failed)
	}
}

func wanted(t *api.Task) bool { return t.DesiredState <= api.TaskStateRunning }

func TestOrchestrationRestartLimitExactBeyondRetention(t *testing.T) {
	var mu sync.Mutex
	made := map[uint64]int{} // tasks handed to an executor, per slot
	fc := startFakeCluster(t, 2, func(tk *api.Task) fake.Script {
		mu.Lock()
		made[tk.Slot]++
		mu.Unlock()
		return fake.Script{ExitAfter: 20 * time.Millisecond, ExitCode: 1}
	}, func(cfg *swarm.ManagerConfig) {
		cfg.ClusterSpec.Orchestration.TaskHistoryRetentionLimit = 2 // fewer than the attempts
	})
	spec := appSpec("crashy", 1)
	delay := 10 * time.Millisecond
	spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Condition: api.RestartConditionOnFailure, Delay: &delay, MaxAttempts: 4}
	svc, err := fc.c.CreateService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	exhausted := func(slot uint64) *api.Task {
		var last *api.Task
		testutil.EventuallyWhy(t, 20*time.Second, fmt.Sprintf("slot %d to use its 4 restarts", slot), func() (bool, string) {
			for _, tk := range listTasks(t, fc.c, svc.ID) {
				if tk.Slot == slot && wanted(tk) {
					last = tk
					return tk.Status.State == api.TaskStateFailed && tk.RestartCount == 4, fmt.Sprintf("current %s restarts %d", tk.Status.State, tk.RestartCount)
				}
			}
			return false, "no current task"
		})
		return last
	}
	last := exhausted(1)
	// Scaling up makes the orchestrator reconcile the service again, from a
	// state that holds the refused task: slot 2 appearing proves that pass
	// ran, and slot 1 must be untouched by it.
	if _, err := fc.c.ScaleService(context.Background(), svc.ID, 2); err != nil {
		t.Fatal(err)
	}
	exhausted(2)
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		if tk.Slot == 1 && wanted(tk) && tk.ID != last.ID {
			t.Fatalf("slot 1 restarted beyond MaxAttempts: task %s", tk.ID)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if made[1] != 5 || made[2] != 5 {
		t.Fatalf("tasks run per slot %v, want exactly 1 + 4 restarts each although only 2 finished tasks are kept", made)
	}
	per := map[uint64]int{}
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		per[tk.Slot]++
	}
	if per[1] != 3 || per[2] != 3 {
		t.Fatalf("tasks stored per slot %v, want the current one and 2 of history", per)
	}
}

func TestOrchestrationUpdatePausesOnFailure(t *testing.T) {
	fc := startFakeCluster(t, 2, func(tk *api.Task) fake.Script {
		if slices.Contains(tk.Spec.Process.Env, "V=2") {
			return fake.Script{ExitAfter: 50 * time.Millisecond, ExitCode: 3}
		}
		return fake.Script{}
	}, nil)
	spec := appSpec("web", 4)
	// The first new task runs, then fails within the monitor period, long
	// before the delay would let a second batch start.
	spec.UpdateConfig = &api.UpdateConfig{Parallelism: 1, Delay: 5 * time.Second, Monitor: 5 * time.Second, FailureAction: api.UpdateFailureActionPause}
	svc, err := fc.c.CreateService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
	updateSpec(t, fc.c, svc.ID, func(s *api.ServiceSpec) { s.TaskTemplate.Process.Env = []string{"V=2"} })
	testutil.EventuallyWhy(t, 20*time.Second, "the update to pause", func() (bool, string) {
		u := getService(t, fc.c, svc.ID).UpdateStatus
		return u.GetState() == api.UpdateStatePaused, fmt.Sprintf("%+v", u)
	})
	u := getService(t, fc.c, svc.ID).UpdateStatus
	if !strings.HasPrefix(u.Message, "update paused due to failure or early termination of task ") {
		t.Fatalf("pause message %q", u.Message)
	}
	v2Slots, v1Running := map[uint64]bool{}, 0
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		if envOf(tk) == "V=2" {
			v2Slots[tk.Slot] = true
		} else if wanted(tk) && tk.Status.State == api.TaskStateRunning {
			v1Running++
		}
	}
	if len(v2Slots) != 1 || v1Running != 3 {
		t.Fatalf("after the pause: v2 in slots %v, %d v1 running; want one slot tried, 3 untouched", v2Slots, v1Running)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := fc.c.WaitConverged(ctx, svc.ID); err == nil || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("WaitConverged on a paused update: %v", err)
	}
}

func TestOrchestrationUpdateRollsBackAutomatically(t *testing.T) {
	fc := startFakeCluster(t, 2, func(tk *api.Task) fake.Script {
		if slices.Contains(tk.Spec.Process.Env, "V=2") {
			return fake.Script{ExitAfter: 50 * time.Millisecond, ExitCode: 3}
		}
		return fake.Script{}
	}, nil)
	spec := appSpec("web", 4)
	spec.UpdateConfig = &api.UpdateConfig{Parallelism: 1, Monitor: 2 * time.Second, FailureAction: api.UpdateFailureActionRollback}
	spec.RollbackConfig = &api.UpdateConfig{Parallelism: 2, Monitor: 200 * time.Millisecond, Order: api.UpdateOrderStartFirst}
	svc, err := fc.c.CreateService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, fc.c, svc.ID, 20*time.Second)

	var mu sync.Mutex
	var states []string
	w := fc.mgr.Store().Watch(store.ByKinds(api.KindService))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ev := range w.Events() {
			if s, ok := ev.Object.(*api.Service); ok && s.ID == svc.ID {
				mu.Lock()
				if st := s.UpdateStatus.GetState(); len(states) == 0 || states[len(states)-1] != st {
					states = append(states, st)
				}
				mu.Unlock()
			}
		}
	}()
	updateSpec(t, fc.c, svc.ID, func(s *api.ServiceSpec) { s.TaskTemplate.Process.Env = []string{"V=2"} })
	// Wait on the watch itself, so that it has seen every change.
	testutil.EventuallyWhy(t, 30*time.Second, "the rollback to complete", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(states) > 0 && states[len(states)-1] == api.UpdateStateRollbackCompleted, fmt.Sprint(states)
	})
	w.Close()
	<-watched
	mu.Lock()
	got := fmt.Sprint(states)
	mu.Unlock()
	if got != "[ updating rollback_started rollback_completed]" {
		t.Fatalf("update states %s, want updating, rollback_started, rollback_completed", got)
	}
	cur := getService(t, fc.c, svc.ID)
	if len(cur.Spec.TaskTemplate.Process.Env) != 0 || !strings.Contains(cur.UpdateStatus.Message, "rollback completed") {
		t.Fatalf("service after rollback: env %v, status %+v", cur.Spec.TaskTemplate.Process.Env, cur.UpdateStatus)
	}
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		if wanted(tk) && envOf(tk) != "" {
			t.Fatalf("task %s still runs v2 after the rollback", tk.ID)
		}
	}
}

func TestOrchestrationRolloutBoundsAtEveryCommit(t *testing.T) {
	for _, order := range []string{api.UpdateOrderStopFirst, api.UpdateOrderStartFirst} {
		t.Run(order, func(t *testing.T) {
			fc := startFakeCluster(t, 3, nil, nil)
			spec := appSpec("web", 5)
			spec.UpdateConfig = &api.UpdateConfig{Parallelism: 2, Monitor: 200 * time.Millisecond, Order: order}
			svc, err := fc.c.CreateService(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			waitConverged(t, fc.c, svc.ID, 20*time.Second)
			cw := watchCommits(t, fc.mgr.Store(), svc.ID, func(tasks map[string]*api.Task) string {
				processes, serving := 0, 0
				for _, tk := range tasks {
					if tk.Status.State == api.TaskStateRunning {
						processes++
						if wanted(tk) {
							serving++
						}
					}
				}
				if order == api.UpdateOrderStopFirst && processes > 5 {
					return fmt.Sprintf("%d tasks running under stop-first, more than the 5 desired", processes)
				}
				if order == api.UpdateOrderStartFirst && serving < 5 {
					return fmt.Sprintf("%d wanted tasks running under start-first, fewer than the 5 desired", serving)
				}
				return ""
			})
			updateSpec(t, fc.c, svc.ID, func(s *api.ServiceSpec) { s.TaskTemplate.Process.Env = []string{"V=2"} })
			testutil.EventuallyWhy(t, 30*time.Second, "the update to complete", func() (bool, string) {
				u := getService(t, fc.c, svc.ID).UpdateStatus
				return u.GetState() == api.UpdateStateCompleted, fmt.Sprintf("%+v", u)
			})
			cw.verify(t)
			waitConverged(t, fc.c, svc.ID, 20*time.Second)
		})
	}
}

func TestOrchestrationNewUpdateSupersedesRunningOne(t *testing.T) {
	fc := startFakeCluster(t, 2, nil, nil)
	spec := appSpec("web", 4)
	spec.UpdateConfig = &api.UpdateConfig{Parallelism: 1, Delay: 300 * time.Millisecond, Monitor: 200 * time.Millisecond}
	svc, err := fc.c.CreateService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
	cw := watchCommits(t, fc.mgr.Store(), svc.ID, func(tasks map[string]*api.Task) string {
		perSlot := map[uint64]int{}
		for _, tk := range tasks {
			if tk.Status.State == api.TaskStateRunning {
				perSlot[tk.Slot]++
				if perSlot[tk.Slot] > 1 {
					return fmt.Sprintf("slot %d runs 2 tasks under stop-first", tk.Slot)
				}
			}
		}
		return ""
	})
	updateSpec(t, fc.c, svc.ID, func(s *api.ServiceSpec) { s.TaskTemplate.Process.Env = []string{"V=2"} })
	testutil.EventuallyWhy(t, 20*time.Second, "the first v2 task to run", func() (bool, string) {
		for _, tk := range listTasks(t, fc.c, svc.ID) {
			if envOf(tk) == "V=2" && tk.Status.State == api.TaskStateRunning {
				return true, ""
			}
		}
		return false, "none"
	})
	updateSpec(t, fc.c, svc.ID, func(s *api.ServiceSpec) { s.TaskTemplate.Process.Env = []string{"V=3"} })
	waitConverged(t, fc.c, svc.ID, 30*time.Second)
	cw.verify(t)
	if u := getService(t, fc.c, svc.ID).UpdateStatus; u.GetState() != api.UpdateStateCompleted {
		t.Fatalf("update status %+v", u)
	}
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		if wanted(tk) && envOf(tk) != "V=3" {
			t.Fatalf("wanted task %s runs %q, want V=3", tk.ID, envOf(tk))
		}
	}
}

func TestOrchestrationHealthGatedRollout(t *testing.T) {
	tc := startCluster(t, 2)
	ctx := context.Background()
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "v1"), filepath.Join(dir, "v2")
	if err := os.WriteFile(v1, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := sleeper("gated", 3)
	spec.TaskTemplate.Process.Env = []string{"READY=" + v1}
	// Healthy once $READY exists; failures never count while starting.
	spec.TaskTemplate.HealthCheck = &api.HealthConfig{Test: []string{"CMD-SHELL", `test -f "$READY"`}, Interval: 100 * time.Millisecond, Timeout: time.Second, Retries: 3, StartPeriod: time.Hour}
	spec.UpdateConfig = &api.UpdateConfig{Parallelism: 1, Monitor: 200 * time.Millisecond}
	svc, err := tc.c.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	for _, tk := range tc.running(svc.ID) {
		if tk.Status.Health != api.HealthHealthy {
			t.Fatalf("converged with task %s health %q", tk.ID, tk.Status.Health)
		}
	}
	updateSpec(t, tc.c, svc.ID, func(s *api.ServiceSpec) { s.TaskTemplate.Process.Env = []string{"READY=" + v2} })
	v2Tasks := func() (n int, starting bool) {
		for _, tk := range listTasks(t, tc.c, svc.ID) {
			if envOf(tk) == "READY="+v2 {
				n++
				starting = starting || (tk.Status.State == api.TaskStateRunning && tk.Status.Health == api.HealthStarting)
			}
		}
		return n, starting
	}
	testutil.EventuallyWhy(t, 20*time.Second, "the first new task to run, not yet healthy", func() (bool, string) {
		n, starting := v2Tasks()
		return starting, fmt.Sprintf("%d new tasks", n)
	})
	// For 15 check intervals the rollout must not go past its first batch.
	until := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(until) {
		if n, _ := v2Tasks(); n != 1 {
			t.Fatalf("%d tasks of the new version while the first never became healthy", n)
		}
		if st := getService(t, tc.c, svc.ID).UpdateStatus.GetState(); st != api.UpdateStateUpdating {
			t.Fatalf("update state %q, want updating", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The new version turns healthy: the rollout completes.
	if err := os.WriteFile(v2, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	if u := getService(t, tc.c, svc.ID).UpdateStatus; u.GetState() != api.UpdateStateCompleted {
		t.Fatalf("update status %+v", u)
	}
	for _, tk := range tc.running(svc.ID) {
		if envOf(tk) != "READY="+v2 || tk.Status.Health != api.HealthHealthy {
			t.Fatalf("task %s: env %q health %q", tk.ID, envOf(tk), tk.Status.Health)
		}
	}
}

func TestOrchestrationUnhealthyTasksAreReplaced(t *testing.T) {
	var mu sync.Mutex
	made := 0
	fc := startFakeCluster(t, 2, func(tk *api.Task) fake.Script {
		mu.Lock()
		defer mu.Unlock()
		made++
		if made == 1 {
			return fake.Script{Unhealthy: true, UnhealthyAfter: 200 * time.Millisecond}
		}
		return fake.Script{}
	}, nil)
	spec := appSpec("web", 1)
	spec.TaskTemplate.HealthCheck = &api.HealthConfig{Test: []string{"CMD", "probe"}, Interval: 50 * time.Millisecond}
	svc, err := fc.c.CreateService(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 20*time.Second, "the unhealthy task to fail and be replaced", func() (bool, string) {
		var failed, healthy bool
		for _, tk := range listTasks(t, fc.c, svc.ID) {
			failed = failed || (tk.Status.State == api.TaskStateFailed && tk.Status.Health == api.HealthUnhealthy)
			healthy = healthy || (wanted(tk) && tk.Status.State == api.TaskStateRunning && tk.Status.Health == api.HealthHealthy)
		}
		return failed && healthy, fmt.Sprintf("failed %v healthy %v", failed, healthy)
	})
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
}

func TestOrchestrationGlobalServiceNodeChurn(t *testing.T) {
	fc := startFakeCluster(t, 2, nil, nil)
	ctx := context.Background()
	spec := appSpec("agent", 0)
	spec.Mode = api.ServiceMode{Global: &api.GlobalService{}}
	spec.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.labels.agent!=no"}}
	svc, err := fc.c.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		waitConverged(t, fc.c, svc.ID, 20*time.Second)
		nodes, err := fc.c.ListNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var eligible []string
		for _, n := range nodes {
			if n.Status.State == api.NodeStateReady && n.Spec.Availability != api.NodeAvailabilityDrain && n.Spec.Labels["agent"] != "no" {
				eligible = append(eligible, n.ID)
			}
		}
		on := map[string]int{}
		for _, tk := range listTasks(t, fc.c, svc.ID) {
			if wanted(tk) && tk.Status.State == api.TaskStateRunning {
				on[tk.NodeID]++
			}
		}
		for _, id := range eligible {
			if on[id] != 1 {
				t.Fatalf("%s: node %s runs %d tasks, want 1", what, id, on[id])
			}
		}
		if len(on) != len(eligible) {
			t.Fatalf("%s: tasks on %d nodes, %d eligible", what, len(on), len(eligible))
		}
	}
	check("2 nodes")
	w3, w4 := fc.addWorker("w3"), fc.addWorker("w4")
	check("4 nodes")
	updateNode(t, fc.c, w3.w.NodeID(), func(s *api.NodeSpec) { s.Labels = map[string]string{"agent": "no"} })
	check("w3 labelled out")
	updateNode(t, fc.c, w4.w.NodeID(), func(s *api.NodeSpec) { s.Availability = api.NodeAvailabilityDrain })
	check("w4 drained")
	victim := fc.workers[0]
	if err := victim.w.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 10*time.Second, "w1 down", func() (bool, string) {
		n, err := fc.c.GetNode(ctx, victim.w.NodeID())
		return err == nil && n.Status.State == api.NodeStateDown, "not down"
	})
	check("w1 down")
	if err := fc.c.RemoveNode(ctx, victim.w.NodeID(), false); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 10*time.Second, "w1's tasks deleted", func() (bool, string) {
		for _, tk := range listTasks(t, fc.c, svc.ID) {
			if tk.NodeID == victim.w.NodeID() {
				return false, "task " + tk.ID + " " + tk.Status.State.String()
			}
		}
		return true, ""
	})
	check("w1 removed")
	updateNode(t, fc.c, w3.w.NodeID(), func(s *api.NodeSpec) { s.Labels = nil })
	updateNode(t, fc.c, w4.w.NodeID(), func(s *api.NodeSpec) { s.Availability = api.NodeAvailabilityActive })
	fc.addWorker("w5")
	check("w3, w4 back and w5 joined")
}

func TestOrchestrationJobCompletions(t *testing.T) {
	var mu sync.Mutex
	made := map[uint64]int{}
	fc := startFakeCluster(t, 3, func(tk *api.Task) fake.Script {
		mu.Lock()
		defer mu.Unlock()
		made[tk.Slot]++
		if tk.Slot == 4 && made[4] == 1 {
			return fake.Script{ExitAfter: 30 * time.Millisecond, ExitCode: 1} // fails once, is retried
		}
		return fake.Script{ExitAfter: 80 * time.Millisecond}
	}, nil)
	ctx := context.Background()
	spec := appSpec("batch", 0)
	spec.Mode = api.ServiceMode{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 3, TotalCompletions: 10}}
	delay := 20 * time.Millisecond
	spec.TaskTemplate.RestartPolicy = &api.RestartPolicy{Delay: &delay} // condition: on-failure, the jobs' default
	svc, err := fc.c.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	svcID := svc.ID
	peak := 0
	cw := watchCommits(t, fc.mgr.Store(), svcID, func(tasks map[string]*api.Task) string {
		active := 0
		for _, tk := range tasks {
			if tk.Status.State == api.TaskStateRunning || (wanted(tk) && !tk.Status.State.Terminal()) {
				active++
			}
		}
		peak = max(peak, active)
		if active > 3 {
			return fmt.Sprintf("%d job tasks active, more than MaxConcurrent 3", active)
		}
		return ""
	})
	waitConverged(t, fc.c, svcID, 30*time.Second)
	cw.verify(t)

	completed := map[uint64]int{}
	for _, tk := range listTasks(t, fc.c, svcID) {
		if tk.Status.State == api.TaskStateComplete {
			completed[tk.Slot]++
		}
	}
	mu.Lock()
	total := 0
	for _, n := range made {
		total += n
	}
	mu.Unlock()
	if len(completed) != 10 || total != 11 {
		t.Fatalf("completions per slot %v, %d tasks run; want 10 slots completed once and 11 runs (one retry, nothing rerun after success)", completed, total)
	}
	for slot, n := range completed {
		if n != 1 || slot < 1 || slot > 10 {
			t.Fatalf("slot %d completed %d times", slot, n)
		}
	}
	if peak != 3 {
		t.Fatalf("peak %d active tasks, want MaxConcurrent 3 reached", peak)
	}
	list, err := fc.c.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := list[0].ServiceStatus; st == nil || *st != (api.ServiceStatus{CompletedTasks: 10}) {
		t.Fatalf("job listing status %+v, want 10 completed, nothing running or desired", st)
	}

	// Re-running the job is an update: a new iteration runs 10 more.
	updateSpec(t, fc.c, svcID, func(s *api.ServiceSpec) { s.TaskTemplate.ForceUpdate++ })
	waitConverged(t, fc.c, svcID, 30*time.Second)
	cur := getService(t, fc.c, svcID)
	now, old := 0, 0
	for _, tk := range listTasks(t, fc.c, svcID) {
		switch {
		case tk.JobIteration == cur.SpecVersion && tk.Status.State == api.TaskStateComplete:
			now++
		case tk.JobIteration != cur.SpecVersion && tk.Status.State == api.TaskStateComplete:
			old++
			if tk.DesiredState != api.TaskStateShutdown {
				t.Fatalf("old iteration's task %s desired %s, want shutdown (history)", tk.ID, tk.DesiredState)
			}
		}
	}
	if now != 10 || old != 10 {
		t.Fatalf("%d completions in the new iteration, %d kept from the old; want 10 and 10", now, old)
	}
}

func TestOrchestrationDrainStartsReplacementsFirst(t *testing.T) {
	fc := startFakeCluster(t, 2, nil, nil)
	ctx := context.Background()
	svc, err := fc.c.CreateService(ctx, appSpec("web", 4))
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
	w1, w2 := fc.workers[0], fc.workers[1]
	drained := map[uint64]*api.Task{}
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		if tk.NodeID == w1.w.NodeID() {
			drained[tk.Slot] = tk
		}
	}
	if len(drained) == 0 {
		t.Fatal("nothing runs on w1")
	}
	cw := watchCommits(t, fc.mgr.Store(), svc.ID, func(tasks map[string]*api.Task) string {
		serving := 0
		for _, tk := range tasks {
			if wanted(tk) && tk.Status.State == api.TaskStateRunning {
				serving++
			}
		}
		if serving < 4 {
			return fmt.Sprintf("%d wanted tasks running during the drain, fewer than 4", serving)
		}
		return ""
	})
	updateNode(t, fc.c, w1.w.NodeID(), func(s *api.NodeSpec) { s.Availability = api.NodeAvailabilityDrain })
	testutil.EventuallyWhy(t, 20*time.Second, "the drain to finish", func() (bool, string) {
		for _, old := range drained {
			for _, tk := range listTasks(t, fc.c, svc.ID) {
				if tk.ID == old.ID && tk.Status.State != api.TaskStateShutdown {
					return false, "task " + tk.ID + " " + tk.Status.State.String()
				}
			}
		}
		return true, ""
	})
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
	cw.verify(t)
	tasks := listTasks(t, fc.c, svc.ID)
	for slot, old := range drained {
		var stopped, repl *api.Task
		for _, tk := range tasks {
			switch {
			case tk.ID == old.ID:
				stopped = tk
			case tk.Slot == slot && wanted(tk):
				repl = tk
			}
		}
		if stopped == nil || repl == nil || repl.NodeID != w2.w.NodeID() {
			t.Fatalf("slot %d: drained task %v, replacement %v on w2", slot, stopped, repl)
		}
		// From the timestamps: the replacement ran before the drained
		// task stopped, and the executors agree.
		if !repl.Status.ContainerStatus.StartedAt.Before(stopped.Status.Timestamp) {
			t.Fatalf("slot %d: replacement started %v, drained task stopped %v", slot, repl.Status.ContainerStatus.StartedAt, stopped.Status.Timestamp)
		}
		start, shut := opTime(w2.ex, repl.ID, fake.OpStart), opTime(w1.ex, old.ID, fake.OpShutdown)
		if start.IsZero() || shut.IsZero() || !start.Before(shut) {
			t.Fatalf("slot %d: executor start of the replacement %v, shutdown of the drained task %v", slot, start, shut)
		}
	}

	// Pause: w2 keeps its tasks, new ones go to another node.
	w3 := fc.addWorker("w3")
	before := map[string]bool{}
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		if wanted(tk) {
			before[tk.ID] = true
		}
	}
	updateNode(t, fc.c, w2.w.NodeID(), func(s *api.NodeSpec) { s.Availability = api.NodeAvailabilityPause })
	if _, err := fc.c.ScaleService(ctx, svc.ID, 6); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		switch {
		case before[tk.ID] && (!wanted(tk) || tk.Status.State != api.TaskStateRunning):
			t.Fatalf("task %s on the paused node did not stay: %s/%s", tk.ID, tk.DesiredState, tk.Status.State)
		case !before[tk.ID] && wanted(tk) && tk.NodeID != w3.w.NodeID():
			t.Fatalf("new task %s placed on %s, not on w3 (w1 drained, w2 paused)", tk.ID, tk.NodeID)
		}
	}
}

func opTime(ex *fake.Executor, taskID string, op fake.Op) time.Time {
	for _, ev := range ex.Events(taskID) {
		if ev.Op == op {
			return ev.Time
		}
	}
	return time.Time{}
}

func TestOrchestrationRemovedDownNodeCleansTasks(t *testing.T) {
	fc := startFakeCluster(t, 2, nil, nil)
	ctx := context.Background()
	svc, err := fc.c.CreateService(ctx, appSpec("web", 4))
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
	victim := fc.workers[0]
	slots := map[uint64]bool{}
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		if tk.NodeID == victim.w.NodeID() {
			slots[tk.Slot] = true
		}
	}
	if err := victim.w.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 10*time.Second, "victim down", func() (bool, string) {
		n, err := fc.c.GetNode(ctx, victim.w.NodeID())
		return err == nil && n.Status.State == api.NodeStateDown, "not down"
	})
	if err := fc.c.RemoveNode(ctx, victim.w.NodeID(), false); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 10*time.Second, "the removed node's tasks deleted", func() (bool, string) {
		for _, tk := range listTasks(t, fc.c, svc.ID) {
			if tk.NodeID == victim.w.NodeID() {
				return false, fmt.Sprintf("task %s %s/%s", tk.ID, tk.DesiredState, tk.Status.State)
			}
		}
		return true, ""
	})
	waitConverged(t, fc.c, svc.ID, 20*time.Second)
	for _, tk := range listTasks(t, fc.c, svc.ID) {
		if wanted(tk) {
			delete(slots, tk.Slot)
		}
	}
	if len(slots) != 0 {
		t.Fatalf("slots %v of the removed node not refilled", slots)
	}
}

func TestOrchestrationServiceStatusInListings(t *testing.T) {
	fc := startFakeCluster(t, 3, nil, nil)
	ctx := context.Background()
	web, err := fc.c.CreateService(ctx, appSpec("web", 4))
	if err != nil {
		t.Fatal(err)
	}
	g := appSpec("agent", 0)
	g.Mode = api.ServiceMode{Global: &api.GlobalService{}}
	agentSvc, err := fc.c.CreateService(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, fc.c, web.ID, 20*time.Second)
	waitConverged(t, fc.c, agentSvc.ID, 20*time.Second)
	list, err := fc.c.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]api.ServiceStatus{}
	for _, s := range list {
		got[s.Spec.Name] = *s.ServiceStatus
	}
	want := map[string]api.ServiceStatus{"web": {RunningTasks: 4, DesiredTasks: 4}, "agent": {RunningTasks: 3, DesiredTasks: 3}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listing status %v, want %v", got, want)
	}
}

// TestRollingUpdateBatchesFromTimestamps is issue 7's end-to-end check
// (through the Go client until apiaryctl exists): a 5-replica service of
// real processes updated with delay 1s and parallelism 2 replaces at most 2
// tasks at a time, at least 1 s apart, as the task timestamps show.
func TestRollingUpdateBatchesFromTimestamps(t *testing.T) {
	tc := startCluster(t, 2)
	ctx := context.Background()
	spec := sleeper("batched", 5)
	spec.UpdateConfig = &api.UpdateConfig{Parallelism: 2, Delay: time.Second}
	svc, err := tc.c.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	updateSpec(t, tc.c, svc.ID, func(s *api.ServiceSpec) { s.TaskTemplate.Process.Env = []string{"V=2"} })
	waitConverged(t, tc.c, svc.ID, 60*time.Second)

	type repl struct{ created, started time.Time }
	var news []repl
	for _, tk := range listTasks(t, tc.c, svc.ID) {
		if envOf(tk) != "V=2" || !wanted(tk) {
			continue
		}
		if tk.Status.ContainerStatus == nil || tk.Status.ContainerStatus.StartedAt.IsZero() {
			t.Fatalf("task %s has no start time", tk.ID)
		}
		news = append(news, repl{tk.Meta.CreatedAt, tk.Status.ContainerStatus.StartedAt})
	}
	if len(news) != 5 {
		t.Fatalf("%d tasks of the new version, want 5", len(news))
	}
	// At most 2 replacements in flight (made, not yet running) at any time.
	type edge struct {
		at time.Time
		d  int
	}
	var edges []edge
	for _, r := range news {
		edges = append(edges, edge{r.created, +1}, edge{r.started, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].d < edges[j].d
	})
	inFlight := 0
	for _, e := range edges {
		if inFlight += e.d; inFlight > 2 {
			t.Fatalf("%d tasks replaced at once at %v, want at most 2", inFlight, e.at)
		}
	}
	// Batches: tasks made together; each at most 2, each made at least 1 s
	// after the previous batch's tasks were all running.
	batches := map[time.Time][]repl{}
	for _, r := range news {
		batches[r.created] = append(batches[r.created], r)
	}
	var starts []time.Time
	for at := range batches {
		starts = append(starts, at)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	if len(starts) != 3 {
		t.Fatalf("%d batches, want 3 (2, 2, 1)", len(starts))
	}
	for i, at := range starts {
		if n := len(batches[at]); n > 2 {
			t.Fatalf("batch %d replaced %d tasks", i, n)
		}
		if i == 0 {
			continue
		}
		var prevUp time.Time
		for _, r := range batches[starts[i-1]] {
			if r.started.After(prevUp) {
				prevUp = r.started
			}
		}
		if gap := at.Sub(prevUp); gap < time.Second {
			t.Fatalf("batch %d made %v after batch %d was running, want at least the 1s delay", i, gap, i-1)
		}
	}
}
