package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

func TestRegisterNewNodeCreatesReadyWorker(t *testing.T) {
	h := newHarness(t, config(0), nil)
	resp := h.register("", "host-1")
	if resp.NodeID == "" || resp.SessionID == "" {
		t.Fatalf("register response lacks IDs: %+v", resp)
	}
	if resp.HeartbeatPeriod != time.Second {
		t.Errorf("heartbeat period of a small cluster = %v, want 1s", resp.HeartbeatPeriod)
	}
	n := h.node(resp.NodeID)
	if n == nil {
		t.Fatalf("node %s not in the store", resp.NodeID)
	}
	if n.Spec.Role != api.NodeRoleWorker || n.Spec.Availability != api.NodeAvailabilityActive {
		t.Errorf("spec = %+v, want an active worker", n.Spec)
	}
	if n.Status.State != api.NodeStateReady || n.Status.Addr != "10.0.0.1:4242" {
		t.Errorf("status = %+v, want ready at 10.0.0.1:4242", n.Status)
	}
	if want := desc("host-1"); n.Description == nil || !reflect.DeepEqual(*n.Description, want) {
		t.Errorf("description = %+v, want %+v", n.Description, want)
	}
	// The session works.
	hb, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: resp.NodeID, SessionID: resp.SessionID})
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if hb.Period != time.Second {
		t.Errorf("heartbeat period = %v, want 1s", hb.Period)
	}
	// A second new node gets another ID.
	if other := h.register("", "host-2"); other.NodeID == resp.NodeID {
		t.Errorf("two new nodes got the same ID %s", other.NodeID)
	}
}

func TestReregisterUpdatesNodeAndEndsPreviousSession(t *testing.T) {
	h := newHarness(t, config(0), nil)
	first := h.register("", "old-name")
	id := first.NodeID
	h.update(createTasks(mkTask("t1", id, api.TaskStateAssigned)))
	oldStream, err := h.d.Assignments(t.Context(), &dispatcher.AssignmentsRequest{NodeID: id, SessionID: first.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	if m := recvTimeout(t, oldStream, 5*time.Second); m.Type != dispatcher.AssignmentsComplete {
		t.Fatalf("first message type %v, want complete", m.Type)
	}
	// The node went down meanwhile (say, a failover declared it so).
	h.update(func(tx store.Tx) error {
		n := tx.GetNode(id)
		n.Status.State = api.NodeStateDown
		return tx.UpdateNode(n)
	})

	d := desc("new-name")
	d.Resources.MemoryBytes = 4 << 30
	second, err := h.d.Register(context.Background(), &dispatcher.RegisterRequest{NodeID: id, Description: d, Addr: "10.0.0.9:1"})
	if err != nil {
		t.Fatal(err)
	}
	if second.NodeID != id {
		t.Fatalf("re-register returned node %s, want %s", second.NodeID, id)
	}
	if second.SessionID == first.SessionID {
		t.Fatal("re-register kept the session ID")
	}
	n := h.node(id)
	if n.Status.State != api.NodeStateReady || n.Status.Addr != "10.0.0.9:1" {
		t.Errorf("status after re-register = %+v, want ready at the new address", n.Status)
	}
	if n.Description == nil || !reflect.DeepEqual(*n.Description, d) {
		t.Errorf("description after re-register = %+v, want %+v", n.Description, d)
	}
	var count int
	h.s.View(func(tx store.ReadTx) { ns, _ := tx.FindNodes(store.All); count = len(ns) })
	if count != 1 {
		t.Errorf("%d nodes in the store after re-register, want 1", count)
	}

	// The old session is dead for every call.
	_, err = h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: id, SessionID: first.SessionID})
	if !errors.Is(err, dispatcher.ErrSessionInvalid) {
		t.Errorf("old session heartbeat: err = %v, want ErrSessionInvalid", err)
	}
	err = h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: id, SessionID: first.SessionID,
		Updates: []dispatcher.TaskStatusUpdate{{TaskID: "t1", Status: api.TaskStatus{State: api.TaskStateAccepted}}}})
	if !errors.Is(err, dispatcher.ErrSessionInvalid) {
		t.Errorf("old session status update: err = %v, want ErrSessionInvalid", err)
	}
	if got := h.task("t1").Status.State; got != api.TaskStateAssigned {
		t.Errorf("old session's report was applied: state %v", got)
	}
	if _, err := h.d.Assignments(context.Background(), &dispatcher.AssignmentsRequest{NodeID: id, SessionID: first.SessionID}); !errors.Is(err, dispatcher.ErrSessionInvalid) {
		t.Errorf("old session assignments: err = %v, want ErrSessionInvalid", err)
	}
	// Its stream ends.
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := oldStream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		if !errors.Is(err, dispatcher.ErrSessionInvalid) {
			t.Errorf("old stream ended with %v, want ErrSessionInvalid", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the old session's assignment stream did not end")
	}
	// The new session works.
	if _, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: id, SessionID: second.SessionID}); err != nil {
		t.Errorf("new session heartbeat: %v", err)
	}
}

