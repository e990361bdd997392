package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// lifecycle is the path of a task from ASSIGNED to RUNNING on a worker.
var lifecycle = []api.TaskState{api.TaskStateAccepted, api.TaskStatePreparing, api.TaskStateReady, api.TaskStateStarting, api.TaskStateRunning}

// checkOrdered fails unless the reported states only move forward and each
// is one of allowed.
func checkOrdered(t *testing.T, id string, rs []api.TaskStatus, allowed []api.TaskState) {
	t.Helper()
	states := statesOf(rs)
	for i, s := range states {
		if !slices.Contains(allowed, s) {
			t.Errorf("task %s reported %s, not one of %s (reports: %s)", id, s, stateNames(allowed), stateNames(states))
		}
		if i > 0 && s <= states[i-1] {
			t.Errorf("task %s reports went from %s to %s (reports: %s)", id, states[i-1], s, stateNames(states))
		}
	}
}

func byScript(scripts map[string]fake.Script) func(*api.Task) fake.Script {
	return func(t *api.Task) fake.Script { return scripts[t.ID] }
}

func TestNewRequiresDispatcherAndExecutor(t *testing.T) {
	if _, err := agent.New(agent.Config{Executor: fake.New(fake.Config{})}); err == nil {
		t.Error("New without a Dispatcher succeeded")
	}
	if _, err := agent.New(agent.Config{Dispatcher: newFakeDispatcher()}); err == nil {
		t.Error("New without an Executor succeeded")
	}
}

func TestRegistersWithExecutorDescription(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{Hostname: "worker-7", Labels: map[string]string{"zone": "b"}})
	n := newNode(t, d, ex)
	if got := n.a.NodeID(); got != d.nodeID {
		t.Errorf("NodeID = %q, want %q", got, d.nodeID)
	}
	d.mu.Lock()
	req := d.registrations[0]
	d.mu.Unlock()
	want, _ := ex.Describe(context.Background())
	if req.NodeID != d.nodeID || req.Description.Hostname != "worker-7" || req.Description.Executor != fake.Kind ||
		req.Description.Engine.Labels["zone"] != "b" || req.Description.Resources.NanoCPUs != want.Resources.NanoCPUs {
		t.Errorf("register request = %+v, want the executor's description %+v", req, want)
	}
}

func TestTaskRunsThroughLifecycleInOrder(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	d.assign(task("t1"))
	last := d.waitState(t, "t1", api.TaskStateRunning)
	checkOrdered(t, "t1", d.reportsOf("t1"), lifecycle)
	if last.ContainerStatus == nil || last.ContainerStatus.PID == 0 {
		t.Errorf("RUNNING report has no PID: %+v", last.ContainerStatus)
	}
	if last.Timestamp.IsZero() {
		t.Error("report without timestamp")
	}
	if got := n.ex.Ops("t1"); !slices.Equal(got, []fake.Op{fake.OpPrepare, fake.OpStart}) {
		t.Errorf("executor ops = %s, want prepare,start", opsString(got))
	}
	if got := n.ex.Running(); !slices.Equal(got, []string{"t1"}) {
		t.Errorf("running = %v, want [t1]", got)
	}
}

func TestTaskHeldAtReadyUntilDesiredRunning(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	held := task("t1")
	held.DesiredState = api.TaskStateReady
	d.assign(held)
	d.waitState(t, "t1", api.TaskStateReady)
	// READY is reported after Prepare and before the runner looks at the
	// desired state again, so Start cannot have happened yet — and must
	// not, while the task is held.
	if got := n.ex.Ops("t1"); !slices.Equal(got, []fake.Op{fake.OpPrepare}) {
		t.Fatalf("ops of a task held at READY = %s, want prepare only", opsString(got))
	}
	// An unrelated assignment change goes through the runner's loop again
	// without starting the held task.
	d.assign(task("other"))
	d.waitState(t, "other", api.TaskStateRunning)
	if got := n.ex.Ops("t1"); countOp(got, fake.OpStart) != 0 {
		t.Fatalf("held task started: ops %s", opsString(got))
	}

	d.setDesired("t1", api.TaskStateRunning)
	d.waitState(t, "t1", api.TaskStateRunning)
	if got := n.ex.Ops("t1"); !slices.Equal(got, []fake.Op{fake.OpPrepare, fake.OpStart}) {
		t.Errorf("ops = %s, want prepare,start", opsString(got))
	}
	checkOrdered(t, "t1", d.reportsOf("t1"), lifecycle)
}

