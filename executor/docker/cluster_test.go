package docker_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/docker"
	"github.com/apiary-io/apiary/executor/executortest"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

// TestClusterWithDockerExecutor runs a manager and two workers in this
// process, each worker with its own Docker executor on the one engine here:
// a 3-replica service of the test image converges, a container killed with
// docker kill is replaced, a rolling update to the :v2 tag completes, and
// the workers' Logs show the containers' output.
func TestClusterWithDockerExecutor(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	testImages(t)
	cluster := testClusterPrefix + executortest.NewTaskID()[:12]
	ctx := context.Background()

	mcfg := swarm.DefaultManagerConfig()
	mcfg.ClusterSpec.Dispatcher.HeartbeatPeriod = 200 * time.Millisecond
	mcfg.Logger = testLogger()
	mgr, err := swarm.StartManager(ctx, mcfg)
	if err != nil {
		t.Fatal(err)
	}
	// The executors' cleanups (close, remove the cluster's containers) are
	// registered first, so they run after the workers and manager stopped.
	var exs []*docker.Executor
	for i := range 2 {
		cfg := docker.DefaultConfig()
		cfg.Client = c
		cfg.ClusterID = cluster
		cfg.Hostname = fmt.Sprintf("docker-w%d", i+1)
		cfg.Logger = testLogger()
		exs = append(exs, newExecutorWith(t, cfg))
	}
	var workers []*swarm.Worker
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, w := range workers {
			if err := w.Kill(ctx); err != nil {
				t.Logf("kill worker: %v", err)
			}
		}
		mgr.Stop()
	})
	for _, ex := range exs {
		w, err := swarm.StartWorker(ctx, swarm.WorkerConfig{Manager: mgr.Dispatcher(), Executor: ex, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		workers = append(workers, w)
	}
	cl := mgr.Client()

	delay := 100 * time.Millisecond
	grace := 2 * time.Second
	spec := api.ServiceSpec{
		Annotations: api.Annotations{Name: "web"},
		Mode:        api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 3}},
		TaskTemplate: api.TaskSpec{
			Container:     &api.ContainerSpec{Image: imageV1, Args: []string{"run"}, StopGracePeriod: &grace},
			RestartPolicy: &api.RestartPolicy{Condition: api.RestartConditionAny, Delay: &delay},
		},
		UpdateConfig: &api.UpdateConfig{Parallelism: 1, Monitor: 200 * time.Millisecond, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause},
	}
	svc, err := cl.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	converge := func(what string) {
		t.Helper()
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := cl.WaitConverged(cctx, svc.ID); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := mgr.Err(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: converged in %v", what, time.Since(start).Round(time.Millisecond))
	}
	running := func() []*api.Task {
		t.Helper()
		ts, err := cl.ListTasks(ctx, swarm.TaskFilter{Service: svc.ID, DesiredStates: []api.TaskState{api.TaskStateRunning}})
		if err != nil {
			t.Fatal(err)
		}
		var out []*api.Task
		for _, tk := range ts {
			if tk.Status.State == api.TaskStateRunning {
				out = append(out, tk)
			}
		}
		return out
	}
	// checkContainers checks that each running task runs in a running
	// container of image ref, labelled with the task.
	checkContainers := func(ref string) []*api.Task {
		t.Helper()
		tasks := running()
		if len(tasks) != 3 {
			t.Fatalf("%d running tasks, want 3", len(tasks))
		}
		for _, tk := range tasks {
			cs := tk.Status.ContainerStatus
			if cs == nil || cs.ContainerID == "" {
				t.Fatalf("task %s reports no container: %+v", tk.ID, cs)
			}
			insp := inspect(t, cs.ContainerID)
			if !insp.State.Running || insp.Config.Image != ref || insp.Config.Labels[docker.LabelTaskID] != tk.ID || insp.Config.Labels[docker.LabelNodeID] != tk.NodeID {
				t.Fatalf("task %s: container running %v image %s labels %v", tk.ID, insp.State.Running, insp.Config.Image, insp.Config.Labels)
			}
		}
		return tasks
	}

	converge("create")
	tasks := checkContainers(imageV1)
	nodes := map[string]bool{}
	for _, tk := range tasks {
		nodes[tk.NodeID] = true
	}
	if len(nodes) != 2 {
		t.Errorf("3 replicas on %d nodes, want both workers used", len(nodes))
	}

	// docker kill one container: its task fails and a new one replaces it.
	victim := tasks[0]
	killed := time.Now()
	if err := c.ContainerKill(ctx, victim.Status.ContainerStatus.ContainerID, "KILL"); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 60*time.Second, "the killed task to be reported FAILED and replaced", func() (bool, string) {
		all, err := cl.ListTasks(ctx, swarm.TaskFilter{Service: svc.ID})
		if err != nil {
			return false, err.Error()
		}
		failed, replaced := false, false
		for _, tk := range all {
			if tk.ID == victim.ID {
				failed = tk.Status.State == api.TaskStateFailed && tk.Status.ContainerStatus != nil && tk.Status.ContainerStatus.ExitCode == 137
			} else if tk.Slot == victim.Slot && tk.Status.State == api.TaskStateRunning {
				replaced = true
			}
		}
		return failed && replaced, fmt.Sprintf("failed %v replaced %v", failed, replaced)
	})
	t.Logf("killed task FAILED and replaced within %v", time.Since(killed).Round(time.Millisecond))
	converge("after docker kill")
	checkContainers(imageV1)

	// Rolling update to the second tag.
	svc, err = cl.GetService(ctx, svc.ID)
	if err != nil {
		t.Fatal(err)
	}
	spec = svc.Spec.Copy()
	spec.TaskTemplate.Container.Image = imageV2
	if _, err := cl.UpdateService(ctx, svc.ID, svc.Meta.Version, spec); err != nil {
		t.Fatal(err)
	}
	converge("rolling update to v2")
	svc, err = cl.GetService(ctx, svc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if svc.UpdateStatus == nil || svc.UpdateStatus.State != api.UpdateStateCompleted {
		t.Fatalf("update status %+v, want completed", svc.UpdateStatus)
	}
	tasks = checkContainers(imageV2)

	// The workers' Logs show each container's output: the v2 program's
	// start line with its task ID.
	for _, tk := range tasks {
		var w *swarm.Worker
		for _, x := range workers {
			if x.NodeID() == tk.NodeID {
				w = x
			}
		}
		if w == nil {
			t.Fatalf("task %s on unknown node %s", tk.ID, tk.NodeID)
		}
		want := "apiary-test-app v2 task=" + tk.ID + " started"
		testutil.EventuallyWhy(t, 10*time.Second, "the start line in the task's logs", func() (bool, string) {
			rc, err := w.Logs(ctx, tk.ID, executor.LogOptions{})
			if err != nil {
				return false, err.Error()
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(string(b), want), fmt.Sprintf("logs %q", b)
		})
	}

	// `apiaryctl service logs` shows the containers' output: the real CLI,
	// against the manager's control API on a Unix socket.
	mgr.ServeLogsFrom(workers...)
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go mgr.ServeControl(l)
	ctlBin := filepath.Join(t.TempDir(), "apiaryctl")
	if out, err := exec.Command("go", "build", "-o", ctlBin, "github.com/apiary-io/apiary/examples/apiaryctl").CombinedOutput(); err != nil {
		t.Fatalf("build apiaryctl: %v\n%s", err, out)
	}
	testutil.EventuallyWhy(t, 20*time.Second, "every v2 container's start line in apiaryctl service logs", func() (bool, string) {
		out, err := exec.Command(ctlBin, "--socket", sock, "service", "logs", "web").CombinedOutput()
		if err != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		for _, tk := range tasks {
			if !strings.Contains(string(out), "apiary-test-app v2 task="+tk.ID+" started") {
				return false, string(out)
			}
		}
		return true, ""
	})

	// Removing the service removes its containers.
	if err := cl.RemoveService(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 60*time.Second, "the service's containers removed", func() (bool, string) {
		cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", docker.LabelCluster+"="+cluster))})
		if err != nil {
			return false, err.Error()
		}
		return len(cs) == 0, fmt.Sprintf("%d containers left", len(cs))
	})
}
