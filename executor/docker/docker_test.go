package docker_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/docker"
	"github.com/apiary-io/apiary/executor/executortest"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

// ignoreTermGrace is the stop grace period of the suite's SIGTERM-ignoring
// task: whole seconds, the engine's unit, and the suite's longest (3 s), as
// Terminate must take less.
const ignoreTermGrace = 3 * time.Second

func TestConformance(t *testing.T) {
	executortest.Run(t, executortest.Harness{
		// Every step is a round trip to the engine, which shares two cores
		// with the rest of CI's tests.
		Slack: 10 * time.Second,
		NewExecutor: func(t *testing.T) executor.Executor {
			// The suite stops tasks right after starting them. As PID 1,
			// the test program would lose a SIGTERM that comes before
			// the Go runtime installed its handlers (seen under load: a
			// 10 s Remove): docker-init as PID 1 forwards it instead.
			_, cfg := newExecutor(t)
			cfg.Init = true
			cfg.ClusterID += "-init"
			return newExecutorWith(t, cfg)
		},
		Task: func(t *testing.T, kind executortest.Kind) *api.Task {
			switch kind {
			case executortest.RunUntilStopped:
				return appTask(imageV1, "run")
			case executortest.ExitZero:
				return appTask(imageV1, "exit", "0")
			case executortest.ExitThree:
				return appTask(imageV1, "exit", "3")
			case executortest.IgnoreTerm:
				task := appTask(imageV1, "ignore-term")
				task.Spec.Container.Env = []string{"READY=" + executortest.Ready}
				g := ignoreTermGrace
				task.Spec.Container.StopGracePeriod = &g
				return task
			case executortest.PrintOutput:
				return appTask(imageV1, append([]string{"print"}, executortest.OutputLines...)...)
			case executortest.Unsupported:
				task := appTask(imageV1)
				task.Spec.Container = nil
				task.Spec.Process = &api.ProcessSpec{Command: []string{"true"}}
				return task
			}
			t.Fatalf("unknown kind %v", kind)
			return nil
		},
	})
}

// start makes the controller of task, removed at the end of the test, and
// starts it.
func start(t *testing.T, e *docker.Executor, task *api.Task) executor.Controller {
	t.Helper()
	c := controller(t, e, task)
	must(t, "Start", c.Start(ctxFor(t, 30*time.Second)))
	return c
}

func controller(t *testing.T, e *docker.Executor, task *api.Task) executor.Controller {
	t.Helper()
	c, err := e.Controller(task)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.Terminate(ctx)
		c.Remove(ctx)
	})
	return c
}

func containerID(t *testing.T, c executor.Controller) string {
	t.Helper()
	st, err := c.Status(ctxFor(t, 10*time.Second))
	must(t, "Status", err)
	if st.ContainerID == "" {
		t.Fatalf("Status = %+v: no container ID", st)
	}
	return st.ContainerID
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	cfg := docker.DefaultConfig()
	cfg.Client = c
	cfg.Labels = map[string]string{"zone": "a"}
	cfg.ClusterID = testClusterPrefix + "describe"
	cfg.Logger = testLogger()
	e := newExecutorWith(t, cfg)
	d, err := e.Describe(ctxFor(t, 10*time.Second))
	must(t, "Describe", err)
	info, err := c.Info(ctxFor(t, 10*time.Second))
	must(t, "Info", err)
	if d.Executor != docker.Kind || d.Resources.NanoCPUs != int64(info.NCPU)*1e9 || d.Resources.MemoryBytes != info.MemTotal {
		t.Errorf("Describe = %+v; engine has %d CPUs, %d bytes", d, info.NCPU, info.MemTotal)
	}
	if d.Engine.EngineVersion != info.ServerVersion || d.Engine.Labels["zone"] != "a" {
		t.Errorf("engine = %+v, want version %s and label zone=a", d.Engine, info.ServerVersion)
	}
	for _, l := range info.Labels {
		k, v, _ := strings.Cut(l, "=")
		if k != "zone" && d.Engine.Labels[k] != v {
			t.Errorf("engine label %s=%s missing from %v", k, v, d.Engine.Labels)
		}
	}
	if d.Hostname != info.Name {
		t.Errorf("hostname %q, want the engine's %q", d.Hostname, info.Name)
	}
	// The test images run here, so the engine's platform is Go's GOOS/GOARCH
	// of the program built for it.
	if d.Platform.OS != "linux" || d.Platform.Architecture == "" || strings.Contains(d.Platform.Architecture, "_") {
		t.Errorf("platform = %+v, want Go names (linux, amd64, arm64...)", d.Platform)
	}
}