func TestDesiredShutdownStopsTask(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	d.assign(task("t1"))
	d.waitState(t, "t1", api.TaskStateRunning)
	d.setDesired("t1", api.TaskStateShutdown)
	last := d.waitState(t, "t1", api.TaskStateShutdown)
	if got := n.ex.Ops("t1"); countOp(got, fake.OpShutdown) != 1 || countOp(got, fake.OpRemove) != 0 {
		t.Errorf("ops = %s, want one shutdown and no remove", opsString(got))
	}
	if len(n.ex.Running()) != 0 {
		t.Errorf("still running: %v", n.ex.Running())
	}
	if last.ContainerStatus == nil || last.ContainerStatus.ExitCode != 143 {
		t.Errorf("SHUTDOWN report container status = %+v, want exit code 143 (SIGTERM)", last.ContainerStatus)
	}
	checkOrdered(t, "t1", d.reportsOf("t1"), append(slices.Clone(lifecycle), api.TaskStateShutdown))
}

func TestDesiredShutdownBeforeStartReportsShutdown(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	held := task("t1")
	held.DesiredState = api.TaskStateReady
	d.assign(held)
	d.waitState(t, "t1", api.TaskStateReady)
	d.setDesired("t1", api.TaskStateShutdown)
	d.waitState(t, "t1", api.TaskStateShutdown)
	if got := n.ex.Ops("t1"); countOp(got, fake.OpStart) != 0 {
		t.Errorf("a task shut down before it started was started: %s", opsString(got))
	}
}

func TestRemovedTaskIsRemovedAndForgotten(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{Behavior: byScript(map[string]fake.Script{"t1": {Output: []string{"hello"}}})}))
	d.assign(task("t1"))
	d.waitState(t, "t1", api.TaskStateRunning)
	rc, err := n.a.Logs(context.Background(), "t1", executor.LogOptions{})
	if err != nil {
		t.Fatalf("Logs of a running task: %v", err)
	}
	rc.Close()

	d.unassign("t1")
	n.waitOp("t1", fake.OpRemove)
	if len(n.ex.Running()) != 0 {
		t.Errorf("still running after removal: %v", n.ex.Running())
	}
	testutil.EventuallyWhy(t, 10*time.Second, "task forgotten", func() (bool, string) {
		_, err := n.a.Logs(context.Background(), "t1", executor.LogOptions{})
		return errors.Is(err, agent.ErrNoLogs), "Logs err: " + errString(err)
	})
	if ops := n.ex.Ops("t1"); countOp(ops, fake.OpRemove) != 1 {
		t.Errorf("ops = %s, want one remove", opsString(ops))
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestCompleteSetWithoutTaskRemovesIt(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	d.assign(task("keep"))
	d.assign(task("drop"))
	d.waitState(t, "keep", api.TaskStateRunning)
	d.waitState(t, "drop", api.TaskStateRunning)
	d.forgetSilently("drop")
	d.sendComplete()
	n.waitOp("drop", fake.OpRemove)
	if got := n.ex.Running(); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("running = %v, want [keep]", got)
	}
	if ops := n.ex.Ops("keep"); !slices.Equal(ops, []fake.Op{fake.OpPrepare, fake.OpStart}) {
		t.Errorf("task still in the set was disturbed: ops %s", opsString(ops))
	}
}