func TestRegisterRemovedNodeRefused(t *testing.T) {
	h := newHarness(t, config(0), nil)
	resp := h.register("", "h")
	h.update(func(tx store.Tx) error { return tx.DeleteNode(resp.NodeID) })

	for _, id := range []string{resp.NodeID, "never-joined"} {
		before := h.s.Index()
		_, err := h.d.Register(context.Background(), &dispatcher.RegisterRequest{NodeID: id, Description: desc("h")})
		if !errors.Is(err, dispatcher.ErrNodeRemoved) {
			t.Errorf("register %s: err = %v, want ErrNodeRemoved", id, err)
		}
		if h.node(id) != nil || h.s.Index() != before {
			t.Errorf("register %s of a removed node wrote to the store", id)
		}
	}
}

func TestMethodsRefusedWhenNotRunning(t *testing.T) {
	s := store.NewMemoryStore(nil)
	t.Cleanup(s.Close)
	d := dispatcher.New(s, config(0).Config)
	ctx := context.Background()

	calls := func(nodeID, sessionID string) map[string]error {
		_, regErr := d.Register(ctx, &dispatcher.RegisterRequest{NodeID: nodeID, Description: desc("h")})
		_, hbErr := d.Heartbeat(ctx, &dispatcher.HeartbeatRequest{NodeID: nodeID, SessionID: sessionID})
		_, asErr := d.Assignments(ctx, &dispatcher.AssignmentsRequest{NodeID: nodeID, SessionID: sessionID})
		stErr := d.UpdateTaskStatus(ctx, &dispatcher.UpdateTaskStatusRequest{NodeID: nodeID, SessionID: sessionID,
			Updates: []dispatcher.TaskStatusUpdate{{TaskID: "t", Status: api.TaskStatus{State: api.TaskStateRunning}}}})
		return map[string]error{"Register": regErr, "Heartbeat": hbErr, "Assignments": asErr, "UpdateTaskStatus": stErr}
	}
	for name, err := range calls("", "") {
		if !errors.Is(err, dispatcher.ErrNotRunning) {
			t.Errorf("%s before Run: err = %v, want ErrNotRunning", name, err)
		}
	}
	if s.Index() != 0 {
		t.Errorf("calls before Run wrote to the store (index %d)", s.Index())
	}

	h := &harness{t: t, s: s, d: d}
	h.start()
	resp := h.register("", "h")
	st, err := d.Assignments(t.Context(), &dispatcher.AssignmentsRequest{NodeID: resp.NodeID, SessionID: resp.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	recvTimeout(t, st, 5*time.Second)
	h.stop()

	for name, err := range calls(resp.NodeID, resp.SessionID) {
		if !errors.Is(err, dispatcher.ErrNotRunning) {
			t.Errorf("%s after Run ended: err = %v, want ErrNotRunning", name, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := st.Recv()
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("stream delivered a message after Run ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("assignment stream did not end with Run")
	}

	// Run can serve again afterwards, with fresh sessions only.
	h.start()
	if _, err := d.Heartbeat(ctx, &dispatcher.HeartbeatRequest{NodeID: resp.NodeID, SessionID: resp.SessionID}); !errors.Is(err, dispatcher.ErrSessionInvalid) {
		t.Errorf("heartbeat of a session from the previous run: err = %v, want ErrSessionInvalid", err)
	}
	h.stop()
}

func TestRunTwiceRefused(t *testing.T) {
	h := newHarness(t, config(0), nil)
	if err := h.d.Run(t.Context()); err == nil {
		t.Fatal("second concurrent Run returned nil")
	}
}

func TestHeartbeatExpiryMarksNodeDownAndOrphansItsTasks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		all := api.TaskStates()
		var tasks []*api.Task
		for _, st := range all {
			tasks = append(tasks, mkTask("silent-"+st.String(), "silent", st))
			tasks = append(tasks, mkTask("alive-"+st.String(), "alive", st))
		}
		// The nodes and their tasks exist before the nodes register, so that
		// the tasks are in place before any grace period can run out.
		h := newHarness(t, config(50*time.Millisecond), func(tx store.Tx) error {
			for _, id := range []string{"silent", "alive"} {
				n := readyNodeObj(id)
				n.Status.State = api.NodeStateDown
				if err := tx.CreateNode(n); err != nil {
					return err
				}
			}
			return createTasks(tasks...)(tx)
		})
		before := map[string]*api.Task{}
		for _, t := range tasks {
			before[t.ID] = h.task(t.ID)
		}
		alive := h.register("alive", "alive")
		h.heartbeatUntilDone(alive, 10*time.Millisecond)
		silent := h.register("silent", "silent")

		testutil.EventuallyWhy(t, 10*time.Second, "silent node down", func() (bool, string) {
			n := h.node(silent.NodeID)
			return n.Status.State == api.NodeStateDown, "state " + string(n.Status.State)
		})
		n := h.node(silent.NodeID)
		if n.Status.Message == "" {
			t.Error("down node has no status message")
		}
		if got := h.node(alive.NodeID).Status.State; got != api.NodeStateReady {
			t.Errorf("heartbeating node is %s, want ready", got)
		}
		// Orphaning happens in the same transaction as the node going down.
		for _, st := range all {
			id := "silent-" + st.String()
			got := h.task(id)
			if st >= api.TaskStateAssigned && st <= api.TaskStateRunning {
				if got.Status.State != api.TaskStateOrphaned {
					t.Errorf("task in %s on the dead node is %s, want orphaned", st, got.Status.State)
				}
				continue
			}
			if !reflect.DeepEqual(got, before[id]) {
				t.Errorf("task in %s on the dead node changed: %+v", st, got.Status)
			}
		}
		for _, st := range all {
			id := "alive-" + st.String()
			if got := h.task(id); !reflect.DeepEqual(got, before[id]) {
				t.Errorf("task in %s on the live node changed: %+v", st, got.Status)
			}
		}
		// The expired session is gone; the node may come back.
		_, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: silent.NodeID, SessionID: silent.SessionID})
		if !errors.Is(err, dispatcher.ErrSessionInvalid) {
			t.Errorf("expired session heartbeat: err = %v, want ErrSessionInvalid", err)
		}
		back := h.register(silent.NodeID, "silent")
		h.heartbeatUntilDone(back, 10*time.Millisecond)
		if got := h.node(silent.NodeID).Status.State; got != api.NodeStateReady {
			t.Errorf("node after re-register is %s, want ready", got)
		}
	})
}

func TestHeartbeatsKeepNodeUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A node that heartbeats every period stays ready for many grace
		// periods, while one that registered at the same time goes down.
		const period = 50 * time.Millisecond
		h := newHarness(t, config(period), nil)
		alive := h.register("", "alive")
		h.heartbeatUntilDone(alive, 10*time.Millisecond)
		start := time.Now()
		silent := h.register("", "silent")
		testutil.EventuallyWhy(t, 10*time.Second, "silent node down", func() (bool, string) {
			return h.node(silent.NodeID).Status.State == api.NodeStateDown, "not yet"
		})
		if el := time.Since(start); el < 3*period {
			t.Errorf("node declared down after %v, before its grace of 3 periods", el)
		}
		// Wait for several more grace periods to pass by watching a clock that
		// does not depend on the dispatcher: the live node must stay up.
		deadline := time.Now().Add(10 * period)
		for time.Now().Before(deadline) {
			if got := h.node(alive.NodeID).Status.State; got != api.NodeStateReady {
				t.Fatalf("heartbeating node went %s", got)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

func TestReadyNodeThatNeverRegistersDeclaredDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// An inherited node has the grace of a session (3 periods) and
		// 5 s more to find the new leader.
		const period = 100 * time.Millisecond
		const grace = 3*period + 5*time.Second
		h := newHarness(t, config(period), func(tx store.Tx) error {
			for _, id := range []string{"lost", "returning"} {
				if err := tx.CreateNode(readyNodeObj(id)); err != nil {
					return err
				}
			}
			down := readyNodeObj("was-down")
			down.Status.State = api.NodeStateDown
			if err := tx.CreateNode(down); err != nil {
				return err
			}
			return createTasks(
				mkTask("lost-running", "lost", api.TaskStateRunning),
				mkTask("lost-complete", "lost", api.TaskStateComplete),
				mkTask("returning-running", "returning", api.TaskStateRunning),
			)(tx)
		})
		start := time.Now()
		// One node comes back to the new leader in time.
		back := h.register("returning", "returning")
		h.heartbeatUntilDone(back, 10*time.Millisecond)
		downVersion := h.node("was-down").Meta.Version

		// The dispatcher started at most the harness's first poll (1 ms)
		// before start.
		time.Sleep(grace - 5*time.Millisecond)
		synctest.Wait()
		if st := h.node("lost").Status.State; st != api.NodeStateReady {
			t.Fatalf("unregistered node is %s %v after the start, before its grace of %v ran out", st, time.Since(start), grace)
		}
		time.Sleep(5 * time.Millisecond)
		synctest.Wait()
		if st := h.node("lost").Status.State; st != api.NodeStateDown {
			t.Fatalf("unregistered node is %s once its grace ran out, want down", st)
		}
		if got := h.task("lost-running").Status.State; got != api.TaskStateOrphaned {
			t.Errorf("running task of the lost node is %s, want orphaned", got)
		}
		if got := h.task("lost-complete").Status.State; got != api.TaskStateComplete {
			t.Errorf("complete task of the lost node is %s, want complete", got)
		}
		if got := h.node("returning").Status.State; got != api.NodeStateReady {
			t.Errorf("node that registered in time is %s, want ready", got)
		}
		if got := h.task("returning-running").Status.State; got != api.TaskStateRunning {
			t.Errorf("task of the node that registered in time is %s, want running", got)
		}
		if got := h.node("was-down").Meta.Version; got != downVersion {
			t.Error("a node already down was written again")
		}
	})
}

