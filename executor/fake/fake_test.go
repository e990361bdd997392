package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/executortest"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

const scriptLabel = "fake.script"

// conformanceScripts are the suite's task kinds as scripts.
var conformanceScripts = map[string]Script{
	executortest.RunUntilStopped.String(): {},
	executortest.ExitZero.String():        {ExitAfter: time.Millisecond},
	executortest.ExitThree.String():       {ExitAfter: time.Millisecond, ExitCode: 3},
	executortest.IgnoreTerm.String():      {IgnoreStop: true, Output: []string{executortest.Ready}},
	executortest.PrintOutput.String():     {ExitAfter: time.Millisecond, Output: executortest.OutputLines},
}

// byLabel picks the script named by the task's label.
func byLabel(t *api.Task) Script { return conformanceScripts[t.ServiceAnnotations.Labels[scriptLabel]] }

func TestConformance(t *testing.T) {
	executortest.Run(t, executortest.Harness{
		NewExecutor: func(t *testing.T) executor.Executor { return New(Config{Behavior: byLabel}) },
		Task: func(t *testing.T, kind executortest.Kind) *api.Task {
			task := newTask(kind.String())
			switch kind {
			case executortest.IgnoreTerm:
				g := 300 * time.Millisecond
				task.Spec.Process.StopGracePeriod = &g
			case executortest.Unsupported:
				task.Spec.Process = nil // no runtime at all
			}
			return task
		},
		Slack: 2 * time.Second,
	})
}

