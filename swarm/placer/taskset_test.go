package placer

import (
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// TestTaskSetShrinks: a set that held 100,000 tasks and keeps 10 moves to
// a map sized for them, with the 10 intact, however it got there.
func TestTaskSetShrinks(t *testing.T) {
	s := newTaskSet()
	for i := range 100_000 {
		s.put(&api.Task{ID: fmt.Sprint("t", i)})
	}
	for i := 10; i < 100_000; i++ {
		s.delete(fmt.Sprint("t", i))
	}
	if len(s.m) != 10 || s.peak > 4*shrinkFrom {
		t.Fatalf("%d tasks, peak %d: the map of 100,000 was kept", len(s.m), s.peak)
	}
	for i := range 10 {
		if id := fmt.Sprint("t", i); s.m[id] == nil || s.m[id].ID != id {
			t.Fatalf("task %s lost", id)
		}
	}
	s.delete("t0")
	s.put(&api.Task{ID: "new"})
	if len(s.m) != 10 || s.m["new"] == nil {
		t.Fatalf("set after a shrink: %d tasks", len(s.m))
	}
}
