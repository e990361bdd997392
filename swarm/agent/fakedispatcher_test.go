package agent_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

var errManagerDown = errors.New("fake dispatcher: manager unreachable")

// report is one task status the fake dispatcher accepted.
type report struct {
	TaskID string
	Status api.TaskStatus
}

// fakeDispatcher is a scriptable manager: it holds the node's assigned
// tasks, streams them (a complete set on every new session, then one
// message per change) and records every status report it accepts, in order.
// Down makes it unreachable: every call fails and the session ends.
type fakeDispatcher struct {
	nodeID string
	period time.Duration

	mu            sync.Mutex
	down          bool
	removed       bool
	session       string
	sessions      int
	stream        *fakeStream
	tasks         map[string]*api.Task
	reports       []report
	refused       int // calls refused while down
	registrations []*dispatcher.RegisterRequest
}

func newFakeDispatcher() *fakeDispatcher {
	return &fakeDispatcher{nodeID: "node-1", period: 20 * time.Millisecond, tasks: map[string]*api.Task{}}
}

type fakeStream struct {
	ctx  context.Context
	ch   chan *dispatcher.AssignmentsMessage
	done chan struct{}
	once sync.Once
}

func (s *fakeStream) end() { s.once.Do(func() { close(s.done) }) }

func (s *fakeStream) Recv() (*dispatcher.AssignmentsMessage, error) {
	select {
	case m := <-s.ch:
		return m, nil
	case <-s.done:
		return nil, dispatcher.ErrSessionInvalid
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (d *fakeDispatcher) Register(ctx context.Context, req *dispatcher.RegisterRequest) (*dispatcher.RegisterResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		d.refused++
		return nil, errManagerDown
	}
	if d.removed {
		return nil, fmt.Errorf("register: %w", dispatcher.ErrNodeRemoved)
	}
	r := *req
	d.registrations = append(d.registrations, &r)
	if d.stream != nil {
		d.stream.end()
		d.stream = nil
	}
	d.sessions++
	d.session = fmt.Sprintf("session-%d", d.sessions)
	return &dispatcher.RegisterResponse{NodeID: d.nodeID, SessionID: d.session, HeartbeatPeriod: d.period}, nil
}

func (d *fakeDispatcher) check(nodeID, session string) error {
	if d.down {
		d.refused++
		return errManagerDown
	}
	if nodeID != d.nodeID || session == "" || session != d.session {
		return dispatcher.ErrSessionInvalid
	}
	return nil
}

func (d *fakeDispatcher) Heartbeat(ctx context.Context, req *dispatcher.HeartbeatRequest) (*dispatcher.HeartbeatResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(req.NodeID, req.SessionID); err != nil {
		return nil, err
	}
	return &dispatcher.HeartbeatResponse{Period: d.period}, nil
}

func (d *fakeDispatcher) Assignments(ctx context.Context, req *dispatcher.AssignmentsRequest) (dispatcher.AssignmentStream, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(req.NodeID, req.SessionID); err != nil {
		return nil, err
	}
	s := &fakeStream{ctx: ctx, ch: make(chan *dispatcher.AssignmentsMessage, 100), done: make(chan struct{})}
	d.stream = s
	s.ch <- &dispatcher.AssignmentsMessage{Type: dispatcher.AssignmentsComplete, Tasks: d.sortedTasks()}
	return s, nil
}

func (d *fakeDispatcher) sortedTasks() []*api.Task {
	var ts []*api.Task
	for _, t := range d.tasks {
		ts = append(ts, t.Copy())
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
	return ts
}

// Managers implements agent.Dispatcher: the fake knows no other manager.
func (d *fakeDispatcher) Managers(context.Context) ([]string, error) { return nil, nil }

func (d *fakeDispatcher) UpdateTaskStatus(ctx context.Context, req *dispatcher.UpdateTaskStatusRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(req.NodeID, req.SessionID); err != nil {
		return err
	}
	for _, u := range req.Updates {
		d.reports = append(d.reports, report{u.TaskID, u.Status.Copy()})
		if t, ok := d.tasks[u.TaskID]; ok {
			t.Status = u.Status.Copy()
		}
	}
	return nil
}

// send delivers a message on the open stream, if any.
func (d *fakeDispatcher) sendLocked(m *dispatcher.AssignmentsMessage) {
	if d.stream != nil {
		d.stream.ch <- m
	}
}

// assign adds or changes a task of the node and tells the agent.
func (d *fakeDispatcher) assign(t *api.Task) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tasks[t.ID] = t.Copy()
	d.sendLocked(&dispatcher.AssignmentsMessage{Type: dispatcher.AssignmentsIncremental, Tasks: []*api.Task{t.Copy()}})
}

// setDesired changes the desired state of an assigned task.
func (d *fakeDispatcher) setDesired(id string, s api.TaskState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[id]
	t.DesiredState = s
	d.sendLocked(&dispatcher.AssignmentsMessage{Type: dispatcher.AssignmentsIncremental, Tasks: []*api.Task{t.Copy()}})
}

// unassign removes a task, with a Removed message.
func (d *fakeDispatcher) unassign(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tasks, id)
	d.sendLocked(&dispatcher.AssignmentsMessage{Type: dispatcher.AssignmentsIncremental, Removed: []string{id}})
}