func TestUpdateTaskStatusTransitions(t *testing.T) {
	tests := []struct {
		from, to api.TaskState
		applied  bool
	}{
		{api.TaskStateAssigned, api.TaskStateAccepted, true},
		{api.TaskStateAccepted, api.TaskStatePreparing, true},
		{api.TaskStatePreparing, api.TaskStateReady, true},
		{api.TaskStateReady, api.TaskStateStarting, true},
		{api.TaskStateStarting, api.TaskStateRunning, true},
		{api.TaskStateAssigned, api.TaskStateRunning, true}, // skipping states forward is fine
		{api.TaskStateRunning, api.TaskStateComplete, true},
		{api.TaskStateRunning, api.TaskStateFailed, true},
		{api.TaskStateRunning, api.TaskStateShutdown, true},
		{api.TaskStateAssigned, api.TaskStateRejected, true},
		{api.TaskStateRunning, api.TaskStatePreparing, false}, // backwards
		{api.TaskStateRunning, api.TaskStateAssigned, false},
		{api.TaskStateComplete, api.TaskStateRunning, false}, // terminal
		{api.TaskStateFailed, api.TaskStateShutdown, false},
		{api.TaskStateOrphaned, api.TaskStateShutdown, false},
		{api.TaskStateRunning, api.TaskStateOrphaned, false}, // managers only
		{api.TaskStateRunning, api.TaskStateRemove, false},
		{api.TaskStatePending, api.TaskStateAccepted, false}, // not yet assigned
		{api.TaskStateNew, api.TaskStateRunning, false},
	}
	h := newHarness(t, config(0), nil)
	sess := h.register("", "n")
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s->%s", tc.from, tc.to), func(t *testing.T) {
			id := fmt.Sprintf("t-%s-%s", tc.from, tc.to)
			h.update(createTasks(mkTask(id, sess.NodeID, tc.from)))
			before := h.task(id)
			index := h.s.Index()
			cs := &api.ContainerStatus{PID: 42, ExitCode: 3}
			err := h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: sess.NodeID, SessionID: sess.SessionID,
				Updates: []dispatcher.TaskStatusUpdate{{TaskID: id, Status: api.TaskStatus{State: tc.to, Message: "reported", ContainerStatus: cs}}}})
			if err != nil {
				t.Fatalf("UpdateTaskStatus: %v", err)
			}
			got := h.task(id)
			if !tc.applied {
				if !reflect.DeepEqual(got, before) || h.s.Index() != index {
					t.Errorf("refused report changed the store: %+v", got.Status)
				}
				return
			}
			if got.Status.State != tc.to || got.Status.Message != "reported" {
				t.Errorf("status = %+v, want %s/reported", got.Status, tc.to)
			}
			if got.Status.AppliedBy != sess.NodeID {
				t.Errorf("AppliedBy = %q, want %q", got.Status.AppliedBy, sess.NodeID)
			}
			if got.Status.Timestamp.IsZero() {
				t.Error("a report without timestamp was stored without one")
			}
			if got.Status.ContainerStatus == nil || *got.Status.ContainerStatus != *cs {
				t.Errorf("container status = %+v, want %+v", got.Status.ContainerStatus, cs)
			}
			if got.DesiredState != before.DesiredState || got.NodeID != before.NodeID {
				t.Error("a status report changed more than the status")
			}
		})
	}
}

