package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// The transition rules of CheckTransition's doc comment, written out by hand
// as one matrix per actor rather than computed, so that a change to the
// function cannot silently change what the test expects. Row: current state;
// column: new state, in the order of the constants. '=' is the same state
// again (allowed: it refreshes the message), 'y' allowed, '.' refused.
//
// Managers: NEW→PENDING→ASSIGNED, one step at a time (a task is allocated
// before it is assigned, so NEW→ASSIGNED is refused); any terminal state while no worker has
// the task (NEW, PENDING); ORPHANED from any non-terminal state.
var managerMatrix = [...]string{
	//                  N P A a p r s R C S F J X O
	TaskStateNew:       "= y . . . . . . y y y y y y",
	TaskStatePending:   ". = y . . . . . y y y y y y",
	TaskStateAssigned:  ". . = . . . . . . . . . . y",
	TaskStateAccepted:  ". . . = . . . . . . . . . y",
	TaskStatePreparing: ". . . . = . . . . . . . . y",
	TaskStateReady:     ". . . . . = . . . . . . . y",
	TaskStateStarting:  ". . . . . . = . . . . . . y",
	TaskStateRunning:   ". . . . . . . = . . . . . y",
	TaskStateComplete:  ". . . . . . . . = . . . . .",
	TaskStateShutdown:  ". . . . . . . . . = . . . .",
	TaskStateFailed:    ". . . . . . . . . . = . . .",
	TaskStateRejected:  ". . . . . . . . . . . = . .",
	TaskStateRemove:    ". . . . . . . . . . . . = .",
	TaskStateOrphaned:  ". . . . . . . . . . . . . =",
}

// Worker: from ASSIGNED onward to any later state but REMOVE and ORPHANED;
// nothing before ASSIGNED.
var workerMatrix = [...]string{
	//                  N P A a p r s R C S F J X O
	TaskStateNew:       "= . . . . . . . . . . . . .",
	TaskStatePending:   ". = . . . . . . . . . . . .",
	TaskStateAssigned:  ". . = y y y y y y y y y . .",
	TaskStateAccepted:  ". . . = y y y y y y y y . .",
	TaskStatePreparing: ". . . . = y y y y y y y . .",
	TaskStateReady:     ". . . . . = y y y y y y . .",
	TaskStateStarting:  ". . . . . . = y y y y y . .",
	TaskStateRunning:   ". . . . . . . = y y y y . .",
	TaskStateComplete:  ". . . . . . . . = . . . . .",
	TaskStateShutdown:  ". . . . . . . . . = . . . .",
	TaskStateFailed:    ". . . . . . . . . . = . . .",
	TaskStateRejected:  ". . . . . . . . . . . = . .",
	TaskStateRemove:    ". . . . . . . . . . . . = .",
	TaskStateOrphaned:  ". . . . . . . . . . . . . =",
}

func TestTransitionMatrix(t *testing.T) {
	states := TaskStates()
	allowed := 0
	for _, tc := range []struct {
		actor  Actor
		matrix []string
	}{{ActorManager, managerMatrix[:]}, {ActorWorker, workerMatrix[:]}} {
		if len(tc.matrix) != len(states) {
			t.Fatalf("%s matrix has %d rows, want %d", tc.actor, len(tc.matrix), len(states))
		}
		for _, from := range states {
			row := strings.Fields(tc.matrix[from])
			if len(row) != len(states) {
				t.Fatalf("%s row %s has %d columns", tc.actor, from, len(row))
			}
			for _, to := range states {
				mark := row[to]
				if (mark == "=") != (from == to) {
					t.Fatalf("%s matrix: '=' misplaced at %s→%s", tc.actor, from, to)
				}
				want := mark != "."
				err := CheckTransition(from, to, tc.actor)
				if want && err != nil {
					t.Errorf("%s %s→%s refused: %v", tc.actor, from, to, err)
				}
				if !want && err == nil {
					t.Errorf("%s %s→%s allowed, want refused", tc.actor, from, to)
				}
				if err == nil {
					allowed++
				}
			}
		}
	}
	// Counted by hand from the rules: 14 same-state moves per actor; the
	// manager's 7 from NEW, 7 from PENDING and ORPHANED from the 6 states
	// ASSIGNED…RUNNING; the worker's 9, 8, 7, 6, 5, 4 forward moves from
	// ASSIGNED…RUNNING. A row pasted twice in a matrix would not add up.
	if want := 2*14 + (7 + 7 + 6) + (9 + 8 + 7 + 6 + 5 + 4); allowed != want {
		t.Errorf("%d allowed transitions, want %d", allowed, want)
	}
}