func TestImageMissingAndUnpullable(t *testing.T) {
	t.Parallel()
	e, _ := newExecutor(t)
	// A registry address on loopback where nothing listens: the pull fails
	// at once and nothing leaves the machine.
	const ref = "127.0.0.1:1/apiary-test/missing:1"
	task := appTask(ref, "run")
	c := controller(t, e, task)
	start := time.Now()
	err := c.Prepare(ctxFor(t, 60*time.Second))
	if err == nil {
		t.Fatal("Prepare of a missing image that cannot be pulled succeeded")
	}
	want := `image "` + ref + `" not present on this node and pull failed: `
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), task.ID) {
		t.Fatalf("Prepare = %q, want it to name the task and say %q", err, want)
	}
	t.Logf("Prepare failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err := c.Start(ctxFor(t, 60*time.Second)); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Start = %v, want the same error", err)
	}
	if _, err := c.Wait(ctxFor(t, time.Second)); !errors.Is(err, executor.ErrNotStarted) {
		t.Fatalf("Wait = %v, want ErrNotStarted", err)
	}
}

func TestContainerLabelsAndSpec(t *testing.T) {
	t.Parallel()
	e, cfg := newExecutor(t)
	task := appTask(imageV1, "run")
	task.NodeID = cfg.NodeID
	grace := 1500 * time.Millisecond
	task.Spec.Container.StopGracePeriod = &grace
	task.Spec.Container.Labels = map[string]string{"team": "blue", docker.LabelTaskID: "spoofed"}
	task.Spec.Container.Env = []string{"FOO=bar", "APIARY_TASK_ID=spoofed"}
	task.Spec.Container.Dir = "/"
	task.Spec.Container.User = "65534:65534"
	c := controller(t, e, task)
	must(t, "Prepare", c.Prepare(ctxFor(t, 30*time.Second)))
	insp := inspect(t, docker.ContainerName(task))
	if got := strings.TrimPrefix(insp.Name, "/"); got != "apiary.dtest.1."+task.ID {
		t.Errorf("container name %q, want apiary.dtest.1.%s", got, task.ID)
	}
	want := map[string]string{
		docker.LabelCluster:     cfg.ClusterID,
		docker.LabelServiceID:   task.ServiceID,
		docker.LabelServiceName: "dtest",
		docker.LabelTaskID:      task.ID,
		docker.LabelTaskSlot:    "1",
		docker.LabelNodeID:      cfg.NodeID,
		"team":                  "blue",
	}
	for k, v := range want {
		if got := insp.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	if insp.Config.Labels[docker.LabelTask] == "" {
		t.Errorf("no %s label", docker.LabelTask)
	}
	env := insp.Config.Env
	for _, kv := range []string{"FOO=bar", "APIARY_TASK_ID=" + task.ID, "APIARY_SERVICE_NAME=dtest", "APIARY_TASK_SLOT=1", "APIARY_NODE_ID=" + cfg.NodeID, "APIARY_TASK_NAME=dtest.1"} {
		if !slices.Contains(env, kv) {
			t.Errorf("env %q lacks %s", env, kv)
		}
	}
	if slices.Contains(env, "APIARY_TASK_ID=spoofed") {
		t.Errorf("the spec overrode APIARY_TASK_ID: %q", env)
	}
	if !slices.Equal(insp.Config.Entrypoint, []string{"/app"}) || !slices.Equal(insp.Config.Cmd, []string{"run"}) {
		t.Errorf("entrypoint %q cmd %q, want the image's entrypoint and the args", insp.Config.Entrypoint, insp.Config.Cmd)
	}
	if insp.Config.WorkingDir != "/" || insp.Config.User != "65534:65534" {
		t.Errorf("dir %q user %q", insp.Config.WorkingDir, insp.Config.User)
	}
	if p := insp.HostConfig.RestartPolicy.Name; p != container.RestartPolicyDisabled {
		t.Errorf("restart policy %q, want no", p)
	}
	if insp.Config.StopTimeout == nil || *insp.Config.StopTimeout != 2 {
		t.Errorf("stop timeout %v, want 2 s (1.5 s rounded up)", insp.Config.StopTimeout)
	}
	// Before Start the container exists but nothing runs.
	if st, _ := c.Status(ctxFor(t, 10*time.Second)); st.ContainerID != "" {
		t.Errorf("Status after Prepare = %+v, want nothing", st)
	}
	// Command replaces the entrypoint.
	task2 := appTask(imageV1)
	task2.Spec.Container.Command = []string{"/app", "exit", "4"}
	c2 := start(t, e, task2)
	st, err := c2.Wait(ctxFor(t, 30*time.Second))
	must(t, "Wait", err)
	if st.ExitCode != 4 {
		t.Errorf("Command [/app exit 4]: %+v", st)
	}
}

func TestResourceLimits(t *testing.T) {
	t.Parallel()
	e, _ := newExecutor(t)
	task := appTask(imageV1, "run")
	task.Spec.Resources = &api.ResourceRequirements{
		Limits:       &api.Resources{NanoCPUs: 500_000_000, MemoryBytes: 64 << 20},
		Reservations: &api.Resources{NanoCPUs: 100_000_000},
	}
	c := start(t, e, task)
	hc := inspect(t, containerID(t, c)).HostConfig
	if hc.NanoCPUs != 500_000_000 || hc.Memory != 64<<20 || hc.MemorySwap != 64<<20 {
		t.Errorf("host config NanoCPUs %d Memory %d MemorySwap %d, want 0.5 CPU and 64 MiB without swap", hc.NanoCPUs, hc.Memory, hc.MemorySwap)
	}
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	e, _ := newExecutor(t)
	info, err := dockerClient(t).Info(ctxFor(t, 10*time.Second))
	must(t, "Info", err)
	if !info.MemoryLimit {
		t.Skip("the engine reports no memory limit support (MemoryLimit false): the kernel would not enforce the limit")
	}
	task := appTask(imageV1, "oom")
	task.Spec.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 8 << 20}}
	c := start(t, e, task)
	st, err := c.Wait(ctxFor(t, 60*time.Second))
	must(t, "Wait", err)
	if !st.OOMKilled || st.ExitCode != 137 || !st.Failed() || !strings.Contains(st.Message, "out of memory") {
		t.Fatalf("Wait = %+v, want OOMKilled with exit code 137", st)
	}
	cs, err := c.Status(ctxFor(t, 10*time.Second))
	must(t, "Status", err)
	if !cs.OOMKilled || cs.ExitCode != 137 {
		t.Errorf("Status = %+v, want OOMKilled", cs)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e, _ := newExecutor(t)
	check := func(exit string) *api.Task {
		task := appTask(imageV1, "run")
		task.Spec.Container.Env = []string{"HEALTH_EXIT=" + exit}
		task.Spec.HealthCheck = &api.HealthConfig{
			Test:     []string{"CMD", "/app", "health"},
			Interval: 100 * time.Millisecond,
			Timeout:  5 * time.Second,
			Retries:  1,
		}
		return task
	}
	for _, tc := range []struct {
		exit, want string
	}{{"0", api.HealthHealthy}, {"1", api.HealthUnhealthy}} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			c := start(t, e, check(tc.exit))
			hc := c.(executor.HealthChecker)
			first := ""
			testutil.EventuallyWhy(t, 30*time.Second, "health "+tc.want, func() (bool, string) {
				h, err := hc.Health(ctxFor(t, 10*time.Second))
				if err != nil {
					return false, err.Error()
				}
				if first == "" {
					first = h
				}
				return h == tc.want, h
			})
			if first != api.HealthStarting && first != tc.want {
				t.Errorf("first health %q, want starting or %s", first, tc.want)
			}
			cfg := inspect(t, containerID(t, c)).Config.Healthcheck
			if cfg == nil || !slices.Equal(cfg.Test, []string{"CMD", "/app", "health"}) || cfg.Interval != 100*time.Millisecond || cfg.Retries != 1 {
				t.Errorf("engine health check %+v", cfg)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		c := start(t, e, appTask(imageV1, "run"))
		if h, err := c.(executor.HealthChecker).Health(ctxFor(t, 10*time.Second)); h != "" || err != nil {
			t.Errorf("Health without a check = %q, %v; want empty", h, err)
		}
	})
	t.Run("HTTP refused", func(t *testing.T) {
		t.Parallel()
		task := appTask(imageV1, "run")
		task.Spec.HealthCheck = &api.HealthConfig{Test: []string{"HTTP", "http://127.0.0.1:8080/health"}}
		c := controller(t, e, task)
		err := c.Prepare(ctxFor(t, 10*time.Second))
		if err == nil || !strings.Contains(err.Error(), "HTTP checks are not supported by the Docker executor") || !strings.Contains(err.Error(), `["CMD", ...]`) {
			t.Errorf("Prepare with an HTTP health check = %v, want a refusal that says to use CMD", err)
		}
	})
}

