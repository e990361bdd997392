package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// testCluster is one manager and some process-executor workers in this
// process, with fast heartbeats so failures are noticed in a fraction of a
// second.
type testCluster struct {
	t       *testing.T
	base    string
	mgr     *swarm.Manager
	c       *swarm.Client
	workers []*testWorker
}

type testWorker struct {
	name string
	dir  string
	w    *swarm.Worker
	ex   *process.Executor
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func startCluster(t *testing.T, workers int) *testCluster {
	t.Helper()
	// The temporary directory is made first so that its removal, a cleanup
	// too, runs after the cluster stopped (cleanups run last-in first-out).
	base := t.TempDir()
	cfg := swarm.DefaultManagerConfig()
	cfg.ClusterSpec.Dispatcher.HeartbeatPeriod = 100 * time.Millisecond
	cfg.Logger = quietLogger()
	mgr, err := swarm.StartManager(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, base: base, mgr: mgr, c: mgr.Client()}
	t.Cleanup(tc.stop)
	for i := 1; i <= workers; i++ {
		tc.addWorker(fmt.Sprintf("w%d", i), "")
	}
	return tc
}

func (tc *testCluster) addWorker(name, nodeID string) *testWorker {
	tc.t.Helper()
	dir := filepath.Join(tc.base, name)
	for _, w := range tc.workers {
		if w.name == name {
			dir = w.dir // a restart keeps the node's data
		}
	}
	pc := process.DefaultConfig()
	pc.DataDir, pc.Hostname, pc.Logger = dir, name, quietLogger()
	ex, err := process.New(pc)
	if err != nil {
		tc.t.Fatal(err)
	}
	w, err := swarm.StartWorker(context.Background(), swarm.WorkerConfig{Manager: tc.mgr.Dispatcher(), Executor: ex, NodeID: nodeID, Logger: quietLogger()})
	if err != nil {
		tc.t.Fatal(err)
	}
	tw := &testWorker{name: name, dir: dir, w: w, ex: ex}
	tc.workers = append(tc.workers, tw)
	return tw
}

func (tc *testCluster) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, w := range tc.workers {
		_ = w.w.Kill(ctx)
		_ = w.ex.Close()
	}
	tc.mgr.Stop()
}

func (tc *testCluster) converge(ref string) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.c.WaitConverged(ctx, ref); err != nil {
		tc.t.Fatal(err)
	}
	if err := tc.mgr.Err(); err != nil {
		tc.t.Fatal(err)
	}
}

// running returns the service's wanted, running tasks.
func (tc *testCluster) running(ref string) []*api.Task {
	tc.t.Helper()
	ts, err := tc.c.ListTasks(context.Background(), swarm.TaskFilter{Service: ref, DesiredStates: []api.TaskState{api.TaskStateRunning}})
	if err != nil {
		tc.t.Fatal(err)
	}
	var out []*api.Task
	for _, t := range ts {
		if t.Status.State == api.TaskStateRunning {
			out = append(out, t)
		}
	}
	return out
}

func sleeper(name string, replicas int64) api.ServiceSpec {
	grace := 2 * time.Second
	return api.ServiceSpec{
		Annotations:  api.Annotations{Name: name},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: replicas}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"/bin/sh", "-c", "exec sleep 600"}, StopGracePeriod: &grace}},
	}
}

// pidAlive reports whether a process still exists (and is not a zombie).
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// Signal 0 checks that the process exists (on Unix; elsewhere it fails).
	if p, err := os.FindProcess(pid); err != nil || p.Signal(syscall.Signal(0)) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func TestServiceRunsScalesAndIsRemoved(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := context.Background()
	svc, err := tc.c.CreateService(ctx, sleeper("sleepy", 3))
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	tasks := tc.running(svc.ID)
	nodes := map[string]int{}
	for _, tk := range tasks {
		nodes[tk.NodeID]++
		if tk.Status.ContainerStatus == nil || !pidAlive(tk.Status.ContainerStatus.PID) {
			t.Fatalf("task %s reports no live process: %+v", tk.ID, tk.Status.ContainerStatus)
		}
	}
	if len(nodes) != 3 {
		t.Fatalf("3 replicas on %d nodes, want spread over 3", len(nodes))
	}

	if _, err := tc.c.ScaleService(ctx, "sleepy", 6); err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	if n := len(tc.running(svc.ID)); n != 6 {
		t.Fatalf("%d running after scale to 6", n)
	}
	if _, err := tc.c.ScaleService(ctx, "sleepy", 2); err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	left := tc.running(svc.ID)
	for _, tk := range left {
		if tk.Slot > 2 {
			t.Fatalf("slot %d survived scale down to 2: highest slots go first", tk.Slot)
		}
	}

	if err := tc.c.RemoveService(ctx, "sleepy"); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 30*time.Second, "every process of the removed service to stop", func() (bool, string) {
		for _, tk := range left {
			if pidAlive(tk.Status.ContainerStatus.PID) {
				return false, fmt.Sprintf("pid %d alive", tk.Status.ContainerStatus.PID)
			}
		}
		all, _ := tc.c.ListTasks(ctx, swarm.TaskFilter{})
		return len(all) == 0, fmt.Sprintf("%d tasks left", len(all))
	})
}