func TestTransitionRefusals(t *testing.T) {
	states := TaskStates()
	for _, by := range []Actor{ActorManager, ActorWorker} {
		for _, from := range states {
			for _, to := range states {
				err := CheckTransition(from, to, by)
				switch {
				case from == to:
					if err != nil {
						t.Errorf("%s: same state %s refused: %v", by, from, err)
					}
				case from.Terminal():
					if err == nil || !strings.Contains(err.Error(), from.String()+" is terminal") {
						t.Errorf("%s: %s→%s out of a terminal state: %v", by, from, to, err)
					}
				case to < from:
					if err == nil || !strings.Contains(err.Error(), "cannot move backwards") {
						t.Errorf("%s: backwards %s→%s: %v", by, from, to, err)
					}
				}
			}
		}
	}
	for _, tc := range []struct {
		from, to TaskState
		by       Actor
		want     string
	}{
		{TaskStateAssigned, TaskStateRunning, ActorManager, "task state: only the worker moves a task from assigned to running"},
		{TaskStateRunning, TaskStateShutdown, ActorManager, "task state: only the worker moves a task from running to shutdown"},
		{TaskStatePending, TaskStateAssigned, ActorWorker, "task state: a worker cannot move a task that is still pending (not yet assigned)"},
		{TaskStateRunning, TaskStateOrphaned, ActorWorker, "task state: only managers set orphaned"},
		{TaskStateRunning, TaskStateRemove, ActorWorker, "task state: only managers set remove"},
		{TaskStateFailed, TaskStateRunning, ActorWorker, "task state: failed is terminal, cannot move to running"},
		{TaskStateRunning, TaskStateStarting, ActorWorker, "task state: cannot move backwards from running to starting"},
		{-1, TaskStateNew, ActorManager, "task state: invalid current state -1"},
		{TaskStateNew, 14, ActorManager, "task state: invalid new state 14"},
		{TaskStateNew, TaskStatePending, Actor(7), "task state: unknown actor 7"},
	} {
		err := CheckTransition(tc.from, tc.to, tc.by)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v→%v by %v: got %v, want %q", tc.from, tc.to, tc.by, err, tc.want)
		}
	}
}

func TestTaskStateNames(t *testing.T) {
	want := []string{"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running",
		"complete", "shutdown", "failed", "rejected", "remove", "orphaned"}
	states := TaskStates()
	if len(states) != len(want) {
		t.Fatalf("%d states, want %d", len(states), len(want))
	}
	for i, s := range states {
		if int(s) != i || s.String() != want[i] {
			t.Errorf("state %d = %d %q, want %q", i, int(s), s, want[i])
		}
		if got := s.Terminal(); got != (s >= TaskStateComplete) {
			t.Errorf("%s.Terminal() = %v", s, got)
		}
		for _, name := range []string{want[i], strings.ToUpper(want[i])} {
			if p, err := ParseTaskState(name); err != nil || p != s {
				t.Errorf("ParseTaskState(%q) = %v, %v", name, p, err)
			}
		}
	}
	if TaskStateRunning.Terminal() || !TaskStateComplete.Terminal() || !TaskStateOrphaned.Terminal() {
		t.Error("terminal boundary is not COMPLETE")
	}
	if _, err := ParseTaskState("done"); err == nil || err.Error() != `unknown task state "done"` {
		t.Errorf("ParseTaskState(done): %v", err)
	}
	if s := TaskState(99).String(); s != "TaskState(99)" {
		t.Errorf("invalid String() = %q", s)
	}
	if ActorManager.String() != "manager" || ActorWorker.String() != "worker" {
		t.Error("actor names")
	}
}

func TestTaskStateJSON(t *testing.T) {
	type doc struct {
		State TaskState `json:"State"`
	}
	b, err := json.Marshal(doc{TaskStateRunning})
	if err != nil || string(b) != `{"State":"running"}` {
		t.Fatalf("got %s, %v", b, err)
	}
	for _, s := range TaskStates() {
		b, err := json.Marshal(doc{s})
		if err != nil {
			t.Fatal(err)
		}
		var back doc
		if err := json.Unmarshal(b, &back); err != nil || back.State != s {
			t.Errorf("%s: round trip gave %v, %v (%s)", s, back.State, err, b)
		}
	}
	// Docker's clients may send any case.
	var d doc
	if err := json.Unmarshal([]byte(`{"State":"SHUTDOWN"}`), &d); err != nil || d.State != TaskStateShutdown {
		t.Errorf("upper case: %v %v", d.State, err)
	}
	if err := json.Unmarshal([]byte(`{"State":"bogus"}`), &d); err == nil {
		t.Error("unknown state accepted")
	}
	if err := json.Unmarshal([]byte(`{"State":7}`), &d); err == nil {
		t.Error("a number accepted: the JSON form is the name")
	}
	if _, err := json.Marshal(doc{TaskState(-1)}); err == nil {
		t.Error("invalid state marshalled")
	}
	// Map keys use the text form too.
	b, err = json.Marshal(map[TaskState]int{TaskStateFailed: 2})
	if err != nil || string(b) != `{"failed":2}` {
		t.Errorf("map key: %s %v", b, err)
	}
}