func TestKilledOutsideIsReportedPromptly(t *testing.T) {
	t.Parallel()
	e, _ := newExecutor(t)
	c := start(t, e, appTask(imageV1, "run"))
	id := containerID(t, c)
	waited := make(chan struct{})
	var st executor.ExitStatus
	var werr error
	go func() {
		defer close(waited)
		st, werr = c.Wait(ctxFor(t, time.Minute))
	}()
	killed := time.Now()
	must(t, "docker kill", dockerClient(t).ContainerKill(ctxFor(t, 10*time.Second), id, "KILL"))
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return within 5s of docker kill")
	}
	t.Logf("Wait returned %v after docker kill", time.Since(killed).Round(time.Millisecond))
	must(t, "Wait", werr)
	if st.ExitCode != 137 || st.Signal != "SIGKILL" || !st.Failed() || st.OOMKilled {
		t.Errorf("Wait = %+v, want exit code 137, SIGKILL", st)
	}
}

func TestAdoptionAfterAgentRestart(t *testing.T) {
	t.Parallel()
	e1, cfg := newExecutor(t)
	running := appTask(imageV1, "run")
	running.NodeID = cfg.NodeID
	exited := appTask(imageV1, "exit", "3")
	exited.NodeID = cfg.NodeID
	prepared := appTask(imageV1, "run")
	prepared.NodeID = cfg.NodeID
	// The first agent's controllers: the cleanup of e1's cluster removes
	// what they leave.
	ctl := func(task *api.Task) executor.Controller {
		c, err := e1.Controller(task)
		must(t, "Controller", err)
		return c
	}
	c1, x1, p1 := ctl(running), ctl(exited), ctl(prepared)
	must(t, "Start", c1.Start(ctxFor(t, 30*time.Second)))
	must(t, "Start", x1.Start(ctxFor(t, 30*time.Second)))
	must(t, "Prepare", p1.Prepare(ctxFor(t, 30*time.Second)))
	st1, err := c1.Status(ctxFor(t, 10*time.Second))
	must(t, "Status", err)
	_, err = x1.Wait(ctxFor(t, 30*time.Second))
	must(t, "Wait", err)
	// The agent goes away: its containers stay.
	must(t, "Close", e1.Close())
	if err := c1.Shutdown(ctxFor(t, time.Second)); err == nil {
		t.Errorf("Shutdown through a closed executor = nil, want an error")
	}

	e2 := newExecutorWith(t, cfg)
	tasks, err := e2.ListTasks(ctxFor(t, 10*time.Second))
	must(t, "ListTasks", err)
	var ids []string
	for _, tk := range tasks {
		ids = append(ids, tk.ID)
		if tk.Spec.Container == nil || tk.Spec.Container.Image != imageV1 || tk.ServiceAnnotations.Name != "dtest" {
			t.Errorf("listed task %+v, want the task as given", tk)
		}
	}
	want := []string{running.ID, exited.ID, prepared.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("ListTasks = %v, want %v", ids, want)
	}
	// Another node's executor on the same engine lists none of them.
	other := cfg
	other.NodeID = "node-other"
	if ts, err := newExecutorWith(t, other).ListTasks(ctxFor(t, 10*time.Second)); err != nil || len(ts) != 0 {
		t.Errorf("ListTasks of another node = %d tasks, %v; want none", len(ts), err)
	}

	c2, err := e2.Controller(running)
	must(t, "Controller", err)
	st2, err := c2.Status(ctxFor(t, 10*time.Second))
	must(t, "Status", err)
	if st2.ContainerID != st1.ContainerID || st2.PID != st1.PID {
		t.Fatalf("adopted Status %+v, want %+v", st2, st1)
	}
	if st, err := c2.Wait(ctxFor(t, 200*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait of the adopted running task = %+v, %v; want DeadlineExceeded", st, err)
	}
	must(t, "Start of the adopted task", c2.Start(ctxFor(t, 10*time.Second)))
	if st, _ := c2.Status(ctxFor(t, 10*time.Second)); st != st1 {
		t.Fatalf("Start of an adopted task restarted it: %+v, was %+v", st, st1)
	}
	must(t, "Shutdown", c2.Shutdown(ctxFor(t, 30*time.Second)))
	st, err := c2.Wait(ctxFor(t, 10*time.Second))
	must(t, "Wait", err)
	if st.ExitCode != 0 {
		t.Errorf("adopted task after Shutdown: %+v, want exit 0 (it honours SIGTERM)", st)
	}

	x2, err := e2.Controller(exited)
	must(t, "Controller", err)
	st, err = x2.Wait(ctxFor(t, 10*time.Second))
	must(t, "Wait", err)
	if st.ExitCode != 3 {
		t.Errorf("adopted exited task: %+v, want exit 3", st)
	}
	must(t, "Start after the exit", x2.Start(ctxFor(t, 10*time.Second)))
	if st2, _ := x2.Wait(ctxFor(t, 10*time.Second)); st2 != st {
		t.Errorf("Start of an exited adopted task ran it again: %+v then %+v", st, st2)
	}

	p2, err := e2.Controller(prepared)
	must(t, "Controller", err)
	if _, err := p2.Wait(ctxFor(t, time.Second)); !errors.Is(err, executor.ErrNotStarted) {
		t.Errorf("Wait of an adopted prepared task = %v, want ErrNotStarted", err)
	}
	must(t, "Start of an adopted prepared task", p2.Start(ctxFor(t, 30*time.Second)))
	if s, _ := p2.Status(ctxFor(t, 10*time.Second)); s.ContainerID == "" {
		t.Errorf("prepared task not started: %+v", s)
	}

	for _, c := range []executor.Controller{c2, x2, p2} {
		must(t, "Remove", c.Remove(ctxFor(t, 30*time.Second)))
	}
	if ts, err := e2.ListTasks(ctxFor(t, 10*time.Second)); err != nil || len(ts) != 0 {
		t.Errorf("ListTasks after Remove = %d tasks, %v", len(ts), err)
	}
}

// readLines reads a log stream's lines into a channel until it ends.
func readLines(rc io.Reader) (<-chan string, <-chan error) {
	lines := make(chan string, 1000)
	ended := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
		ended <- sc.Err()
		close(lines)
	}()
	return lines, ended
}

