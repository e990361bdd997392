package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

func taskIDs(ts []*api.Task) []string {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids
}

// openStream registers nodeID (which must exist) and opens its stream.
func (h *harness) openStream(nodeID string) (*dispatcher.RegisterResponse, dispatcher.AssignmentStream) {
	h.t.Helper()
	s := h.register(nodeID, nodeID)
	st, err := h.d.Assignments(h.t.Context(), &dispatcher.AssignmentsRequest{NodeID: s.NodeID, SessionID: s.SessionID})
	if err != nil {
		h.t.Fatal(err)
	}
	return s, st
}

func nodesAB(tx store.Tx) error {
	for _, id := range []string{"a", "b"} {
		n := readyNodeObj(id)
		n.Status.State = api.NodeStateDown
		if err := tx.CreateNode(n); err != nil {
			return err
		}
	}
	return nil
}

func TestAssignmentsFirstMessageIsCompleteSetOfAssignedTasks(t *testing.T) {
	var tasks []*api.Task
	for _, st := range api.TaskStates() {
		tasks = append(tasks, mkTask("a-"+st.String(), "a", st), mkTask("b-"+st.String(), "b", st))
	}
	tasks = append(tasks, mkTask("unplaced", "", api.TaskStatePending))
	h := newHarness(t, config(0), func(tx store.Tx) error {
		if err := nodesAB(tx); err != nil {
			return err
		}
		return createTasks(tasks...)(tx)
	})
	_, st := h.openStream("a")
	m := recvTimeout(t, st, 5*time.Second)
	if m.Type != dispatcher.AssignmentsComplete {
		t.Fatalf("first message type = %v, want complete", m.Type)
	}
	var want []string
	for _, s := range api.TaskStates() {
		if s >= api.TaskStateAssigned {
			want = append(want, "a-"+s.String())
		}
	}
	sort.Strings(want)
	got := taskIDs(m.Tasks)
	if !slices.Equal(got, want) {
		t.Errorf("complete set = %v, want %v (NEW and PENDING tasks pinned to the node are not the worker's yet)", got, want)
	}
	if len(m.Removed) != 0 {
		t.Errorf("complete message removes %v", m.Removed)
	}
}

func TestAssignmentsEmptyNodeGetsEmptyCompleteSet(t *testing.T) {
	h := newHarness(t, config(0), nodesAB)
	_, st := h.openStream("a")
	m := recvTimeout(t, st, 5*time.Second)
	if m.Type != dispatcher.AssignmentsComplete || len(m.Tasks) != 0 || len(m.Removed) != 0 {
		t.Fatalf("first message = %+v, want an empty complete set", m)
	}
}