func TestDeadWorkerTasksRescheduled(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := context.Background()
	svc, err := tc.c.CreateService(ctx, sleeper("web", 6))
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	victim := tc.workers[0]
	var lost []*api.Task
	for _, tk := range tc.running(svc.ID) {
		if tk.NodeID == victim.w.NodeID() {
			lost = append(lost, tk)
		}
	}
	if len(lost) == 0 {
		t.Fatal("victim runs no task")
	}
	if err := victim.w.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 10*time.Second, "victim declared down", func() (bool, string) {
		n, err := tc.c.GetNode(ctx, victim.w.NodeID())
		return err == nil && n.Status.State == api.NodeStateDown, fmt.Sprint(n.Status.State, err)
	})
	tc.converge(svc.ID)
	running := tc.running(svc.ID)
	if len(running) != 6 {
		t.Fatalf("%d running after failover, want 6", len(running))
	}
	slots := map[uint64]bool{}
	for _, tk := range running {
		if tk.NodeID == victim.w.NodeID() {
			t.Fatalf("task %s still on the dead node", tk.ID)
		}
		slots[tk.Slot] = true
	}
	for _, tk := range lost {
		if !slots[tk.Slot] {
			t.Fatalf("slot %d of the dead node was not refilled", tk.Slot)
		}
		old, err := tc.c.ListTasks(ctx, swarm.TaskFilter{Service: svc.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range old {
			if o.ID == tk.ID && (o.Status.State != api.TaskStateOrphaned || o.DesiredState != api.TaskStateShutdown) {
				t.Fatalf("lost task %s: state %s desired %s, want orphaned/shutdown", o.ID, o.Status.State, o.DesiredState)
			}
		}
	}
}

func TestReturningNodeStopsReplacedTasks(t *testing.T) {
	tc := startCluster(t, 2)
	ctx := context.Background()
	svc, err := tc.c.CreateService(ctx, sleeper("web", 4))
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	w := tc.workers[0]
	var pids []int
	for _, tk := range tc.running(svc.ID) {
		if tk.NodeID == w.w.NodeID() {
			pids = append(pids, tk.Status.ContainerStatus.PID)
		}
	}
	// The agent goes away but its processes keep running (a partition, or
	// a daemon restart that takes too long).
	w.w.Stop()
	_ = w.ex.Close()
	nodeID := w.w.NodeID()
	testutil.EventuallyWhy(t, 10*time.Second, "node declared down", func() (bool, string) {
		n, _ := tc.c.GetNode(ctx, nodeID)
		return n != nil && n.Status.State == api.NodeStateDown, "not down"
	})
	tc.converge(svc.ID)
	for _, p := range pids {
		if !pidAlive(p) {
			t.Fatalf("pid %d died while its agent was away; it should run on until told", p)
		}
	}
	tc.addWorker(w.name, nodeID)
	testutil.EventuallyWhy(t, 20*time.Second, "replaced tasks stopped on the returning node", func() (bool, string) {
		for _, p := range pids {
			if pidAlive(p) {
				return false, fmt.Sprintf("pid %d alive", p)
			}
		}
		return true, ""
	})
	n, err := tc.c.GetNode(ctx, nodeID)
	if err != nil || n.Status.State != api.NodeStateReady {
		t.Fatalf("returning node: %v %v", n, err)
	}
	tc.converge(svc.ID)
}

func TestGlobalServiceFollowsNodes(t *testing.T) {
	tc := startCluster(t, 2)
	ctx := context.Background()
	spec := sleeper("agent", 0)
	spec.Mode = api.ServiceMode{Global: &api.GlobalService{}}
	svc, err := tc.c.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	if n := len(tc.running(svc.ID)); n != 2 {
		t.Fatalf("%d global tasks on 2 nodes", n)
	}
	w3 := tc.addWorker("w3", "")
	tc.converge(svc.ID)
	if n := len(tc.running(svc.ID)); n != 3 {
		t.Fatalf("%d global tasks after a third node joined", n)
	}
	n, err := tc.c.GetNode(ctx, w3.w.NodeID())
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Availability = api.NodeAvailabilityDrain
	if _, err := tc.c.UpdateNode(ctx, n.ID, n.Meta.Version, n.Spec); err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	for _, tk := range tc.running(svc.ID) {
		if tk.NodeID == w3.w.NodeID() {
			t.Fatal("global task still on the drained node")
		}
	}
	if err := tc.workers[0].w.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 15*time.Second, "global service down to one node", func() (bool, string) {
		r := tc.running(svc.ID)
		return len(r) == 1, fmt.Sprintf("%d running", len(r))
	})
	tc.converge(svc.ID)
}