// forgetSilently drops a task from the manager's set without telling the
// agent: only the next complete set shows it is gone.
func (d *fakeDispatcher) forgetSilently(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tasks, id)
}

// sendComplete sends the current set as a complete message.
func (d *fakeDispatcher) sendComplete() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sendLocked(&dispatcher.AssignmentsMessage{Type: dispatcher.AssignmentsComplete, Tasks: d.sortedTasks()})
}

// setDown makes the manager unreachable (true) or reachable again.
func (d *fakeDispatcher) setDown(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
	if down {
		// The manager lost its sessions: the agent must register anew.
		d.session = ""
		if d.stream != nil {
			d.stream.end()
			d.stream = nil
		}
	}
}

func (d *fakeDispatcher) sessionCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessions
}

func (d *fakeDispatcher) refusedCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refused
}

// reportsOf returns the accepted reports of a task, in order.
func (d *fakeDispatcher) reportsOf(id string) []api.TaskStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []api.TaskStatus
	for _, r := range d.reports {
		if r.TaskID == id {
			out = append(out, r.Status)
		}
	}
	return out
}

func (d *fakeDispatcher) lastState(id string) (api.TaskStatus, bool) {
	rs := d.reportsOf(id)
	if len(rs) == 0 {
		return api.TaskStatus{}, false
	}
	return rs[len(rs)-1], true
}

func statesOf(rs []api.TaskStatus) []api.TaskState {
	out := make([]api.TaskState, len(rs))
	for i, r := range rs {
		out[i] = r.State
	}
	return out
}

func stateNames(ss []api.TaskState) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(s.String())
	}
	return b.String()
}

// waitState waits until the last accepted report of a task is state.
func (d *fakeDispatcher) waitState(t *testing.T, id string, state api.TaskState) api.TaskStatus {
	t.Helper()
	var last api.TaskStatus
	testutil.EventuallyWhy(t, 10*time.Second, fmt.Sprintf("task %s reported %s", id, state), func() (bool, string) {
		var ok bool
		last, ok = d.lastState(id)
		return ok && last.State == state, "reports: " + stateNames(statesOf(d.reportsOf(id)))
	})
	return last
}

// task returns an assigned task of the node, desired RUNNING.
func task(id string) *api.Task {
	return &api.Task{
		ID:                 id,
		Name:               "svc.1",
		ServiceID:          "svc",
		ServiceAnnotations: api.Annotations{Name: "svc"},
		Slot:               1,
		NodeID:             "node-1",
		Spec:               api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
		SpecVersion:        1,
		DesiredState:       api.TaskStateRunning,
		Status:             api.TaskStatus{State: api.TaskStateAssigned, Message: "scheduler assigned task to node"},
	}
}

// node is an agent over a fake dispatcher and a fake executor.
type node struct {
	t      *testing.T
	d      *fakeDispatcher
	ex     *fake.Executor
	a      *agent.Agent
	cancel context.CancelFunc
	done   chan error
}

func newNode(t *testing.T, d *fakeDispatcher, ex *fake.Executor) *node {
	t.Helper()
	a, err := agent.New(agent.Config{Dispatcher: d, Executor: ex, NodeID: d.nodeID, Logger: testutil.DiscardLogger(), ReconnectBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, d: d, ex: ex, a: a}
	n.start()
	t.Cleanup(func() {
		n.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.ShutdownTasks(ctx)
	})
	return n
}

func (n *node) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- n.a.Run(ctx) }()
	select {
	case <-n.a.Ready():
	case err := <-n.done:
		n.t.Fatalf("agent stopped before registering: %v", err)
	case <-time.After(10 * time.Second):
		n.t.Fatal("agent did not register")
	}
}

// stop cancels Run and waits for it.
func (n *node) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			n.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		n.t.Error("Run did not return after its context ended")
	}
	n.cancel = nil
}

func opsString(ops []fake.Op) string {
	var b strings.Builder
	for i, o := range ops {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(string(o))
	}
	return b.String()
}

func countOp(ops []fake.Op, op fake.Op) int {
	n := 0
	for _, o := range ops {
		if o == op {
			n++
		}
	}
	return n
}

// waitOp waits until the executor recorded op for a task.
func (n *node) waitOp(id string, op fake.Op) {
	n.t.Helper()
	testutil.EventuallyWhy(n.t, 10*time.Second, fmt.Sprintf("%s of task %s", op, id), func() (bool, string) {
		ops := n.ex.Ops(id)
		return countOp(ops, op) > 0, "ops: " + opsString(ops)
	})
}
