package api

import (
	"fmt"
	"strings"
)

// TaskState is where a task is in its life. States are ordered: a task only
// ever moves to a later state, never back.
type TaskState int

// Task states, in order. Managers move a task up to ASSIGNED; the worker that
// runs it moves it from ASSIGNED onward. COMPLETE and the states after it are
// terminal.
const (
	TaskStateNew TaskState = iota
	TaskStatePending
	TaskStateAssigned
	TaskStateAccepted
	TaskStatePreparing
	TaskStateReady
	TaskStateStarting
	TaskStateRunning
	TaskStateComplete
	TaskStateShutdown
	TaskStateFailed
	TaskStateRejected
	TaskStateRemove
	TaskStateOrphaned
)

var taskStateNames = [...]string{
	TaskStateNew:       "new",
	TaskStatePending:   "pending",
	TaskStateAssigned:  "assigned",
	TaskStateAccepted:  "accepted",
	TaskStatePreparing: "preparing",
	TaskStateReady:     "ready",
	TaskStateStarting:  "starting",
	TaskStateRunning:   "running",
	TaskStateComplete:  "complete",
	TaskStateShutdown:  "shutdown",
	TaskStateFailed:    "failed",
	TaskStateRejected:  "rejected",
	TaskStateRemove:    "remove",
	TaskStateOrphaned:  "orphaned",
}

// TaskStates lists every state in order.
func TaskStates() []TaskState {
	s := make([]TaskState, 0, len(taskStateNames))
	for i := range taskStateNames {
		s = append(s, TaskState(i))
	}
	return s
}

// String returns the lower-case name Docker uses ("running").
func (s TaskState) String() string {
	if s < 0 || int(s) >= len(taskStateNames) {
		return fmt.Sprintf("TaskState(%d)", int(s))
	}
	return taskStateNames[s]
}

// ParseTaskState parses a state name, in any case.
func ParseTaskState(name string) (TaskState, error) {
	for i, n := range taskStateNames {
		if strings.EqualFold(n, name) {
			return TaskState(i), nil
		}
	}
	return 0, fmt.Errorf("unknown task state %q", name)
}

// MarshalText writes the state's name, so JSON shows "running".
func (s TaskState) MarshalText() ([]byte, error) {
	return s.AppendText(nil)
}

// AppendText appends the state's name to b (encoding.TextAppender): the
// binary encoding writes every task's state and desired state with it
// without allocating.
func (s TaskState) AppendText(b []byte) ([]byte, error) {
	if s < 0 || int(s) >= len(taskStateNames) {
		return nil, fmt.Errorf("invalid task state %d", int(s))
	}
	return append(b, taskStateNames[s]...), nil
}

// UnmarshalText reads a state's name.
func (s *TaskState) UnmarshalText(b []byte) error {
	v, err := ParseTaskState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Terminal reports whether the state is final: COMPLETE or later.
func (s TaskState) Terminal() bool { return s >= TaskStateComplete }

// Actor is who moves a task: the managers or the worker that runs it.
type Actor int

// Actors.
const (
	ActorManager Actor = iota
	ActorWorker
)

func (a Actor) String() string {
	if a == ActorWorker {
		return "worker"
	}
	return "manager"
}

// CheckTransition reports whether actor may move a task's observed state from
// `from` to `to`, and why not. Setting the same state again (to refresh the
// message or timestamp) is allowed. The rules:
//   - a task never moves backwards, and a terminal state is final;
//   - managers move NEW→PENDING→ASSIGNED one step at a time (a task is
//     allocated before it is scheduled), may end a task that no worker has
//     yet (state < ASSIGNED) in any terminal state, and may mark any
//     non-terminal task ORPHANED when its node is lost;
//   - the worker moves a task from ASSIGNED onward, to any later state except
//     ORPHANED (which only managers decide) and REMOVE (a manager's desired state).
func CheckTransition(from, to TaskState, by Actor) error {
	if from < 0 || int(from) >= len(taskStateNames) {
		return fmt.Errorf("task state: invalid current state %d", int(from))
	}
	if to < 0 || int(to) >= len(taskStateNames) {
		return fmt.Errorf("task state: invalid new state %d", int(to))
	}
	if from == to {
		return nil
	}
	if from.Terminal() {
		return fmt.Errorf("task state: %s is terminal, cannot move to %s", from, to)
	}
	if to < from {
		return fmt.Errorf("task state: cannot move backwards from %s to %s", from, to)
	}
	switch by {
	case ActorManager:
		switch {
		case to == TaskStateOrphaned:
			return nil
		case to == TaskStatePending || (to == TaskStateAssigned && from == TaskStatePending):
			return nil
		case from < TaskStateAssigned && to.Terminal():
			return nil
		}
		return fmt.Errorf("task state: only the worker moves a task from %s to %s", from, to)
	case ActorWorker:
		if from < TaskStateAssigned {
			return fmt.Errorf("task state: a worker cannot move a task that is still %s (not yet assigned)", from)
		}
		if to == TaskStateOrphaned || to == TaskStateRemove {
			return fmt.Errorf("task state: only managers set %s", to)
		}
		return nil
	}
	return fmt.Errorf("task state: unknown actor %d", int(by))
}