func TestAssignmentsIncrementalUpdates(t *testing.T) {
	h := newHarness(t, config(0), func(tx store.Tx) error {
		if err := nodesAB(tx); err != nil {
			return err
		}
		return createTasks(
			mkTask("run1", "a", api.TaskStateRunning),
			mkTask("run2", "a", api.TaskStateRunning),
			mkTask("del", "a", api.TaskStateRunning),
			mkTask("move", "a", api.TaskStateAssigned),
			mkTask("pinned", "a", api.TaskStatePending),
			mkTask("free", "", api.TaskStatePending),
			mkTask("other", "b", api.TaskStateRunning),
		)(tx)
	})
	_, stA := h.openStream("a")
	_, stB := h.openStream("b")
	if m := recvTimeout(t, stA, 5*time.Second); m.Type != dispatcher.AssignmentsComplete || len(m.Tasks) != 4 {
		t.Fatalf("node a complete set = %v", taskIDs(m.Tasks))
	}
	if m := recvTimeout(t, stB, 5*time.Second); m.Type != dispatcher.AssignmentsComplete || len(m.Tasks) != 1 {
		t.Fatalf("node b complete set = %v", taskIDs(m.Tasks))
	}

	// expect checks the next message of a stream.
	expect := func(what string, st dispatcher.AssignmentStream, tasks, removed []string) *dispatcher.AssignmentsMessage {
		t.Helper()
		m := recvTimeout(t, st, 5*time.Second)
		if m.Type != dispatcher.AssignmentsIncremental {
			t.Fatalf("%s: message type %v, want incremental", what, m.Type)
		}
		got := taskIDs(m.Tasks)
		sort.Strings(got)
		rm := slices.Clone(m.Removed)
		sort.Strings(rm)
		if !slices.Equal(got, tasks) || !slices.Equal(rm, removed) {
			t.Fatalf("%s: message tasks %v removed %v, want tasks %v removed %v", what, got, rm, tasks, removed)
		}
		return m
	}
	set := func(id string, f func(*api.Task)) func(store.Tx) error {
		return func(tx store.Tx) error {
			tk := tx.GetTask(id)
			f(tk)
			return tx.UpdateTask(tk)
		}
	}

	// Status-only changes are not echoed: the next message is the one of
	// the later desired-state change.
	h.update(set("run1", func(tk *api.Task) { tk.Status.Message = "still running"; tk.Status.Health = api.HealthHealthy }))
	h.update(set("run2", func(tk *api.Task) { tk.Status.State = api.TaskStateFailed }))
	h.update(set("run1", func(tk *api.Task) { tk.DesiredState = api.TaskStateShutdown }))
	m := expect("desired state change", stA, []string{"run1"}, nil)
	if m.Tasks[0].DesiredState != api.TaskStateShutdown {
		t.Errorf("desired state in the message = %s, want shutdown", m.Tasks[0].DesiredState)
	}

	// A spec version change is sent.
	h.update(set("run2", func(tk *api.Task) { tk.SpecVersion = 2 }))
	expect("spec version change", stA, []string{"run2"}, nil)

	// The scheduler assigning a pinned task hands it over.
	h.update(set("pinned", func(tk *api.Task) { tk.Status.State = api.TaskStateAssigned }))
	expect("pinned task assigned", stA, []string{"pinned"}, nil)

	// A free task assigned to the node arrives; one assigned elsewhere does
	// not (b gets it).
	h.update(set("free", func(tk *api.Task) { tk.NodeID = "a"; tk.Status.State = api.TaskStateAssigned }))
	expect("new task assigned", stA, []string{"free"}, nil)

	// Several changes of one transaction come in one message.
	h.update(func(tx store.Tx) error {
		if err := tx.DeleteTask("del"); err != nil {
			return err
		}
		tk := tx.GetTask("move")
		tk.NodeID = "b"
		if err := tx.UpdateTask(tk); err != nil {
			return err
		}
		tk = tx.GetTask("run2")
		tk.DesiredState = api.TaskStateRemove
		return tx.UpdateTask(tk)
	})
	expect("delete, move away and change in one transaction", stA, []string{"run2"}, []string{"del", "move"})
	expect("task moved in", stB, []string{"move"}, nil)

	// Changes of other nodes' tasks never reach a: its next message is the
	// one for this last change.
	h.update(set("other", func(tk *api.Task) { tk.DesiredState = api.TaskStateShutdown }))
	h.update(set("run2", func(tk *api.Task) { tk.DesiredState = api.TaskStateShutdown }))
	expect("after a change on another node", stA, []string{"run2"}, nil)
	expect("b's own change", stB, []string{"other"}, nil)
}

func TestAssignmentsStreamEndsWithItsContext(t *testing.T) {
	h := newHarness(t, config(0), nodesAB)
	s := h.register("a", "a")
	ctx, cancel := context.WithCancel(context.Background())
	st, err := h.d.Assignments(ctx, &dispatcher.AssignmentsRequest{NodeID: s.NodeID, SessionID: s.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	recvTimeout(t, st, 5*time.Second)
	cancel()
	done := make(chan error, 1)
	go func() { _, err := st.Recv(); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Recv after cancel returned a message")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Recv did not return after its context ended")
	}
	// The session itself lives on.
	if _, err := h.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: s.NodeID, SessionID: s.SessionID}); err != nil {
		t.Errorf("session after its stream's context ended: %v", err)
	}
}

func TestAssignmentsRefusesUnknownSession(t *testing.T) {
	h := newHarness(t, config(0), nodesAB)
	s := h.register("a", "a")
	for _, req := range []*dispatcher.AssignmentsRequest{
		{NodeID: "a", SessionID: "bogus"},
		{NodeID: "b", SessionID: s.SessionID},
	} {
		if _, err := h.d.Assignments(context.Background(), req); !errors.Is(err, dispatcher.ErrSessionInvalid) {
			t.Errorf("Assignments(%+v): err = %v, want ErrSessionInvalid", req, err)
		}
	}
}

func TestAssignmentsManyTasksInOneComplete(t *testing.T) {
	var tasks []*api.Task
	for i := range 300 {
		tasks = append(tasks, mkTask(fmt.Sprintf("t%03d", i), "a", api.TaskStateRunning))
	}
	h := newHarness(t, config(0), func(tx store.Tx) error {
		if err := nodesAB(tx); err != nil {
			return err
		}
		return createTasks(tasks...)(tx)
	})
	_, st := h.openStream("a")
	m := recvTimeout(t, st, 5*time.Second)
	if !slices.Equal(taskIDs(m.Tasks), taskIDs(tasks)) {
		t.Errorf("complete set has %d tasks, want the 300 in ID order", len(m.Tasks))
	}
}
