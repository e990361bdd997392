package placer_test

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// A restore of the store (a raft snapshot installed) replaces the state
// without an event per object: the placer reads the new state again and
// places from it alone, at once. Its node of the old state is gone, the
// placed task of the new state holds its CPU, and the task that was
// waiting on its retry timer before is not waited for.
func TestRestoreReplacesThePlacersView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The snapshot: n2 with 2 CPUs, one taken by a placed task, and
		// two pending tasks of a CPU each.
		other := store.NewMemoryStore(nil)
		defer other.Close()
		if err := other.Update(create(
			node("n2", cpus(2)),
			pending("p", "db", reserveCPUs(1), func(t *api.Task) {
				t.NodeID = "n2"
				t.Status = api.TaskStatus{State: api.TaskStateRunning}
			}),
			pending("q", "web", reserveCPUs(1)),
			pending("r", "web", reserveCPUs(1), func(t *api.Task) { t.Slot = 2 }),
		)); err != nil {
			t.Fatal(err)
		}
		var snap bytes.Buffer
		if err := other.Save(&snap); err != nil {
			t.Fatal(err)
		}

		// Before: n1 of 1 CPU, taken by a; q waits for room, on the
		// retry timer.
		h := run(t, create(node("n1", cpus(1)), pending("a", "web", reserveCPUs(1)), pending("q", "web", reserveCPUs(1))))
		h.assigned("a")
		h.waiting("q", func(m string) bool { return strings.Contains(m, "insufficient CPU") })

		if err := h.s.Restore(&snap); err != nil {
			t.Fatal(err)
		}
		h.settled()
		placed, waiting := 0, 0
		for _, id := range []string{"q", "r"} {
			tk := h.task(id)
			switch {
			case tk.Status.State == api.TaskStateAssigned && tk.NodeID == "n2":
				placed++
			case tk.Status.State == api.TaskStatePending && strings.Contains(tk.Status.Message, "insufficient CPU"):
				waiting++
			default:
				t.Errorf("task %s is %s on %q with message %q, want assigned to n2 or waiting for CPU", id, tk.Status.State, tk.NodeID, tk.Status.Message)
			}
		}
		if placed != 1 || waiting != 1 {
			t.Fatalf("%d placed and %d waiting, want one each: n2 has room for one beside p", placed, waiting)
		}
		if a := h.task("a"); a != nil {
			t.Fatalf("task a of the old state is still stored: %+v", a.Status)
		}

		// The placer goes on from the new state: a node with room places
		// the task that waits.
		h.update(create(node("n3")))
		for _, id := range []string{"q", "r"} {
			h.assigned(id)
		}
	})
}
