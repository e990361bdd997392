package dispatcher_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// harness is a dispatcher running over a fresh store.
type harness struct {
	t      *testing.T
	s      *store.MemoryStore
	d      *dispatcher.Dispatcher
	cancel context.CancelFunc
	done   chan error
}

// harnessConfig is a dispatcher's configuration and the cluster's
// heartbeat period, which the dispatcher reads from the store.
type harnessConfig struct {
	dispatcher.Config
	// period is the cluster spec's heartbeat period; zero is adaptive.
	period time.Duration
}

func config(period time.Duration) harnessConfig {
	cfg := dispatcher.DefaultConfig()
	cfg.Logger = testutil.DiscardLogger()
	return harnessConfig{Config: cfg, period: period}
}

// newHarness makes a dispatcher over a new store holding the cluster
// object (with cfg's heartbeat period), lets setup write to the store
// before the dispatcher runs, and starts it. Tests of deadlines call it
// inside a synctest bubble: the dispatcher waits only on channels and
// timers, so time there is exact and costs nothing.
func newHarness(t *testing.T, cfg harnessConfig, setup func(tx store.Tx) error) *harness {
	t.Helper()
	s := store.NewMemoryStore(nil)
	spec := api.DefaultClusterSpec()
	spec.Dispatcher.HeartbeatPeriod = cfg.period
	if err := s.Update(func(tx store.Tx) error { return tx.CreateCluster(&api.Cluster{ID: "cluster", Spec: spec}) }); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		if err := s.Update(setup); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, s: s, d: dispatcher.New(s, cfg.Config)}
	h.start()
	t.Cleanup(func() { h.stop(); s.Close() })
	return h
}

func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx) }()
	// Running once a request with an unknown session is refused as such
	// rather than with ErrNotRunning.
	testutil.EventuallyWhy(h.t, 5*time.Second, "dispatcher to run", func() (bool, string) {
		_, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: "probe", SessionID: "probe"})
		return errors.Is(err, dispatcher.ErrSessionInvalid), "heartbeat error " + errString(err)
	})
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("Run did not return after its context was cancelled")
	}
	h.cancel = nil
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func desc(host string) api.NodeDescription {
	return api.NodeDescription{
		Hostname:  host,
		Platform:  api.Platform{OS: "linux", Architecture: "amd64"},
		Resources: api.Resources{NanoCPUs: 2e9, MemoryBytes: 1 << 30},
		Engine:    api.EngineDescription{EngineVersion: "fake", Labels: map[string]string{"zone": "a"}},
		Executor:  "fake",
	}
}

// register joins (or resumes) a node and returns its session.
func (h *harness) register(nodeID, host string) *dispatcher.RegisterResponse {
	h.t.Helper()
	resp, err := h.d.Register(context.Background(), &dispatcher.RegisterRequest{NodeID: nodeID, Description: desc(host), Addr: "10.0.0.1:4242"})
	if err != nil {
		h.t.Fatalf("register %q: %v", nodeID, err)
	}
	return resp
}

// heartbeatUntilDone keeps a session alive until the test ends.
func (h *harness) heartbeatUntilDone(s *dispatcher.RegisterResponse, every time.Duration) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_, _ = h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: s.NodeID, SessionID: s.SessionID})
			}
		}
	}()
	h.t.Cleanup(func() { close(stop); wg.Wait() })
}

func (h *harness) node(id string) *api.Node {
	var n *api.Node
	h.s.View(func(tx store.ReadTx) { n = tx.GetNode(id) })
	return n
}

func (h *harness) task(id string) *api.Task {
	var t *api.Task
	h.s.View(func(tx store.ReadTx) { t = tx.GetTask(id) })
	return t
}

func (h *harness) update(f func(tx store.Tx) error) {
	h.t.Helper()
	if err := h.s.Update(f); err != nil {
		h.t.Fatal(err)
	}
}

// mkTask returns a task of service "svc" in slot 1 on node nodeID in state st,
// desired RUNNING.
func mkTask(id, nodeID string, st api.TaskState) *api.Task {
	return &api.Task{
		ID:           id,
		Name:         "svc." + id,
		ServiceID:    "svc",
		Slot:         1,
		NodeID:       nodeID,
		Spec:         api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"sleep", "1000"}}},
		SpecVersion:  1,
		DesiredState: api.TaskStateRunning,
		Status:       api.TaskStatus{State: st, Timestamp: time.Now().UTC(), Message: "set by test"},
	}
}

func createTasks(ts ...*api.Task) func(tx store.Tx) error {
	return func(tx store.Tx) error {
		for _, t := range ts {
			if err := tx.CreateTask(t); err != nil {
				return err
			}
		}
		return nil
	}
}

func readyNodeObj(id string) *api.Node {
	d := desc(id)
	return &api.Node{
		ID:          id,
		Spec:        api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
		Description: &d,
		Status:      api.NodeStatus{State: api.NodeStateReady},
	}
}

// recvTimeout receives one assignments message, failing the test after d.
func recvTimeout(t *testing.T, st dispatcher.AssignmentStream, d time.Duration) *dispatcher.AssignmentsMessage {
	t.Helper()
	type res struct {
		m   *dispatcher.AssignmentsMessage
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := st.Recv()
		ch <- res{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Recv: %v", r.err)
		}
		return r.m
	case <-time.After(d):
		t.Fatalf("no assignments message within %v", d)
	}
	return nil
}