func TestTaskExitReported(t *testing.T) {
	tests := []struct {
		name      string
		script    fake.Script
		kill      *int // exit code for Executor.Kill, instead of the script
		want      api.TaskState
		exitCode  int
		oom       bool
		errSubstr string
	}{
		{name: "exit 0 by itself", script: fake.Script{ExitAfter: time.Millisecond}, want: api.TaskStateComplete},
		{name: "exit 2 by itself", script: fake.Script{ExitAfter: time.Millisecond, ExitCode: 2}, want: api.TaskStateFailed, exitCode: 2, errSubstr: "exit status 2"},
		{name: "killed with 0", kill: new(int), want: api.TaskStateComplete},
		{name: "killed with 3", kill: func() *int { c := 3; return &c }(), want: api.TaskStateFailed, exitCode: 3, errSubstr: "3"},
		{name: "out of memory", script: fake.Script{ExitAfter: time.Millisecond, OOM: true}, want: api.TaskStateFailed, exitCode: 137, oom: true, errSubstr: "out of memory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDispatcher()
			n := newNode(t, d, fake.New(fake.Config{Behavior: byScript(map[string]fake.Script{"t1": tc.script})}))
			d.assign(task("t1"))
			if tc.kill != nil {
				d.waitState(t, "t1", api.TaskStateRunning)
				if err := n.ex.Kill("t1", *tc.kill); err != nil {
					t.Fatal(err)
				}
			}
			last := d.waitState(t, "t1", tc.want)
			cs := last.ContainerStatus
			if cs == nil || cs.ExitCode != tc.exitCode || cs.OOMKilled != tc.oom {
				t.Errorf("container status = %+v, want exit code %d oom %v", cs, tc.exitCode, tc.oom)
			}
			if tc.errSubstr == "" && last.Err != "" {
				t.Errorf("Err = %q on a clean exit", last.Err)
			}
			if tc.errSubstr != "" && !strings.Contains(last.Err, tc.errSubstr) {
				t.Errorf("Err = %q, want it to mention %q", last.Err, tc.errSubstr)
			}
			checkOrdered(t, "t1", d.reportsOf("t1"), append(slices.Clone(lifecycle), tc.want))
			if ops := n.ex.Ops("t1"); countOp(ops, fake.OpShutdown)+countOp(ops, fake.OpRemove) != 0 {
				t.Errorf("a task that ended by itself was stopped or removed: %s", opsString(ops))
			}
		})
	}
}

func TestTaskFailuresBeforeRunning(t *testing.T) {
	tests := []struct {
		name   string
		script fake.Script
		task   func(*api.Task)
		want   api.TaskState
		errSub string
		ops    []fake.Op
	}{
		{name: "prepare fails", script: fake.Script{FailPrepare: errors.New("image not found")}, want: api.TaskStateRejected, errSub: "image not found", ops: []fake.Op{fake.OpPrepare}},
		{name: "start fails", script: fake.Script{FailStart: errors.New("exec format error")}, want: api.TaskStateFailed, errSub: "exec format error", ops: []fake.Op{fake.OpPrepare, fake.OpStart}},
		{name: "executor refuses", task: func(t *api.Task) { t.Spec.Process = nil }, want: api.TaskStateRejected, errSub: "runtime", ops: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDispatcher()
			n := newNode(t, d, fake.New(fake.Config{Behavior: byScript(map[string]fake.Script{"t1": tc.script})}))
			tk := task("t1")
			if tc.task != nil {
				tc.task(tk)
			}
			d.assign(tk)
			last := d.waitState(t, "t1", tc.want)
			if !strings.Contains(last.Err, tc.errSub) {
				t.Errorf("Err = %q, want it to mention %q", last.Err, tc.errSub)
			}
			if got := n.ex.Ops("t1"); !slices.Equal(got, tc.ops) {
				t.Errorf("ops = %s, want %s", opsString(got), opsString(tc.ops))
			}
			checkOrdered(t, "t1", d.reportsOf("t1"), append(slices.Clone(lifecycle), tc.want))
			// A failed task is not retried by the worker: the orchestrator
			// replaces it. A later assignment change leaves it alone.
			d.assign(task("t2"))
			d.waitState(t, "t2", api.TaskStateRunning)
			if got := n.ex.Ops("t1"); !slices.Equal(got, tc.ops) {
				t.Errorf("failed task retried: ops %s", opsString(got))
			}
			if s, _ := d.lastState("t1"); s.State != tc.want {
				t.Errorf("failed task then reported %s", s.State)
			}
		})
	}
}

