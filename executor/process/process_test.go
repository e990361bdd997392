//go:build unix

package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/executortest"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

// testGrace is the stop grace period of the suite's SIGTERM-ignoring task.
const testGrace = time.Second

func TestConformance(t *testing.T) {
	executortest.Run(t, executortest.Harness{
		NewExecutor: func(t *testing.T) executor.Executor { return newTestExecutor(t, Config{}) },
		Task: func(t *testing.T, kind executortest.Kind) *api.Task {
			switch kind {
			case executortest.RunUntilStopped:
				return shTask("exec sleep 300")
			case executortest.ExitZero:
				return shTask("exit 0")
			case executortest.ExitThree:
				return shTask("exit 3")
			case executortest.IgnoreTerm:
				task := shTask("trap '' TERM; echo " + executortest.Ready + "; sleep 300")
				g := testGrace
				task.Spec.Process.StopGracePeriod = &g
				return task
			case executortest.PrintOutput:
				l := executortest.OutputLines
				return shTask("echo " + l[0] + "; echo " + l[1] + " >&2; echo " + l[2])
			case executortest.Unsupported:
				task := shTask("true")
				task.Spec.Process = nil
				task.Spec.Container = &api.ContainerSpec{Image: "busybox"}
				return task
			}
			t.Fatalf("unknown kind %v", kind)
			return nil
		},
	})
}

// newTestExecutor makes an executor on a temporary DataDir, closed at the
// end of the test. Its log goes to the test's log.
func newTestExecutor(t *testing.T, cfg Config) *Executor {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// testLogger logs to t.Log until the test ends (later lines are dropped:
// t.Log panics then).
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// shTask is a process task running script with /bin/sh.
func shTask(script string) *api.Task {
	return &api.Task{
		ID:                 executortest.NewTaskID(),
		ServiceID:          "svc1",
		ServiceAnnotations: api.Annotations{Name: "web"},
		Slot:               2,
		NodeID:             "node1",
		Name:               "web.2",
		Spec: api.TaskSpec{Process: &api.ProcessSpec{
			Command: []string{"/bin/sh", "-c", script},
		}},
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("APIARY_TEST_AGENT_DATADIR"); dir != "" {
		os.Exit(helperAgent(dir, os.Getenv("APIARY_TEST_AGENT_TASK")))
	}
	os.Exit(m.Run())
}

// helperAgent is an agent in a process of its own: it starts the task on
// dir, prints its PID and exits without Close, as a crashing agent would.
func helperAgent(dir, taskJSON string) int {
	var task api.Task
	if err := json.Unmarshal([]byte(taskJSON), &task); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e, err := New(Config{DataDir: dir, Logger: testutil.DiscardLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := e.Controller(&task)
	if err == nil {
		err = c.Start(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, _ := c.Status(context.Background())
	fmt.Println(st.PID)
	return 0
}

// startInOtherAgent runs task through an agent process that then dies, and
// returns the task's PID.
func startInOtherAgent(t *testing.T, dataDir string, task *api.Task) int {
	t.Helper()
	b, _ := json.Marshal(task)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "APIARY_TEST_AGENT_DATADIR="+dataDir, "APIARY_TEST_AGENT_TASK="+string(b))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper agent: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper agent printed %q", out)
	}
	t.Cleanup(func() {
		if !processGone(pid, 0) {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	return pid
}

// start starts a controller of task on e.
func start(t *testing.T, e *Executor, task *api.Task) *controller {
	t.Helper()
	c, err := e.Controller(task)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Terminate(context.Background()) })
	return c.(*controller)
}

func waitExit(t *testing.T, c executor.Controller, d time.Duration) executor.ExitStatus {
	t.Helper()
	st, err := c.Wait(ctxT(t, d))
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

func readLogs(t *testing.T, c executor.Controller, opts executor.LogOptions) string {
	t.Helper()
	rc, err := c.(executor.LogReader).Logs(ctxT(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	return string(b)
}

// waitLine follows the task's output until a line satisfies match.
func waitLine(t *testing.T, c executor.Controller, d time.Duration, match func(string) bool) string {
	t.Helper()
	rc, err := c.(executor.LogReader).Logs(ctxT(t, d), executor.LogOptions{Follow: true})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if match(sc.Text()) {
			return sc.Text()
		}
	}
	t.Fatalf("no matching output line within %v (%v)", d, sc.Err())
	return ""
}

func withGrace(task *api.Task, d time.Duration) *api.Task {
	task.Spec.Process.StopGracePeriod = &d
	return task
}