func TestBadInputChangesNothing(t *testing.T) {
	tc := startCluster(t, 1)
	ctx := context.Background()
	bad := sleeper("web", -1)
	_, err := tc.c.CreateService(ctx, bad)
	if !errors.Is(err, controlapi.ErrInvalidArgument) || !strings.Contains(err.Error(), `service "web": replicas: must be >= 0, got -1`) {
		t.Fatalf("create with -1 replicas: %v", err)
	}
	if ss, _ := tc.c.ListServices(ctx); len(ss) != 0 {
		t.Fatalf("%d services exist after a refused create", len(ss))
	}
	svc, err := tc.c.CreateService(ctx, sleeper("web", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.c.CreateService(ctx, sleeper("web", 1)); !errors.Is(err, store.ErrNameConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	spec := svc.Spec.Copy()
	spec.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.labels.zone=a"}}
	if _, err := tc.c.UpdateService(ctx, svc.ID, svc.Meta.Version, spec); err == nil || !strings.Contains(err.Error(), "constraints[0]") {
		t.Fatalf("bad constraint: %v", err)
	}
	// A stale version is refused: someone else changed the service.
	if _, err := tc.c.ScaleService(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	spec = svc.Spec.Copy()
	spec.Mode.Replicated.Replicas = 7
	if _, err := tc.c.UpdateService(ctx, svc.ID, svc.Meta.Version, spec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	cur, err := tc.c.GetService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Spec.Mode.Replicated.Replicas != 2 || cur.Spec.TaskTemplate.Placement != nil {
		t.Fatalf("refused writes changed the service: %+v", cur.Spec)
	}
	if _, err := tc.c.GetService(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
}

func TestRollingUpdateThroughTheCluster(t *testing.T) {
	tc := startCluster(t, 2)
	ctx := context.Background()
	spec := sleeper("web", 3)
	spec.UpdateConfig = &api.UpdateConfig{Parallelism: 1, Delay: 200 * time.Millisecond, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause}
	svc, err := tc.c.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	svc, _ = tc.c.GetService(ctx, svc.ID)
	spec = svc.Spec.Copy()
	spec.TaskTemplate.Process.Env = []string{"VERSION=2"}
	if _, err := tc.c.UpdateService(ctx, svc.ID, svc.Meta.Version, spec); err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	svc, _ = tc.c.GetService(ctx, svc.ID)
	if svc.UpdateStatus.GetState() != api.UpdateStateCompleted {
		t.Fatalf("update status %+v", svc.UpdateStatus)
	}
	var starts []time.Time
	for _, tk := range tc.running(svc.ID) {
		if len(tk.Spec.Process.Env) != 1 {
			t.Fatalf("task %s runs the old spec", tk.ID)
		}
		starts = append(starts, tk.Status.Timestamp)
	}
	for i := range starts {
		for j := range starts {
			if i != j && starts[i].Sub(starts[j]).Abs() < 200*time.Millisecond {
				t.Fatalf("two tasks started %v apart, closer than the update delay", starts[i].Sub(starts[j]).Abs())
			}
		}
	}
	// Roll back to the first spec.
	if _, err := tc.c.RollbackService(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	tc.converge(svc.ID)
	for _, tk := range tc.running(svc.ID) {
		if len(tk.Spec.Process.Env) != 0 {
			t.Fatalf("task %s not rolled back", tk.ID)
		}
	}
}