func tickOf(line string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(line, "tick "))
	if err != nil || !strings.HasPrefix(line, "tick ") {
		return -1
	}
	return n
}

func TestLogsTailSinceFollow(t *testing.T) {
	t.Parallel()
	e, _ := newExecutor(t)
	task := appTask(imageV1, "tick", "50")
	c := start(t, e, task)
	lr := c.(executor.LogReader)
	rc, err := lr.Logs(ctxFor(t, time.Minute), executor.LogOptions{Follow: true})
	must(t, "Logs(Follow)", err)
	defer rc.Close()
	lines, ended := readLines(rc)
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("Follow ended early: %v", <-ended)
			}
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("no log line within 10s")
		}
		return ""
	}
	if l := next(); !strings.Contains(l, "apiary-test-app v1 task="+task.ID+" started") {
		t.Fatalf("first line %q, want the start line with the task ID", l)
	}
	for tickOf(next()) < 4 {
	}
	// The engine stamps lines when it reads them: leave a margin on both
	// sides of the mark.
	time.Sleep(20 * time.Millisecond)
	mark := time.Now()
	time.Sleep(20 * time.Millisecond)
	for tickOf(next()) < 8 {
	}

	read := func(opts executor.LogOptions) []string {
		t.Helper()
		rc, err := lr.Logs(ctxFor(t, 10*time.Second), opts)
		must(t, "Logs", err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		must(t, "read logs", err)
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	// Tick 4 was written before the mark (it had been read), tick 8 after
	// it (it was read later). How far past tick 4 the container was when
	// the test read it depends on the machine's load, so Since may start
	// at any tick from 5 to 8; what it must not do is start before 5, skip
	// a line, or start past 8.
	since := read(executor.LogOptions{Since: mark})
	first := tickOf(since[0])
	if first < 5 || first > 8 {
		t.Errorf("Logs(Since the mark between ticks 4 and 8) start with %q, want tick 5 to 8", since[0])
	}
	for i, l := range since {
		if tickOf(l) != first+i {
			t.Errorf("Logs(Since) line %d is %q, want tick %d: lines are missing", i, l, first+i)
			break
		}
	}
	tail := read(executor.LogOptions{Tail: 3})
	if len(tail) != 3 || tickOf(tail[0]) < 0 || tickOf(tail[2]) != tickOf(tail[0])+2 {
		t.Errorf("Logs(Tail 3) = %q, want three consecutive ticks", tail)
	}

	must(t, "Shutdown", c.Shutdown(ctxFor(t, 30*time.Second)))
	deadline := time.After(10 * time.Second)
	for last := ""; ; {
		select {
		case l, ok := <-lines:
			if ok {
				last = l
				continue
			}
			if err := <-ended; err != nil {
				t.Fatalf("Follow ended with %v", err)
			}
			if !strings.HasPrefix(last, "stopping on") {
				t.Errorf("last line %q, want the program's stopping line", last)
			}
			return
		case <-deadline:
			t.Fatal("Follow did not end within 10s of the container's exit")
		}
	}
}

func TestMounts(t *testing.T) {
	t.Parallel()
	e, _ := newExecutor(t)
	dir := t.TempDir()
	must(t, "write", os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from the host\n"), 0o644))
	run := func(ms []api.Mount, args ...string) (executor.Controller, string) {
		t.Helper()
		task := appTask(imageV1, args...)
		task.Spec.Container.Mounts = ms
		c := start(t, e, task)
		st, err := c.Wait(ctxFor(t, 30*time.Second))
		must(t, "Wait", err)
		rc, err := c.(executor.LogReader).Logs(ctxFor(t, 10*time.Second), executor.LogOptions{})
		must(t, "Logs", err)
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		if st.ExitCode != 0 {
			t.Fatalf("%v with %+v: %+v: %s", args, ms, st, b)
		}
		return c, string(b)
	}
	if _, out := run([]api.Mount{{Type: api.MountTypeBind, Source: dir, Target: "/in", ReadOnly: true}}, "cat", "/in/in.txt"); out != "from the host\n" {
		t.Errorf("bind mount: %q", out)
	}
	if _, out := run([]api.Mount{{Type: api.MountTypeTmpfs, Target: "/scratch"}}, "write", "/scratch/x", "y"); out != "wrote /scratch/x\n" {
		t.Errorf("tmpfs mount: %q", out)
	}
	c, out := run([]api.Mount{{Type: api.MountTypeVolume, Target: "/vol"}}, "write", "/vol/x", "y")
	if out != "wrote /vol/x\n" {
		t.Errorf("volume mount: %q", out)
	}
	ms := inspect(t, containerID(t, c)).Mounts
	if len(ms) != 1 || ms[0].Type != "volume" || ms[0].Name == "" {
		t.Fatalf("mounts %+v, want one anonymous volume", ms)
	}
	must(t, "Remove", c.Remove(ctxFor(t, 30*time.Second)))
	if _, err := dockerClient(t).VolumeInspect(ctxFor(t, 10*time.Second), ms[0].Name); !cerrdefs.IsNotFound(err) {
		t.Errorf("anonymous volume %s after Remove: %v, want it removed", ms[0].Name, err)
	}
	// A read-only bind mount is read-only.
	task := appTask(imageV1, "write", "/in/out.txt", "no")
	task.Spec.Container.Mounts = []api.Mount{{Type: api.MountTypeBind, Source: dir, Target: "/in", ReadOnly: true}}
	st, err := start(t, e, task).Wait(ctxFor(t, 30*time.Second))
	must(t, "Wait", err)
	if st.ExitCode == 0 {
		t.Errorf("write into a read-only bind mount succeeded")
	}
}

func TestInit(t *testing.T) {
	t.Parallel()
	_, cfg := newExecutor(t)
	cfg.Init = true
	cfg.ClusterID += "-init"
	e := newExecutorWith(t, cfg)
	c := start(t, e, appTask(imageV1, "exit", "3"))
	st, err := c.Wait(ctxFor(t, 30*time.Second))
	must(t, "Wait", err)
	if st.ExitCode != 3 {
		t.Errorf("exit code through docker-init: %+v, want 3", st)
	}
	if hc := inspect(t, containerID(t, c)).HostConfig; hc.Init == nil || !*hc.Init {
		t.Errorf("HostConfig.Init = %v, want true", hc.Init)
	}
	// The program is not PID 1: SIGTERM stops it whenever it comes, by
	// its handler (exit 0) or, before the handler is in place, by the
	// signal's default action (143), not the SIGKILL 10 s later.
	c = start(t, e, appTask(imageV1, "run"))
	must(t, "Shutdown", c.Shutdown(ctxFor(t, 5*time.Second)))
	if st, err := c.Wait(ctxFor(t, 10*time.Second)); err != nil || (st.ExitCode != 0 && st.ExitCode != 143) {
		t.Errorf("Wait after Shutdown = %+v, %v; want exit 0 or 143", st, err)
	}
	// Without Init, the default, the engine adds no init process.
	e2, _ := newExecutor(t)
	c = start(t, e2, appTask(imageV1, "exit", "0"))
	if hc := inspect(t, containerID(t, c)).HostConfig; hc.Init != nil && *hc.Init {
		t.Errorf("HostConfig.Init = true without Config.Init")
	}
}