func TestReportsMadeWhileDisconnectedAreDeliveredAfterReconnect(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	d.assign(task("t1"))
	d.waitState(t, "t1", api.TaskStateRunning)
	sessions := d.sessionCount()

	d.setDown(true)
	if err := n.ex.Kill("t1", 0); err != nil {
		t.Fatal(err)
	}
	// The exit happens while the manager is unreachable: the report is
	// tried and fails (or waits for a session), and is not lost.
	n.waitOp("t1", fake.OpExit)
	if s, _ := d.lastState("t1"); s.State != api.TaskStateRunning {
		t.Fatalf("a report was accepted while the manager was down: %s", s.State)
	}
	d.setDown(false)
	last := d.waitState(t, "t1", api.TaskStateComplete)
	if d.sessionCount() <= sessions {
		t.Errorf("no new session after the manager came back (%d sessions)", d.sessionCount())
	}
	if last.ContainerStatus == nil || last.ContainerStatus.ExitCode != 0 {
		t.Errorf("container status = %+v, want exit 0", last.ContainerStatus)
	}
	// The task ran on through the outage: it was started once.
	if ops := n.ex.Ops("t1"); countOp(ops, fake.OpStart) != 1 {
		t.Errorf("ops = %s, want one start", opsString(ops))
	}
}

func TestTasksSurviveManagerOutage(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	d.assign(task("t1"))
	d.waitState(t, "t1", api.TaskStateRunning)
	sessions := d.sessionCount()
	d.setDown(true)
	testutil.EventuallyWhy(t, 10*time.Second, "agent to notice the outage", func() (bool, string) {
		return d.refusedCalls() > 0, "no call refused yet"
	})
	d.setDown(false)
	testutil.EventuallyWhy(t, 10*time.Second, "new session", func() (bool, string) {
		return d.sessionCount() > sessions, "no new session yet"
	})
	// Messages are applied in order: once a task assigned after the new
	// session's complete set runs, that set was applied too.
	d.assign(task("t2"))
	d.waitState(t, "t2", api.TaskStateRunning)
	if got := n.ex.Running(); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("running = %v, want [t1 t2]", got)
	}
	if ops := n.ex.Ops("t1"); !slices.Equal(ops, []fake.Op{fake.OpPrepare, fake.OpStart}) {
		t.Errorf("ops = %s, want prepare,start only", opsString(ops))
	}
}

