package process

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/executortest"
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
