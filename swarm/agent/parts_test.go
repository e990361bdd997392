package agent_test

import (
	"slices"
	"testing"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// TestCompleteSetInParts: a complete set that comes in parts is acted on
// once whole. A task in the second part is not removed when the first
// arrives, and a task in no part is removed after the last.
func TestCompleteSetInParts(t *testing.T) {
	d := newFakeDispatcher()
	n := newNode(t, d, fake.New(fake.Config{}))
	for _, id := range []string{"a", "b", "drop"} {
		d.assign(task(id))
		d.waitState(t, id, api.TaskStateRunning)
	}
	d.forgetSilently("drop")
	d.mu.Lock()
	set := d.sortedTasks() // a, b
	d.sendLocked(&dispatcher.AssignmentsMessage{Type: dispatcher.AssignmentsComplete, Tasks: set[:1], More: true})
	d.sendLocked(&dispatcher.AssignmentsMessage{Type: dispatcher.AssignmentsComplete, Tasks: set[1:]})
	d.mu.Unlock()
	// A task assigned after the set runs alongside it.
	d.assign(task("c"))
	d.waitState(t, "c", api.TaskStateRunning)
	n.waitOp("drop", fake.OpRemove)
	if got := n.ex.Running(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("running = %v, want [a b c]", got)
	}
	for _, id := range []string{"a", "b"} {
		if ops := n.ex.Ops(id); !slices.Equal(ops, []fake.Op{fake.OpPrepare, fake.OpStart}) {
			t.Errorf("task %s of the set was disturbed: ops %s", id, opsString(ops))
		}
	}
}
