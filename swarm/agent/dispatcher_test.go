package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// manager is a real dispatcher over a store, which a test can stop and
// start again (a failover to a new leader with the same state).
type manager struct {
	t      *testing.T
	s      *store.MemoryStore
	d      *dispatcher.Dispatcher
	cancel context.CancelFunc
	done   chan error
}

func newManager(t *testing.T) *manager {
	s := store.NewMemoryStore(nil)
	cfg := dispatcher.DefaultConfig()
	cfg.Logger = testutil.DiscardLogger()
	m := &manager{t: t, s: s, d: dispatcher.New(s, cfg)}
	m.start()
	t.Cleanup(func() { m.stop(); s.Close() })
	return m
}

func (m *manager) start() {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan error, 1)
	go func() { m.done <- m.d.Run(ctx) }()
}

func (m *manager) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	<-m.done
	m.cancel = nil
}

func (m *manager) task(id string) *api.Task {
	var t *api.Task
	m.s.View(func(tx store.ReadTx) { t = tx.GetTask(id) })
	return t
}

func (m *manager) waitTask(id string, st api.TaskState) *api.Task {
	m.t.Helper()
	var tk *api.Task
	testutil.EventuallyWhy(m.t, 10*time.Second, fmt.Sprintf("task %s %s in the store", id, st), func() (bool, string) {
		tk = m.task(id)
		if tk == nil {
			return false, "no task"
		}
		return tk.Status.State == st, "state " + tk.Status.State.String()
	})
	return tk
}

func (m *manager) update(f func(tx store.Tx) error) {
	m.t.Helper()
	if err := m.s.Update(f); err != nil {
		m.t.Fatal(err)
	}
}

func startAgent(t *testing.T, d agent.Dispatcher, ex *fake.Executor) (*agent.Agent, context.CancelFunc) {
	t.Helper()
	a, err := agent.New(agent.Config{Dispatcher: d, Executor: ex, Logger: testutil.DiscardLogger(), ReconnectBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	testutil.EventuallyWhy(t, 10*time.Second, "agent registered", func() (bool, string) {
		select {
		case <-a.Ready():
			return true, ""
		default:
			return false, "not yet"
		}
	})
	return a, stop
}

func TestAgentWithDispatcherRunsAndStopsTask(t *testing.T) {
	m := newManager(t)
	ex := fake.New(fake.Config{Hostname: "w1"})
	a, _ := startAgent(t, m.d, ex)
	nodeID := a.NodeID()
	var n *api.Node
	m.s.View(func(tx store.ReadTx) { n = tx.GetNode(nodeID) })
	if n == nil || n.Description == nil || n.Description.Hostname != "w1" || n.Status.State != api.NodeStateReady {
		t.Fatalf("node in the store = %+v", n)
	}

	tk := task("t1")
	tk.NodeID = nodeID
	m.update(func(tx store.Tx) error { return tx.CreateTask(tk) })
	got := m.waitTask("t1", api.TaskStateRunning)
	if got.Status.AppliedBy != nodeID || got.Status.ContainerStatus == nil || got.Status.ContainerStatus.PID == 0 {
		t.Errorf("running status = %+v", got.Status)
	}
	m.update(func(tx store.Tx) error {
		tk := tx.GetTask("t1")
		tk.DesiredState = api.TaskStateShutdown
		return tx.UpdateTask(tk)
	})
	m.waitTask("t1", api.TaskStateShutdown)
	if len(ex.Running()) != 0 {
		t.Errorf("still running: %v", ex.Running())
	}
}

func TestAgentResendsReportAfterManagerFailover(t *testing.T) {
	m := newManager(t)
	ex := fake.New(fake.Config{})
	a, _ := startAgent(t, m.d, ex)
	tk := task("t1")
	tk.NodeID = a.NodeID()
	m.update(func(tx store.Tx) error { return tx.CreateTask(tk) })
	m.waitTask("t1", api.TaskStateRunning)

	m.stop()
	if err := ex.Kill("t1", 0); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 10*time.Second, "exit", func() (bool, string) { return len(ex.Running()) == 0, "running" })
	if got := m.task("t1").Status.State; got != api.TaskStateRunning {
		t.Fatalf("store changed while the dispatcher was stopped: %s", got)
	}
	m.start()
	got := m.waitTask("t1", api.TaskStateComplete)
	if got.Status.ContainerStatus == nil || got.Status.ContainerStatus.ExitCode != 0 {
		t.Errorf("complete status = %+v", got.Status)
	}
	var n *api.Node
	m.s.View(func(tx store.ReadTx) { n = tx.GetNode(a.NodeID()) })
	if n.Status.State != api.NodeStateReady {
		t.Errorf("node after failover is %s, want ready", n.Status.State)
	}
}