func newTask(script string) *api.Task {
	return &api.Task{
		ID:                 executortest.NewTaskID(),
		ServiceAnnotations: api.Annotations{Name: "svc", Labels: map[string]string{scriptLabel: script}},
		Spec:               api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// scripted makes an executor running every task with s, and a started
// controller of a new task.
func scripted(t *testing.T, s Script) (*Executor, executor.Controller, *api.Task) {
	t.Helper()
	e := New(Config{Behavior: func(*api.Task) Script { return s }})
	task := newTask("")
	c, err := e.Controller(task)
	if err != nil {
		t.Fatal(err)
	}
	return e, c, task
}

func TestDescribe(t *testing.T) {
	d, err := New(Config{}).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "fake" || d.Executor != "fake" || d.Platform.OS != "linux" || d.Resources.NanoCPUs != 4e9 || d.Resources.MemoryBytes != 8<<30 {
		t.Errorf("default description = %+v", d)
	}
	cfg := Config{
		Hostname:  "n1",
		Platform:  api.Platform{OS: "windows", Architecture: "arm64"},
		Resources: api.Resources{NanoCPUs: 1e9, MemoryBytes: 1 << 30},
		Labels:    map[string]string{"zone": "a"},
	}
	e := New(cfg)
	cfg.Labels["zone"] = "b" // New copied them
	d, _ = e.Describe(context.Background())
	if d.Hostname != "n1" || d.Platform != cfg.Platform || d.Resources.NanoCPUs != 1e9 || d.Engine.Labels["zone"] != "a" {
		t.Errorf("description = %+v", d)
	}
}

func TestAcceptsContainerTasks(t *testing.T) {
	task := newTask("")
	task.Spec.Process, task.Spec.Container = nil, &api.ContainerSpec{Image: "nginx"}
	c, err := New(Config{}).Controller(task)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFailPrepareAndStart(t *testing.T) {
	boom := errors.New("image not found")
	e, c, task := scripted(t, Script{FailPrepare: boom})
	if err := c.Prepare(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Prepare = %v, want %v", err, boom)
	}
	if err := c.Start(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Start = %v, want the prepare error", err)
	}
	if _, err := c.Wait(context.Background()); !errors.Is(err, executor.ErrNotStarted) {
		t.Errorf("Wait = %v, want ErrNotStarted", err)
	}
	if got := e.Ops(task.ID); !slices.Equal(got, []Op{OpPrepare, OpPrepare}) {
		t.Errorf("ops = %v", got)
	}

	boom = errors.New("port in use")
	e, c, task = scripted(t, Script{FailStart: boom})
	if err := c.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Start = %v, want %v", err, boom)
	}
	evs := e.Events(task.ID)
	if len(evs) != 2 || evs[1].Op != OpStart || evs[1].Detail != "failed: port in use" {
		t.Errorf("events = %v", evs)
	}
}

func TestExitAfter(t *testing.T) {
	e, c, task := scripted(t, Script{ExitAfter: 20 * time.Millisecond, ExitCode: 7})
	start := time.Now()
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := c.Wait(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("exited after %v, want 20ms", d)
	}
	if st.ExitCode != 7 || !st.Failed() || st.Message != "exit status 7" {
		t.Errorf("status = %+v", st)
	}
	if got := e.Ops(task.ID); !slices.Equal(got, []Op{OpPrepare, OpStart, OpExit}) {
		t.Errorf("ops = %v", got)
	}
	if cs, _ := c.Status(context.Background()); cs.ExitCode != 7 || cs.PID == 0 {
		t.Errorf("Status = %+v", cs)
	}
}

func TestOOM(t *testing.T) {
	_, c, _ := scripted(t, Script{ExitAfter: time.Millisecond, OOM: true})
	c.Start(context.Background())
	st, err := c.Wait(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !st.OOMKilled || st.ExitCode != 137 {
		t.Errorf("status = %+v, want OOM-killed", st)
	}
	if cs, _ := c.Status(context.Background()); !cs.OOMKilled {
		t.Errorf("Status = %+v, want OOMKilled", cs)
	}
}

func TestUnhealthy(t *testing.T) {
	_, c, _ := scripted(t, Script{Unhealthy: true, UnhealthyAfter: 30 * time.Millisecond})
	hc := c.(executor.HealthChecker)
	if h, _ := hc.Health(context.Background()); h != api.HealthStarting {
		t.Errorf("Health before Start = %q", h)
	}
	c.Start(context.Background())
	if h, _ := hc.Health(context.Background()); h != api.HealthHealthy {
		t.Errorf("Health right after Start = %q, want healthy", h)
	}
	testutil.EventuallyWhy(t, 5*time.Second, "health unhealthy", func() (bool, string) {
		h, _ := hc.Health(context.Background())
		return h == api.HealthUnhealthy, fmt.Sprintf("health %q", h)
	})
	_, c, _ = scripted(t, Script{})
	c.Start(context.Background())
	if h, _ := c.(executor.HealthChecker).Health(context.Background()); h != api.HealthHealthy {
		t.Errorf("Health of an unscripted task = %q", h)
	}
}

func TestHangOnStop(t *testing.T) {
	e, c, task := scripted(t, Script{HangOnStop: true})
	c.Start(context.Background())
	start := time.Now()
	if err := c.Shutdown(ctxT(t, 50*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Shutdown returned after %v, before its ctx ended", d)
	}
	if err := c.Remove(ctxT(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Remove of a hanging task = %v, want DeadlineExceeded", err)
	}
	if got := e.Running(); !slices.Equal(got, []string{task.ID}) {
		t.Errorf("Running = %v, want the hanging task", got)
	}
	if err := c.Terminate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Wait(context.Background()); st.Signal != "SIGKILL" {
		t.Errorf("status = %+v", st)
	}
	if err := c.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestKill(t *testing.T) {
	e, c, task := scripted(t, Script{})
	if err := e.Kill(task.ID, 2); err == nil {
		t.Error("Kill of a task not started = nil")
	}
	c.Start(context.Background())
	if err := e.Kill(task.ID, 2); err != nil {
		t.Fatal(err)
	}
	st, _ := c.Wait(context.Background())
	if st.ExitCode != 2 || st.Signal != "" {
		t.Errorf("status = %+v", st)
	}
	if err := e.Kill("nope", 1); err == nil {
		t.Error("Kill of an unknown task = nil")
	}
	want := []Op{OpPrepare, OpStart, OpKill, OpExit}
	if got := e.Ops(task.ID); !slices.Equal(got, want) {
		t.Errorf("ops = %v, want %v", got, want)
	}
}

func TestLogs(t *testing.T) {
	_, c, _ := scripted(t, Script{Output: []string{"a", "b", "c"}})
	lr := c.(executor.LogReader)
	read := func(opts executor.LogOptions) string {
		rc, err := lr.Logs(ctxT(t, time.Second), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	if got := read(executor.LogOptions{}); got != "" {
		t.Errorf("Logs before Start = %q", got)
	}
	c.Start(context.Background())
	if got := read(executor.LogOptions{}); got != "a\nb\nc\n" {
		t.Errorf("Logs = %q", got)
	}
	if got := read(executor.LogOptions{Tail: 2}); got != "b\nc\n" {
		t.Errorf("Logs(Tail 2) = %q", got)
	}
	// Follow blocks until the exit; Close ends it too.
	rc, _ := lr.Logs(context.Background(), executor.LogOptions{Follow: true})
	errc := make(chan error, 1)
	go func() { _, err := io.ReadAll(rc); errc <- err }()
	select {
	case err := <-errc:
		t.Fatalf("Follow ended while the task runs: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.Terminate(context.Background())
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Follow ended with %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not end at the exit")
	}
	c.Remove(context.Background())
	if _, err := lr.Logs(context.Background(), executor.LogOptions{}); !errors.Is(err, executor.ErrRemoved) {
		t.Errorf("Logs after Remove = %v, want ErrRemoved", err)
	}
}

func TestListTasks(t *testing.T) {
	e := New(Config{})
	var ids []string
	for range 3 {
		task := newTask("")
		ids = append(ids, task.ID)
		if _, err := e.Controller(task); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := e.Controller(&api.Task{ID: ids[1], Spec: api.TaskSpec{Process: &api.ProcessSpec{}}})
	c.Remove(context.Background())
	got, _ := e.ListTasks(context.Background())
	var gotIDs []string
	for _, task := range got {
		gotIDs = append(gotIDs, task.ID)
	}
	want := []string{ids[0], ids[2]}
	slices.Sort(want)
	if !slices.Equal(gotIDs, want) {
		t.Errorf("ListTasks = %v, want %v", gotIDs, want)
	}
}

// TestManyTasks runs 10000 tasks, half of them with a scripted exit pending:
// no goroutine per task. Then the pending exits are fired by Kill, and 1000
// more tasks exit by their script.
func TestManyTasks(t *testing.T) {
	const n = 10000
	e := New(Config{Behavior: func(t *api.Task) Script {
		switch {
		case t.Slot >= n:
			return Script{ExitAfter: 20 * time.Millisecond, ExitCode: 4}
		case t.Slot%2 == 0:
			return Script{ExitAfter: time.Hour, ExitCode: 1}
		}
		return Script{}
	}})
	startAll := func(from, to int) []executor.Controller {
		var ctrls []executor.Controller
		for i := from; i < to; i++ {
			task := newTask("")
			task.Slot = uint64(i)
			c, err := e.Controller(task)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			ctrls = append(ctrls, c)
		}
		return ctrls
	}
	// waitAll waits for every controller to exit with code.
	waitAll := func(ctrls []executor.Controller, code int) {
		t.Helper()
		ctx := ctxT(t, 20*time.Second)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []string
		for i, c := range ctrls {
			wg.Go(func() {
				st, err := c.Wait(ctx)
				if err != nil || st.ExitCode != code {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("task %d: %+v %v", i, st, err))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("%d exits went wrong, first: %s", len(failures), failures[0])
		}
	}

	before := runtime.NumGoroutine()
	ctrls := startAll(0, n)
	if g := runtime.NumGoroutine(); g > before+10 {
		t.Errorf("%d goroutines for %d tasks (%d before)", g, n, before)
	}
	if got := len(e.Running()); got != n {
		t.Errorf("%d running, want %d", got, n)
	}
	var pending []executor.Controller
	for i := 0; i < n; i += 2 {
		id := ctrls[i].(*controller).task.ID
		if err := e.Kill(id, 1); err != nil {
			t.Fatal(err)
		}
		pending = append(pending, ctrls[i])
	}
	waitAll(pending, 1)
	if got := len(e.Running()); got != n/2 {
		t.Errorf("%d running, want %d", got, n/2)
	}
	waitAll(startAll(n, n+1000), 4)

	ctx := ctxT(t, 20*time.Second)
	for _, c := range ctrls {
		if err := c.Remove(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(e.Running()); got != 0 {
		t.Errorf("%d running after Remove", got)
	}
}

func BenchmarkTaskLifecycle(b *testing.B) {
	e := New(Config{})
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		c, _ := e.Controller(&api.Task{ID: fmt.Sprint(i), Spec: api.TaskSpec{Process: &api.ProcessSpec{}}})
		c.Prepare(ctx)
		c.Start(ctx)
		c.Shutdown(ctx)
		c.Wait(ctx)
		c.Remove(ctx)
	}
}
