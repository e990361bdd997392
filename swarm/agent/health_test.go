package agent_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
)

// healthOf returns the healths reported while RUNNING, in order, without
// repeats.
func healthOf(rs []api.TaskStatus) []string {
	var out []string
	for _, r := range rs {
		if r.State != api.TaskStateRunning {
			continue
		}
		if len(out) == 0 || out[len(out)-1] != r.Health {
			out = append(out, r.Health)
		}
	}
	return out
}

// waitHealth waits until the task's last report is RUNNING with health h.
func waitHealth(t *testing.T, d *fakeDispatcher, id, h string) api.TaskStatus {
	t.Helper()
	var last api.TaskStatus
	testutil.EventuallyWhy(t, 15*time.Second, fmt.Sprintf("task %s %s", id, h), func() (bool, string) {
		var ok bool
		last, ok = d.lastState(id)
		return ok && last.State == api.TaskStateRunning && last.Health == h, fmt.Sprintf("last %s/%q; healths %v", last.State, last.Health, healthOf(d.reportsOf(id)))
	})
	return last
}

func checked(id string, test ...string) *api.Task {
	tk := task(id)
	tk.Spec.HealthCheck = &api.HealthConfig{Test: test, Interval: 50 * time.Millisecond, Timeout: time.Second, Retries: 2}
	return tk
}

func TestExecutorHealthIsReported(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	d.assign(checked("t1", "CMD", "probe"))
	last := waitHealth(t, d, "t1", api.HealthHealthy)
	// The reporter sends the latest status: "starting" may be overtaken.
	if got := fmt.Sprint(healthOf(d.reportsOf("t1"))); got != "[starting healthy]" && got != "[healthy]" {
		t.Errorf("healths %v, want starting then healthy", got)
	}
	if last.ContainerStatus == nil || last.ContainerStatus.StartedAt.IsZero() || last.ContainerStatus.PID == 0 {
		t.Errorf("healthy report without start time or PID: %+v", last.ContainerStatus)
	}
	// A task without a check reports no health.
	d.assign(task("t2"))
	if st := d.waitState(t, "t2", api.TaskStateRunning); st.Health != "" {
		t.Errorf("task without a check reports health %q", st.Health)
	}
	_ = n
}

func TestUnhealthyTaskIsStoppedAndFailed(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{Behavior: byScript(map[string]fake.Script{
		"t1": {Unhealthy: true, UnhealthyAfter: 300 * time.Millisecond},
	})}))
	d.assign(checked("t1", "CMD", "probe"))
	waitHealth(t, d, "t1", api.HealthHealthy)
	st := d.waitState(t, "t1", api.TaskStateFailed)
	if st.Health != api.HealthUnhealthy || st.Message != "unhealthy" || !strings.Contains(st.Err, "unhealthy") {
		t.Errorf("final report %+v, want FAILED, message unhealthy, health unhealthy", st)
	}
	if st.ContainerStatus == nil || st.ContainerStatus.StartedAt.IsZero() {
		t.Errorf("final report without the start time: %+v", st.ContainerStatus)
	}
	if ops := n.ex.Ops("t1"); countOp(ops, fake.OpShutdown) != 1 {
		t.Errorf("executor ops %s, want the unhealthy task shut down", opsString(ops))
	}
	if len(n.ex.Running()) != 0 {
		t.Errorf("still running: %v", n.ex.Running())
	}
}

// processNode is an agent over the fake dispatcher with the process
// executor, for checks the agent runs itself.
func processNode(t *testing.T, d *fakeDispatcher) {
	t.Helper()
	pc := process.DefaultConfig()
	pc.DataDir, pc.Hostname, pc.Logger = t.TempDir(), "proc", testutil.DiscardLogger()
	ex, err := process.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Dispatcher: d, Executor: ex, NodeID: d.nodeID, Logger: testutil.DiscardLogger(), ReconnectBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = a.ShutdownTasks(sctx)
		_ = ex.Close()
	})
	select {
	case <-a.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not register")
	}
}

func sleeperTask(id string, env ...string) *api.Task {
	tk := task(id)
	grace := time.Second
	tk.Spec.Process = &api.ProcessSpec{Command: []string{"/bin/sh", "-c", "exec sleep 600"}, Env: env, StopGracePeriod: &grace}
	return tk
}