func TestUpdateTaskStatusRefusesOtherNodesTasks(t *testing.T) {
	h := newHarness(t, config(0), nil)
	a := h.register("", "a")
	b := h.register("", "b")
	h.update(createTasks(mkTask("of-b", b.NodeID, api.TaskStateAssigned), mkTask("unplaced", "", api.TaskStatePending)))
	before := map[string]*api.Task{"of-b": h.task("of-b"), "unplaced": h.task("unplaced")}
	index := h.s.Index()
	err := h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: a.NodeID, SessionID: a.SessionID,
		Updates: []dispatcher.TaskStatusUpdate{
			{TaskID: "of-b", Status: api.TaskStatus{State: api.TaskStateRunning}},
			{TaskID: "unplaced", Status: api.TaskStatus{State: api.TaskStateRunning}},
			{TaskID: "no-such-task", Status: api.TaskStatus{State: api.TaskStateRunning}},
		}})
	if err != nil {
		t.Fatalf("UpdateTaskStatus: %v", err)
	}
	for id, want := range before {
		if got := h.task(id); !reflect.DeepEqual(got, want) {
			t.Errorf("task %s changed by another node's report: %+v", id, got.Status)
		}
	}
	if h.s.Index() != index {
		t.Error("store index moved though every report was refused")
	}
	// A session of one node cannot speak for another.
	err = h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: b.NodeID, SessionID: a.SessionID,
		Updates: []dispatcher.TaskStatusUpdate{{TaskID: "of-b", Status: api.TaskStatus{State: api.TaskStateRunning}}}})
	if !errors.Is(err, dispatcher.ErrSessionInvalid) {
		t.Errorf("report with another node's session: err = %v, want ErrSessionInvalid", err)
	}
}

func TestUpdateTaskStatusMixedBatchAppliesOnlyValidReports(t *testing.T) {
	h := newHarness(t, config(0), nil)
	a := h.register("", "a")
	h.update(createTasks(mkTask("ok", a.NodeID, api.TaskStateAssigned), mkTask("done", a.NodeID, api.TaskStateComplete)))
	err := h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: a.NodeID, SessionID: a.SessionID,
		Updates: []dispatcher.TaskStatusUpdate{
			{TaskID: "done", Status: api.TaskStatus{State: api.TaskStateRunning}},
			{TaskID: "ok", Status: api.TaskStatus{State: api.TaskStateRunning}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.task("ok").Status.State; got != api.TaskStateRunning {
		t.Errorf("valid report beside a refused one: state %s, want running", got)
	}
	if got := h.task("done").Status.State; got != api.TaskStateComplete {
		t.Errorf("terminal task moved to %s", got)
	}
}

func TestUpdateTaskStatusIsWrittenWhenItReturns(t *testing.T) {
	h := newHarness(t, config(0), nil)
	a := h.register("", "a")
	h.update(createTasks(mkTask("t", a.NodeID, api.TaskStateAssigned)))
	for _, st := range []api.TaskState{api.TaskStateAccepted, api.TaskStatePreparing, api.TaskStateReady, api.TaskStateStarting, api.TaskStateRunning} {
		if err := h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: a.NodeID, SessionID: a.SessionID,
			Updates: []dispatcher.TaskStatusUpdate{{TaskID: "t", Status: api.TaskStatus{State: st}}}}); err != nil {
			t.Fatal(err)
		}
		// No waiting: the report is in the store once the call returns.
		if got := h.task("t").Status.State; got != st {
			t.Fatalf("after UpdateTaskStatus(%s) returned, the store says %s", st, got)
		}
	}
}

func TestUpdateTaskStatusBatchesReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := config(0)
		cfg.StatusBatchWindow = 200 * time.Millisecond
		h := newHarness(t, cfg, nil)
		const nodes, perNode, callsPerNode = 5, 20, 4
		var sessions []*dispatcher.RegisterResponse
		var tasks []*api.Task
		for i := range nodes {
			s := h.register("", fmt.Sprintf("n%d", i))
			sessions = append(sessions, s)
			for j := range perNode {
				tasks = append(tasks, mkTask(fmt.Sprintf("t-%d-%d", i, j), s.NodeID, api.TaskStateAssigned))
			}
		}
		h.update(createTasks(tasks...))

		w := h.s.Watch(store.ByKinds(api.KindTask))
		defer w.Close()
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, nodes*callsPerNode)
		for i, s := range sessions {
			for c := range callsPerNode {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := &dispatcher.UpdateTaskStatusRequest{NodeID: s.NodeID, SessionID: s.SessionID}
					for j := c; j < perNode; j += callsPerNode {
						req.Updates = append(req.Updates, dispatcher.TaskStatusUpdate{TaskID: fmt.Sprintf("t-%d-%d", i, j), Status: api.TaskStatus{State: api.TaskStateRunning}})
					}
					<-start
					errs <- h.d.UpdateTaskStatus(context.Background(), req)
				}()
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		// Every call returned, so every report is written: count the commits
		// that carried them.
		commits, updates := 0, 0
		for updates < nodes*perNode {
			select {
			case ev := <-w.Events():
				switch ev.Action {
				case store.ActionCommit:
					commits++
				case store.ActionUpdate:
					updates++
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("saw %d task updates, want %d", updates, nodes*perNode)
			}
		}
		// The last commit event follows its updates.
		if ev := <-w.Events(); ev.Action == store.ActionCommit {
			commits++
		}
		if commits > 3 {
			t.Errorf("%d reports in %d calls took %d transactions, want them batched into at most 3", nodes*perNode, nodes*callsPerNode, commits)
		}
		for _, tk := range tasks {
			if got := h.task(tk.ID).Status.State; got != api.TaskStateRunning {
				t.Errorf("task %s is %s, want running", tk.ID, got)
			}
		}
	})
}

func TestUpdateTaskStatusResendIsNotWrittenAgain(t *testing.T) {
	h := newHarness(t, config(0), nil)
	a := h.register("", "a")
	h.update(createTasks(mkTask("t", a.NodeID, api.TaskStateAssigned)))
	req := &dispatcher.UpdateTaskStatusRequest{NodeID: a.NodeID, SessionID: a.SessionID,
		Updates: []dispatcher.TaskStatusUpdate{{TaskID: "t", Status: api.TaskStatus{State: api.TaskStateRunning, Message: "started"}}}}
	if err := h.d.UpdateTaskStatus(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	index := h.s.Index()
	if err := h.d.UpdateTaskStatus(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if h.s.Index() != index {
		t.Error("an identical resend was written again")
	}
}

func TestHeartbeatPeriodGrowsWithSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No time passes in the bubble while the test registers them: no
		// session expires, though none heartbeats.
		h := newHarness(t, config(0), nil)
		const n = 2400
		var last *dispatcher.RegisterResponse
		for i := range n {
			last = h.register("", fmt.Sprintf("n%d", i))
		}
		want := time.Duration(n) * time.Second / 2000
		if last.HeartbeatPeriod != want {
			t.Errorf("period handed to the %dth node = %v, want %v", n, last.HeartbeatPeriod, want)
		}
		hb, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: last.NodeID, SessionID: last.SessionID})
		if err != nil {
			t.Fatal(err)
		}
		if hb.Period != want {
			t.Errorf("heartbeat period with %d sessions = %v, want %v", n, hb.Period, want)
		}
	})
}
