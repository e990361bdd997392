package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// A worker's registration and status batches are bounded: past a bound the
// request is refused naming the field, and nothing changes.
func TestOversizedWorkerRequestsRefusedNamingTheField(t *testing.T) {
	h := newHarness(t, config(time.Minute), func(tx store.Tx) error { return tx.CreateNode(readyNodeObj("n1")) })
	many := desc("n1")
	many.Engine.Labels = map[string]string{}
	for i := range dispatcher.MaxEngineLabels + 1 {
		many.Engine.Labels[fmt.Sprint("k", i)] = "v"
	}
	long := desc(strings.Repeat("h", dispatcher.MaxHostnameLen+1))
	for name, tc := range map[string]struct {
		d     api.NodeDescription
		field string
	}{
		"too many labels":   {many, "Description.Engine.Labels"},
		"hostname too long": {long, "Description.Hostname"},
	} {
		before := h.node("n1")
		_, err := h.d.Register(context.Background(), &dispatcher.RegisterRequest{NodeID: "n1", Description: tc.d})
		if !errors.Is(err, dispatcher.ErrBadRequest) || !strings.Contains(err.Error(), tc.field) {
			t.Fatalf("%s: %v", name, err)
		}
		if after := h.node("n1"); after.Meta.Version != before.Meta.Version {
			t.Fatalf("%s: the node changed", name)
		}
	}

	s := h.register("n1", "n1")
	h.update(createTasks(mkTask("t1", "n1", api.TaskStateAssigned)))
	updates := make([]dispatcher.TaskStatusUpdate, dispatcher.MaxStatusUpdates+1)
	for i := range updates {
		updates[i] = dispatcher.TaskStatusUpdate{TaskID: "t1", Status: api.TaskStatus{State: api.TaskStateAccepted}}
	}
	err := h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: "n1", SessionID: s.SessionID, Updates: updates})
	if !errors.Is(err, dispatcher.ErrBadRequest) || !strings.Contains(err.Error(), "Updates") {
		t.Fatalf("too many reports: %v", err)
	}
	err = h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: "n1", SessionID: s.SessionID, Updates: []dispatcher.TaskStatusUpdate{
		{TaskID: "t1", Status: api.TaskStatus{State: api.TaskStateAccepted, Health: "bogus"}}}})
	if !errors.Is(err, dispatcher.ErrBadRequest) || !strings.Contains(err.Error(), "Updates[0].Status.Health") {
		t.Fatalf("a bad health value: %v", err)
	}
	if got := h.task("t1").Status.State; got != api.TaskStateAssigned {
		t.Fatalf("a refused batch changed the task: %s", got)
	}

	// Free text is cut, not refused: the worker would only send it again.
	msg := strings.Repeat("é", dispatcher.MaxStatusText) // two bytes a rune
	if err := h.d.UpdateTaskStatus(context.Background(), &dispatcher.UpdateTaskStatusRequest{NodeID: "n1", SessionID: s.SessionID, Updates: []dispatcher.TaskStatusUpdate{
		{TaskID: "t1", Status: api.TaskStatus{State: api.TaskStateAccepted, Message: msg, Err: msg}}}}); err != nil {
		t.Fatal(err)
	}
	got := h.task("t1").Status
	if got.State != api.TaskStateAccepted || len(got.Message) != dispatcher.MaxStatusText || got.Message != msg[:dispatcher.MaxStatusText] || len(got.Err) != dispatcher.MaxStatusText {
		t.Fatalf("status text: state %s, message %d bytes, err %d bytes", got.State, len(got.Message), len(got.Err))
	}
}

// A node that goes down with more tasks than one transaction holds has
// them all orphaned, over several bounded transactions.
func TestNodeDownOrphansManyTasksInBoundedTransactions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 2*store.MaxChangesPerTransaction + 500
		h := newHarness(t, config(50*time.Millisecond), func(tx store.Tx) error {
			if err := tx.CreateNode(readyNodeObj("n1")); err != nil {
				return err
			}
			for i := range n {
				if err := tx.CreateTask(mkTask(fmt.Sprintf("t%05d", i), "n1", api.TaskStateRunning)); err != nil {
					return err
				}
			}
			return nil
		})
		h.register("n1", "n1") // and never heartbeat
		versions := map[uint64]bool{}
		testutil.EventuallyWhy(t, 20*time.Second, "every task orphaned", func() (bool, string) {
			orphaned := 0
			clear(versions)
			h.s.View(func(tx store.ReadTx) {
				ts, _ := tx.FindTasks(store.ByNodeID("n1"))
				for _, tk := range ts {
					if tk.Status.State == api.TaskStateOrphaned {
						orphaned++
						versions[tk.Meta.Version] = true
					}
				}
			})
			return orphaned == n, fmt.Sprintf("%d of %d", orphaned, n)
		})
		if len(versions) < 3 {
			t.Fatalf("%d tasks orphaned in %d transactions, want at least 3 of at most %d changes", n, len(versions), store.MaxChangesPerTransaction)
		}
		if h.node("n1").Status.State != api.NodeStateDown {
			t.Fatal("the node is not down")
		}
	})
}