func TestTasksKeepRunningWhenAgentStops(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	n := newNode(t, d, ex)
	d.assign(task("t1"))
	d.assign(task("t2"))
	d.waitState(t, "t1", api.TaskStateRunning)
	d.waitState(t, "t2", api.TaskStateRunning)
	n.stop()
	if got := ex.Running(); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("running after the agent stopped = %v, want [t1 t2]", got)
	}
	for _, id := range []string{"t1", "t2"} {
		if ops := ex.Ops(id); !slices.Equal(ops, []fake.Op{fake.OpPrepare, fake.OpStart}) {
			t.Errorf("task %s ops = %s, want prepare,start (no shutdown)", id, opsString(ops))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.a.ShutdownTasks(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ex.Running(); len(got) != 0 {
		t.Errorf("running after ShutdownTasks = %v", got)
	}
	for _, id := range []string{"t1", "t2"} {
		if ops := ex.Ops(id); countOp(ops, fake.OpTerminate) != 1 {
			t.Errorf("task %s ops = %s, want a terminate", id, opsString(ops))
		}
	}
}

func TestShutdownTasksWhileRunning(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	n := newNode(t, d, ex)
	d.assign(task("t1"))
	d.waitState(t, "t1", api.TaskStateRunning)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.a.ShutdownTasks(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ex.Running(); len(got) != 0 {
		t.Errorf("running after ShutdownTasks = %v", got)
	}
	if ops := ex.Ops("t1"); countOp(ops, fake.OpTerminate) != 1 {
		t.Errorf("ops = %s, want a terminate", opsString(ops))
	}
}

func TestRestartedAgentAdoptsRunningTask(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	first := newNode(t, d, ex)
	d.assign(task("t1"))
	d.waitState(t, "t1", api.TaskStateRunning)
	first.stop()

	second := newNode(t, d, ex)
	// The new agent follows the task: its exit is reported.
	// Kill may race the new runner's adoption; the exit is reported
	// either way, since the runner reads the exit status from the
	// executor.
	if err := ex.Kill("t1", 4); err != nil {
		t.Fatal(err)
	}
	last := d.waitState(t, "t1", api.TaskStateFailed)
	if last.ContainerStatus == nil || last.ContainerStatus.ExitCode != 4 {
		t.Errorf("container status = %+v, want exit 4", last.ContainerStatus)
	}
	if ops := second.ex.Ops("t1"); countOp(ops, fake.OpStart) != 1 {
		t.Errorf("ops = %s, want the task started once, by the first agent", opsString(ops))
	}
}

func TestOrphanedTaskStillRunningOnReturningNodeIsShutDown(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	first := newNode(t, d, ex)
	d.assign(task("t1"))
	d.waitState(t, "t1", api.TaskStateRunning)
	// The node drops out; the managers orphan its task and want it shut
	// down, and will not take reports for it any more.
	first.stop()
	d.mu.Lock()
	tk := d.tasks["t1"]
	tk.Status = api.TaskStatus{State: api.TaskStateOrphaned, Message: "node heartbeat failure"}
	tk.DesiredState = api.TaskStateShutdown
	d.mu.Unlock()
	if got := ex.Running(); !slices.Equal(got, []string{"t1"}) {
		t.Fatalf("task not running on the node while it was away: %v", got)
	}
	reports := len(d.reportsOf("t1"))

	second := newNode(t, d, ex)
	second.waitOp("t1", fake.OpShutdown)
	testutil.EventuallyWhy(t, 10*time.Second, "orphaned task stopped", func() (bool, string) {
		return len(ex.Running()) == 0, "running: " + strings.Join(ex.Running(), ",")
	})
	if got := len(d.reportsOf("t1")); got != reports {
		t.Errorf("the terminal (orphaned) task was reported again: %s", stateNames(statesOf(d.reportsOf("t1"))))
	}
}

func TestRemovedNodeEndsRun(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	n := newNode(t, d, ex)
	d.mu.Lock()
	d.removed = true
	d.mu.Unlock()
	d.setDown(true) // end the session
	d.setDown(false)
	select {
	case err := <-n.done:
		if !errors.Is(err, dispatcher.ErrNodeRemoved) {
			t.Errorf("Run returned %v, want ErrNodeRemoved", err)
		}
		n.cancel()
		n.cancel = nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end for a removed node")
	}
}

func TestLogsOfUnknownTask(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	if _, err := n.a.Logs(context.Background(), "nope", executor.LogOptions{}); !errors.Is(err, agent.ErrNoLogs) {
		t.Errorf("Logs of an unknown task: err = %v, want ErrNoLogs", err)
	}
}

func TestRestartedAgentReportsRunningForTaskLeftStarting(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	first := newNode(t, d, ex)
	d.assign(task("t1"))
	d.waitState(t, "t1", api.TaskStateRunning)
	first.stop()
	// The managers never got the RUNNING report (lost with a failed
	// manager): they believe the task is still starting.
	d.mu.Lock()
	d.tasks["t1"].Status = api.TaskStatus{State: api.TaskStateStarting, Message: "starting"}
	d.reports = nil
	d.mu.Unlock()

	second := newNode(t, d, ex)
	last := d.waitState(t, "t1", api.TaskStateRunning)
	if last.ContainerStatus == nil || last.ContainerStatus.PID == 0 {
		t.Errorf("RUNNING report of the adopted task has no PID: %+v", last.ContainerStatus)
	}
	if ops := second.ex.Ops("t1"); countOp(ops, fake.OpStart) != 1 {
		t.Errorf("ops = %s, want the task started once", opsString(ops))
	}
}
