package dispatcher_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// bigTasks makes n ASSIGNED tasks on node a, each of about size bytes.
func bigTasks(n, size int) []*api.Task {
	var ts []*api.Task
	for i := range n {
		t := mkTask(fmt.Sprintf("t%02d", i), "a", api.TaskStateAssigned)
		t.Spec.Process.Env = []string{"BIG=" + strings.Repeat("x", size)}
		ts = append(ts, t)
	}
	return ts
}

// checkSize fails if a message's tasks encode to more than the bound, unless
// it holds a single task.
func checkSize(t *testing.T, m *dispatcher.AssignmentsMessage) {
	t.Helper()
	b, err := json.Marshal(m.Tasks)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Tasks) > 1 && len(b) > dispatcher.MaxAssignmentsBytes {
		t.Fatalf("message of %d tasks encodes to %d bytes, want at most %d", len(m.Tasks), len(b), dispatcher.MaxAssignmentsBytes)
	}
}

// TestAssignmentsInParts: a node's complete set larger than
// MaxAssignmentsBytes comes in parts, each but the last marked More, and a
// commit that changes more than fits in one message comes as several.
func TestAssignmentsInParts(t *testing.T) {
	tasks := bigTasks(8, 300<<10) // 2.4 MB
	h := newHarness(t, config(0), func(tx store.Tx) error {
		if err := nodesAB(tx); err != nil {
			return err
		}
		return createTasks(tasks...)(tx)
	})
	_, st := h.openStream("a")
	var got []string
	for parts := 1; ; parts++ {
		m := recvTimeout(t, st, 5*time.Second)
		if m.Type != dispatcher.AssignmentsComplete {
			t.Fatalf("part %d is %v, want complete", parts, m.Type)
		}
		checkSize(t, m)
		got = append(got, taskIDs(m.Tasks)...)
		if !m.More {
			if parts < 3 {
				t.Fatalf("2.4 MB of tasks in %d parts", parts)
			}
			break
		}
	}
	want := taskIDs(tasks)
	if !slices.Equal(got, want) {
		t.Fatalf("complete set %v, want %v", got, want)
	}

	// One commit stops them all.
	h.update(func(tx store.Tx) error {
		for _, id := range want {
			tk := tx.GetTask(id)
			tk.DesiredState = api.TaskStateShutdown
			if err := tx.UpdateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	got = nil
	for messages := 1; len(got) < len(want); messages++ {
		m := recvTimeout(t, st, 5*time.Second)
		if m.Type != dispatcher.AssignmentsIncremental || m.More {
			t.Fatalf("message %d: type %v, more %v; want incremental", messages, m.Type, m.More)
		}
		checkSize(t, m)
		for _, tk := range m.Tasks {
			if tk.DesiredState != api.TaskStateShutdown {
				t.Fatalf("task %s desired %s", tk.ID, tk.DesiredState)
			}
			got = append(got, tk.ID)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("changed tasks %v, want %v", got, want)
	}
}
