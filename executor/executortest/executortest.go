// Package executortest is the conformance suite every executor.Executor
// passes, so the agent can rely on one behaviour whatever runs its tasks:
// the process, fake and Docker executors call Run from their tests.
//
// The suite knows nothing of runtimes: the Harness makes the executor and
// builds a task of each Kind (a shell script, a scripted fake, a container
// of a test image). The behaviour it checks, beyond the comments of
// executor.Controller:
//
//   - Start without Prepare prepares first (it is not an error).
//   - Start of a task that ran already does nothing: a task runs once.
//   - Prepare, Start, Shutdown, Terminate and Remove return nil when repeated,
//     and Shutdown, Terminate and Remove return nil before Start.
//   - Wait before Start returns executor.ErrNotStarted; Wait after the exit
//     returns the same status to every caller, however many and whenever.
//   - Wait, and Shutdown of a task that ignores SIGTERM, return ctx.Err()
//     when ctx ends first; the task keeps running.
//   - Shutdown of a task that ignores SIGTERM ends it after its stop grace
//     period, not before; Terminate ends any task at once.
//   - Remove of a running task stops it.
//   - Status reports nothing before Start, a PID or container ID after.
//   - Logs (when the controller is a LogReader) return the output, honour
//     Tail, and Follow ends once the task exited and its output is read.
//   - Controller refuses a task for another runtime with
//     executor.ErrRuntimeMismatch, naming the task.
//   - Two controllers for the same task ID drive the same process.
package executortest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// Kind is a task the suite needs the harness to build.
type Kind int

const (
	// RunUntilStopped runs until it is stopped; SIGTERM ends it at once.
	// Leave its stop grace period at the default (10 s) or longer: the
	// suite checks that Terminate does not wait for it.
	RunUntilStopped Kind = iota
	// ExitZero exits with code 0 soon after it starts.
	ExitZero
	// ExitThree exits with code 3 soon after it starts.
	ExitThree
	// IgnoreTerm prints the line Ready once it ignores SIGTERM, then runs
	// until killed. Give it a short stop grace period (1 to 3 s).
	IgnoreTerm
	// PrintOutput prints OutputLines, one a line, in order (the second on
	// stderr), then exits 0.
	PrintOutput
	// Unsupported is a task the executor must refuse: one for another
	// runtime. Return nil if the executor accepts every task.
	Unsupported
)

func (k Kind) String() string {
	return [...]string{"RunUntilStopped", "ExitZero", "ExitThree", "IgnoreTerm", "PrintOutput", "Unsupported"}[k]
}

// Ready is the line an IgnoreTerm task prints once it ignores SIGTERM.
const Ready = "apiary-conformance-ready"

// OutputLines is what a PrintOutput task prints.
var OutputLines = []string{"apiary-conformance-1", "apiary-conformance-2", "apiary-conformance-3"}

// Harness adapts the suite to one executor.
type Harness struct {
	// NewExecutor returns a fresh executor; it is cleaned up by t.Cleanup.
	NewExecutor func(t *testing.T) executor.Executor
	// Task builds a task of the kind with a new ID (NewTaskID) each call.
	Task func(t *testing.T, kind Kind) *api.Task
	// Slack is how long starting, stopping or exiting may take beyond its
	// nominal time. Zero means 5 s.
	Slack time.Duration
}