func TestAgentRunsCommandChecksWithTaskEnv(t *testing.T) {
	d := newFakeDispatcher()
	processNode(t, d)
	flag := filepath.Join(t.TempDir(), "ready")
	tk := sleeperTask("t1", "FLAG="+flag)
	tk.Spec.HealthCheck = &api.HealthConfig{Test: []string{"CMD-SHELL", `test -f "$FLAG" && test "$APIARY_TASK_ID" = t1`}, Interval: 50 * time.Millisecond, Timeout: time.Second, Retries: 3}
	d.assign(tk)
	st := d.waitState(t, "t1", api.TaskStateRunning)
	if st.Health != api.HealthStarting {
		t.Fatalf("first RUNNING report health %q, want starting", st.Health)
	}
	// Failing checks before the first success, but within no start period:
	// the task turns unhealthy... unless it becomes healthy first. Create
	// the flag at once so it does.
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, d, "t1", api.HealthHealthy)
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	st = d.waitState(t, "t1", api.TaskStateFailed)
	if st.Health != api.HealthUnhealthy || !strings.Contains(st.Err, "3 consecutive health checks failed") {
		t.Fatalf("final report %+v, want unhealthy after 3 failures", st)
	}
	if cs := st.ContainerStatus; cs == nil || cs.ExitCode == 0 {
		t.Fatalf("unhealthy process not stopped by a signal: %+v", cs)
	}

	// CMD (no shell) runs the program with the task's environment too.
	d.assign(func() *api.Task {
		tk := sleeperTask("t2", "WANT=yes")
		tk.Spec.HealthCheck = &api.HealthConfig{Test: []string{"CMD", "/bin/sh", "-c", `test "$WANT" = yes`}, Interval: 50 * time.Millisecond, Retries: 1}
		return tk
	}())
	waitHealth(t, d, "t2", api.HealthHealthy)
}

func TestAgentStartPeriodAndTimeout(t *testing.T) {
	d := newFakeDispatcher()
	processNode(t, d)
	// A check that always fails, with a start period: the task stays
	// "starting" during the start period, then turns unhealthy.
	tk := sleeperTask("t1")
	tk.Spec.HealthCheck = &api.HealthConfig{Test: []string{"CMD", "false"}, Interval: 50 * time.Millisecond, Retries: 1, StartPeriod: 700 * time.Millisecond}
	d.assign(tk)
	running := d.waitState(t, "t1", api.TaskStateRunning)
	st := d.waitState(t, "t1", api.TaskStateFailed)
	if took := st.Timestamp.Sub(running.Timestamp); took < 700*time.Millisecond {
		t.Fatalf("unhealthy %v after start, within the 700ms start period", took)
	}
	if got := healthOf(d.reportsOf("t1")); fmt.Sprint(got) != "[starting]" {
		t.Fatalf("healths while running %v, want starting only", got)
	}

	// A check slower than its timeout fails.
	tk = sleeperTask("t2")
	tk.Spec.HealthCheck = &api.HealthConfig{Test: []string{"CMD-SHELL", "sleep 5"}, Interval: 50 * time.Millisecond, Timeout: 100 * time.Millisecond, Retries: 1}
	d.assign(tk)
	st = d.waitState(t, "t2", api.TaskStateFailed)
	if !strings.Contains(st.Err, "timed out after 100ms") {
		t.Fatalf("err %q, want a timeout", st.Err)
	}
}

func TestAgentRunsHTTPAndTCPChecks(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusFound) // 3xx is healthy, and not followed
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := int(code.Load()); c == http.StatusFound {
			http.Redirect(w, r, "http://127.0.0.1:1/nowhere", c)
		} else {
			w.WriteHeader(c)
		}
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	d := newFakeDispatcher()
	processNode(t, d)
	h := sleeperTask("http")
	h.Spec.HealthCheck = &api.HealthConfig{Test: []string{"HTTP", srv.URL + "/health"}, Interval: 50 * time.Millisecond, Timeout: time.Second, Retries: 2}
	tcp := sleeperTask("tcp")
	tcp.Spec.HealthCheck = &api.HealthConfig{Test: []string{"TCP", ":" + port}, Interval: 50 * time.Millisecond, Timeout: time.Second, Retries: 2}
	d.assign(h)
	d.assign(tcp)
	waitHealth(t, d, "http", api.HealthHealthy)
	waitHealth(t, d, "tcp", api.HealthHealthy)

	code.Store(http.StatusServiceUnavailable)
	if st := d.waitState(t, "http", api.TaskStateFailed); !strings.Contains(st.Err, "503") {
		t.Fatalf("http: err %q, want the 503", st.Err)
	}
	ln.Close()
	if st := d.waitState(t, "tcp", api.TaskStateFailed); st.Health != api.HealthUnhealthy {
		t.Fatalf("tcp: %+v", st)
	}
}

func TestHealthNoneDisablesChecks(t *testing.T) {
	d := newFakeDispatcher()
	processNode(t, d)
	tk := sleeperTask("t1")
	tk.Spec.HealthCheck = &api.HealthConfig{Test: []string{"NONE"}}
	d.assign(tk)
	if st := d.waitState(t, "t1", api.TaskStateRunning); st.Health != "" {
		t.Fatalf("health %q with checks disabled", st.Health)
	}
}