// NewTaskID returns a random task ID in the style of the cluster's IDs.
func NewTaskID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Run runs the conformance suite. Its subtests run in parallel.
func Run(t *testing.T, h Harness) {
	if h.Slack == 0 {
		h.Slack = 5 * time.Second
	}
	s := &suite{h: h}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Lifecycle", s.lifecycle},
		{"StartWithoutPrepare", s.startWithoutPrepare},
		{"Idempotent", s.idempotent},
		{"StartAfterExit", s.startAfterExit},
		{"WaitBeforeStart", s.waitBeforeStart},
		{"WaitAfterExit", s.waitAfterExit},
		{"WaitContext", s.waitContext},
		{"ShutdownRunning", s.shutdownRunning},
		{"ShutdownGrace", s.shutdownGrace},
		{"ShutdownContext", s.shutdownContext},
		{"Terminate", s.terminate},
		{"BeforeStart", s.beforeStart},
		{"ExitCodes", s.exitCodes},
		{"Status", s.status},
		{"Logs", s.logs},
		{"LogsFollow", s.logsFollow},
		{"RemoveRunning", s.removeRunning},
		{"SameController", s.sameController},
		{"Unsupported", s.unsupported},
		{"Concurrent", s.concurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

type suite struct{ h Harness }

// ctx is a context that ends after d.
// op bounds one operation by the slack: every step of a sequence gets its
// own, as the harness documents, so a loaded machine's slow steps do not
// add up against one deadline.
func (s *suite) op(t *testing.T) context.Context { return ctxFor(t, s.h.Slack) }

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// controller makes an executor and the controller of a new task of kind,
// which is killed and removed at the end of the test.
func (s *suite) controller(t *testing.T, kind Kind) (executor.Controller, *api.Task, executor.Executor) {
	t.Helper()
	e := s.h.NewExecutor(t)
	task := s.h.Task(t, kind)
	if task == nil {
		t.Fatalf("harness built no %v task", kind)
	}
	c, err := e.Controller(task)
	if err != nil {
		t.Fatalf("Controller(%v task): %v", kind, err)
	}
	t.Cleanup(func() {
		for _, step := range []func(context.Context) error{c.Terminate, c.Remove} {
			ctx, cancel := context.WithTimeout(context.Background(), s.h.Slack)
			step(ctx)
			cancel()
		}
	})
	return c, task, e
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// wait waits for the exit within the slack.
func (s *suite) wait(t *testing.T, c executor.Controller) executor.ExitStatus {
	t.Helper()
	st, err := c.Wait(ctxFor(t, s.h.Slack))
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

// ready waits until an IgnoreTerm task printed Ready: only then does it
// ignore SIGTERM. Without logs there is no telling, and the test is skipped.
func (s *suite) ready(t *testing.T, c executor.Controller) {
	t.Helper()
	lr, ok := c.(executor.LogReader)
	if !ok {
		t.Skip("the controller is no executor.LogReader: cannot tell when the task ignores SIGTERM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Slack)
	defer cancel()
	rc, err := lr.Logs(ctx, executor.LogOptions{Follow: true})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == Ready {
			return
		}
	}
	t.Fatalf("task did not print %q within %v (%v)", Ready, s.h.Slack, sc.Err())
}

func (s *suite) lifecycle(t *testing.T) {
	c, _, _ := s.controller(t, ExitZero)
	must(t, "Prepare", c.Prepare(s.op(t)))
	must(t, "Start", c.Start(s.op(t)))
	st := s.wait(t, c)
	if st.ExitCode != 0 || st.Failed() {
		t.Errorf("Wait = %+v, want exit code 0, not failed", st)
	}
	must(t, "Remove", c.Remove(s.op(t)))
}

func (s *suite) startWithoutPrepare(t *testing.T) {
	c, _, _ := s.controller(t, ExitThree)
	must(t, "Start without Prepare", c.Start(ctxFor(t, s.h.Slack)))
	if st := s.wait(t, c); st.ExitCode != 3 {
		t.Errorf("Wait = %+v, want exit code 3", st)
	}
}

func (s *suite) idempotent(t *testing.T) {
	c, _, _ := s.controller(t, RunUntilStopped)
	must(t, "Prepare", c.Prepare(s.op(t)))
	must(t, "Prepare again", c.Prepare(s.op(t)))
	must(t, "Start", c.Start(s.op(t)))
	st1, err := c.Status(s.op(t))
	must(t, "Status", err)
	must(t, "Start again", c.Start(s.op(t)))
	st2, err := c.Status(s.op(t))
	must(t, "Status", err)
	if st1.PID != st2.PID || st1.ContainerID != st2.ContainerID {
		t.Errorf("Start again started something else: %+v then %+v", st1, st2)
	}
	must(t, "Shutdown", c.Shutdown(s.op(t)))
	must(t, "Shutdown again", c.Shutdown(s.op(t)))
	must(t, "Terminate after Shutdown", c.Terminate(s.op(t)))
	s.wait(t, c)
	must(t, "Remove", c.Remove(s.op(t)))
	must(t, "Remove again", c.Remove(s.op(t)))
	must(t, "Shutdown after Remove", c.Shutdown(s.op(t)))
	must(t, "Terminate after Remove", c.Terminate(s.op(t)))
}

func (s *suite) startAfterExit(t *testing.T) {
	c, _, _ := s.controller(t, ExitThree)
	must(t, "Start", c.Start(s.op(t)))
	first := s.wait(t, c)
	st1, _ := c.Status(s.op(t))
	must(t, "Start after exit", c.Start(s.op(t)))
	if again := s.wait(t, c); again != first {
		t.Errorf("Wait after a second Start = %+v, want the first run's %+v", again, first)
	}
	if st2, _ := c.Status(s.op(t)); st2 != st1 {
		t.Errorf("Status after a second Start = %+v, want %+v: the task ran again", st2, st1)
	}
}

func (s *suite) waitBeforeStart(t *testing.T) {
	c, _, _ := s.controller(t, ExitZero)
	if _, err := c.Wait(s.op(t)); !errors.Is(err, executor.ErrNotStarted) {
		t.Errorf("Wait before Prepare = %v, want ErrNotStarted", err)
	}
	must(t, "Prepare", c.Prepare(s.op(t)))
	if _, err := c.Wait(s.op(t)); !errors.Is(err, executor.ErrNotStarted) {
		t.Errorf("Wait after Prepare = %v, want ErrNotStarted", err)
	}
}

func (s *suite) waitAfterExit(t *testing.T) {
	c, _, _ := s.controller(t, ExitThree)
	must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
	const waiters = 8
	var wg sync.WaitGroup
	got := make([]executor.ExitStatus, waiters)
	errs := make([]error, waiters)
	for i := range waiters {
		wg.Go(func() { got[i], errs[i] = c.Wait(ctxFor(t, s.h.Slack)) })
	}
	wg.Wait()
	for i := range waiters {
		if errs[i] != nil {
			t.Fatalf("concurrent Wait %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Errorf("concurrent Waits disagree: %+v and %+v", got[0], got[i])
		}
	}
	if got[0].ExitCode != 3 || !got[0].Failed() {
		t.Errorf("Wait = %+v, want exit code 3, failed", got[0])
	}
	for i := range 3 {
		if again := s.wait(t, c); again != got[0] {
			t.Errorf("Wait #%d after the exit = %+v, want %+v", i+2, again, got[0])
		}
	}
}

func (s *suite) waitContext(t *testing.T) {
	c, _, _ := s.controller(t, RunUntilStopped)
	must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
	start := time.Now()
	_, err := c.Wait(ctxFor(t, 200*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a 200ms deadline on a running task = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > s.h.Slack {
		t.Errorf("Wait took %v to notice its deadline", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a cancelled ctx = %v, want Canceled", err)
	}
	// The task still runs: a short Wait times out again, Terminate ends it.
	if _, err := c.Wait(ctxFor(t, 50*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("task ended by itself or Wait broke: %v", err)
	}
	must(t, "Terminate", c.Terminate(ctxFor(t, s.h.Slack)))
	s.wait(t, c)
}

func (s *suite) shutdownRunning(t *testing.T) {
	c, task, _ := s.controller(t, RunUntilStopped)
	must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
	start := time.Now()
	must(t, "Shutdown", c.Shutdown(ctxFor(t, s.h.Slack+task.Spec.StopGracePeriod())))
	if d := time.Since(start); d > s.h.Slack {
		t.Errorf("Shutdown of a task that honours SIGTERM took %v", d)
	}
	if _, err := c.Wait(ctxFor(t, s.h.Slack)); err != nil {
		t.Errorf("Wait after Shutdown: %v", err)
	}
}

func (s *suite) shutdownGrace(t *testing.T) {
	c, task, _ := s.controller(t, IgnoreTerm)
	grace := task.Spec.StopGracePeriod()
	must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
	s.ready(t, c)
	start := time.Now()
	must(t, "Shutdown", c.Shutdown(ctxFor(t, grace+2*s.h.Slack)))
	d := time.Since(start)
	if d < grace*9/10 {
		t.Errorf("Shutdown of a task that ignores SIGTERM took %v, less than its grace period %v", d, grace)
	}
	if d > grace+s.h.Slack {
		t.Errorf("Shutdown took %v, more than the grace period %v and %v slack", d, grace, s.h.Slack)
	}
	if st := s.wait(t, c); !st.Failed() {
		t.Errorf("Wait after a kill = %+v, want failed", st)
	}
}

func (s *suite) shutdownContext(t *testing.T) {
	c, task, _ := s.controller(t, IgnoreTerm)
	grace := task.Spec.StopGracePeriod()
	must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
	s.ready(t, c)
	short := grace / 4
	if err := c.Shutdown(ctxFor(t, short)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a ctx shorter than the grace period = %v, want DeadlineExceeded", err)
	}
	if _, err := c.Wait(ctxFor(t, 50*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the task should still run after an abandoned Shutdown: Wait = %v", err)
	}
	start := time.Now()
	must(t, "Terminate", c.Terminate(ctxFor(t, s.h.Slack)))
	if d := time.Since(start); d > s.h.Slack {
		t.Errorf("Terminate took %v", d)
	}
	if st := s.wait(t, c); !st.Failed() {
		t.Errorf("Wait after Terminate = %+v, want failed", st)
	}
}

func (s *suite) terminate(t *testing.T) {
	for _, kind := range []Kind{RunUntilStopped, IgnoreTerm} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			c, task, _ := s.controller(t, kind)
			must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
			if kind == IgnoreTerm {
				s.ready(t, c)
			}
			start := time.Now()
			must(t, "Terminate", c.Terminate(ctxFor(t, s.h.Slack)))
			d := time.Since(start)
			if limit := min(s.h.Slack, task.Spec.StopGracePeriod()); d >= limit {
				t.Errorf("Terminate took %v: it must not wait for the grace period", d)
			}
			st := s.wait(t, c)
			if !st.Failed() {
				t.Errorf("Wait after Terminate = %+v, want failed", st)
			}
			must(t, "Terminate again", c.Terminate(ctxFor(t, s.h.Slack)))
		})
	}
}

func (s *suite) beforeStart(t *testing.T) {
	c, _, _ := s.controller(t, RunUntilStopped)
	st, err := c.Status(s.op(t))
	must(t, "Status before Prepare", err)
	if st.PID != 0 || st.ContainerID != "" {
		t.Errorf("Status before Start = %+v, want nothing running", st)
	}
	must(t, "Prepare", c.Prepare(s.op(t)))
	must(t, "Shutdown before Start", c.Shutdown(s.op(t)))
	must(t, "Terminate before Start", c.Terminate(s.op(t)))
	must(t, "Remove before Start", c.Remove(s.op(t)))
	must(t, "Remove again", c.Remove(s.op(t)))
}

func (s *suite) exitCodes(t *testing.T) {
	for _, tc := range []struct {
		kind   Kind
		code   int
		failed bool
	}{{ExitZero, 0, false}, {ExitThree, 3, true}, {PrintOutput, 0, false}} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			t.Parallel()
			c, _, _ := s.controller(t, tc.kind)
			must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
			st := s.wait(t, c)
			if st.ExitCode != tc.code || st.Failed() != tc.failed || st.Signal != "" || st.OOMKilled {
				t.Errorf("Wait = %+v, want exit code %d, failed %v, no signal", st, tc.code, tc.failed)
			}
			if st.Message == "" {
				t.Errorf("Wait = %+v: no message", st)
			}
		})
	}
}

func (s *suite) status(t *testing.T) {
	c, _, _ := s.controller(t, ExitThree)
	must(t, "Prepare", c.Prepare(s.op(t)))
	st, err := c.Status(s.op(t))
	must(t, "Status", err)
	if st.PID != 0 || st.ContainerID != "" {
		t.Errorf("Status after Prepare = %+v, want nothing running", st)
	}
	must(t, "Start", c.Start(s.op(t)))
	st, err = c.Status(s.op(t))
	must(t, "Status", err)
	if st.PID == 0 && st.ContainerID == "" {
		t.Errorf("Status after Start = %+v, want a PID or container ID", st)
	}
	s.wait(t, c)
	st, err = c.Status(s.op(t))
	must(t, "Status", err)
	if st.ExitCode != 3 {
		t.Errorf("Status after the exit = %+v, want exit code 3", st)
	}
}

// readAll reads a log stream within the slack.
func (s *suite) readLogs(t *testing.T, lr executor.LogReader, opts executor.LogOptions) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Slack)
	defer cancel()
	rc, err := lr.Logs(ctx, opts)
	if err != nil {
		t.Fatalf("Logs(%+v): %v", opts, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Logs(%+v): read: %v (after %q)", opts, err, b)
	}
	return string(b)
}

func (s *suite) logs(t *testing.T) {
	c, _, _ := s.controller(t, PrintOutput)
	lr, ok := c.(executor.LogReader)
	if !ok {
		t.Skip("the controller is no executor.LogReader")
	}
	must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
	s.wait(t, c)
	all := s.readLogs(t, lr, executor.LogOptions{})
	for _, l := range OutputLines {
		if !strings.Contains(all, l+"\n") {
			t.Errorf("Logs = %q, want the line %q", all, l)
		}
	}
	if got := s.readLogs(t, lr, executor.LogOptions{Tail: 1}); got != OutputLines[len(OutputLines)-1]+"\n" {
		t.Errorf("Logs(Tail 1) = %q, want only the last line", got)
	}
	if got := s.readLogs(t, lr, executor.LogOptions{Since: time.Now().Add(time.Hour)}); got != "" {
		t.Errorf("Logs(Since in an hour) = %q, want nothing", got)
	}
	if got := s.readLogs(t, lr, executor.LogOptions{Since: time.Now().Add(-time.Hour)}); got != all {
		t.Errorf("Logs(Since an hour ago) = %q, want everything: %q", got, all)
	}
	// Following an exited task returns what there is and ends.
	if got := s.readLogs(t, lr, executor.LogOptions{Follow: true}); got != all {
		t.Errorf("Logs(Follow) of an exited task = %q, want %q", got, all)
	}
}

func (s *suite) logsFollow(t *testing.T) {
	c, _, _ := s.controller(t, IgnoreTerm)
	lr, ok := c.(executor.LogReader)
	if !ok {
		t.Skip("the controller is no executor.LogReader")
	}
	must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := lr.Logs(ctx, executor.LogOptions{Follow: true})
	must(t, "Logs(Follow)", err)
	defer rc.Close()
	lines := make(chan string, 16)
	ended := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
		ended <- sc.Err()
	}()
	deadline := time.After(s.h.Slack)
	for seen := false; !seen; {
		select {
		case l := <-lines:
			seen = strings.TrimSpace(l) == Ready
		case err := <-ended:
			t.Fatalf("Follow of a running task ended: %v", err)
		case <-deadline:
			t.Fatalf("Follow did not show %q within %v", Ready, s.h.Slack)
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("Follow of a running task ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case <-ended:
	case <-time.After(s.h.Slack):
		t.Fatalf("Follow did not end within %v of its ctx", s.h.Slack)
	}
}

func (s *suite) removeRunning(t *testing.T) {
	c, task, _ := s.controller(t, RunUntilStopped)
	must(t, "Start", c.Start(ctxFor(t, s.h.Slack)))
	start := time.Now()
	must(t, "Remove of a running task", c.Remove(ctxFor(t, task.Spec.StopGracePeriod()+s.h.Slack)))
	if d := time.Since(start); d > s.h.Slack {
		t.Errorf("Remove of a task that honours SIGTERM took %v", d)
	}
	if _, err := c.Wait(ctxFor(t, s.h.Slack)); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the task still runs after Remove")
	}
	if err := c.Start(ctxFor(t, s.h.Slack)); err == nil {
		t.Errorf("Start after Remove = nil, want an error")
	} else if !errors.Is(err, executor.ErrRemoved) {
		t.Logf("Start after Remove: %v (not ErrRemoved)", err)
	}
}

func (s *suite) sameController(t *testing.T) {
	c1, task, e := s.controller(t, RunUntilStopped)
	must(t, "Start", c1.Start(s.op(t)))
	c2, err := e.Controller(task.Copy())
	must(t, "second Controller", err)
	st1, _ := c1.Status(s.op(t))
	st2, _ := c2.Status(s.op(t))
	if st1 != st2 || st2.PID == 0 && st2.ContainerID == "" {
		t.Errorf("two controllers of one task see %+v and %+v", st1, st2)
	}
	must(t, "Start through the second controller", c2.Start(s.op(t)))
	must(t, "Terminate through the second controller", c2.Terminate(s.op(t)))
	a := s.wait(t, c1)
	b := s.wait(t, c2)
	if a != b || !a.Failed() {
		t.Errorf("Wait = %+v and %+v, want the same failed status", a, b)
	}
}

func (s *suite) unsupported(t *testing.T) {
	task := s.h.Task(t, Unsupported)
	if task == nil {
		t.Skip("the executor accepts every task")
	}
	e := s.h.NewExecutor(t)
	c, err := e.Controller(task)
	if !errors.Is(err, executor.ErrRuntimeMismatch) {
		t.Fatalf("Controller(%q task) = %v, %v; want ErrRuntimeMismatch", task.Spec.RuntimeKind(), c, err)
	}
	if !strings.Contains(err.Error(), task.ID) {
		t.Errorf("error %q does not name the task %s", err, task.ID)
	}
}

func (s *suite) concurrent(t *testing.T) {
	e := s.h.NewExecutor(t)
	const n = 10
	var wg sync.WaitGroup
	for i := range n {
		kind := ExitZero
		if i%2 == 1 {
			kind = ExitThree
		}
		task := s.h.Task(t, kind)
		wg.Go(func() {
			ctx := ctxFor(t, 2*s.h.Slack)
			c, err := e.Controller(task)
			if err != nil {
				t.Errorf("Controller: %v", err)
				return
			}
			if err := c.Prepare(ctx); err != nil {
				t.Errorf("Prepare: %v", err)
			}
			if err := c.Start(ctx); err != nil {
				t.Errorf("Start: %v", err)
				return
			}
			st, err := c.Wait(ctx)
			if err != nil {
				t.Errorf("Wait: %v", err)
			} else if want := map[Kind]int{ExitZero: 0, ExitThree: 3}[kind]; st.ExitCode != want {
				t.Errorf("%v task: exit code %d, want %d", kind, st.ExitCode, want)
			}
			if err := c.Remove(ctx); err != nil {
				t.Errorf("Remove: %v", err)
			}
		})
	}
	wg.Wait()
}
