package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// MaxAssignmentsBytes bounds the tasks of one assignments message (the
// contract's).
const MaxAssignmentsBytes = session.MaxAssignmentsBytes

// taskBytes is what a task adds to a message.
func taskBytes(t *api.Task) int {
	b, err := json.Marshal(t)
	if err != nil {
		return MaxAssignmentsBytes // alone in its message: the codec reports the error
	}
	return len(b)
}

// removedBytes is what a removed task's ID adds to a message.
const removedBytes = api.IDLength + 3

// parts splits a complete set into messages within MaxAssignmentsBytes;
// an empty set is one empty message.
func parts(tasks []*api.Task) []*AssignmentsMessage {
	out := []*AssignmentsMessage{{Type: AssignmentsComplete}}
	size := 0
	for _, t := range tasks {
		b := taskBytes(t)
		last := out[len(out)-1]
		if len(last.Tasks) > 0 && size+b > MaxAssignmentsBytes {
			last.More = true
			last = &AssignmentsMessage{Type: AssignmentsComplete}
			out = append(out, last)
			size = 0
		}
		last.Tasks = append(last.Tasks, t)
		size += b
	}
	return out
}

// assignedTo reports whether a task is the node's to run: placed on it and
// handed over (ASSIGNED or later). Global tasks name their node from birth,
// but only become the worker's once the scheduler confirmed them.
func assignedTo(t *api.Task, nodeID string) bool {
	return t.NodeID == nodeID && t.Status.State >= api.TaskStateAssigned
}

// workerCares reports whether a change of a task must reach its worker: the
// worker itself is the source of status changes, so those are not echoed.
func workerCares(old, cur *api.Task) bool {
	if old == nil || old.Status.State < api.TaskStateAssigned || old.NodeID != cur.NodeID {
		return true
	}
	return old.DesiredState != cur.DesiredState || old.SpecVersion != cur.SpecVersion
}

type stream struct {
	ctx  context.Context
	ch   chan *AssignmentsMessage
	done <-chan struct{}
}

func (s *stream) Recv() (*AssignmentsMessage, error) {
	select {
	case m, ok := <-s.ch:
		if !ok {
			return nil, ErrSessionInvalid
		}
		return m, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// Assignments streams the node's tasks: first the complete set, then every
// change, one message per committed transaction that touched the node, and
// the complete set again after a restore of the store.
func (d *Dispatcher) Assignments(ctx context.Context, req *AssignmentsRequest) (AssignmentStream, error) {
	if err := bindCaller(ctx, "Assignments", req.NodeID); err != nil {
		return nil, err
	}
	sess, err := d.session(req.NodeID, req.SessionID)
	if err != nil {
		return nil, err
	}
	runCtx, err := d.runningCtx()
	if err != nil {
		return nil, err
	}
	nodeID := req.NodeID
	w, initial, err := d.watchAssignments(nodeID)
	if err != nil {
		return nil, err
	}
	out := make(chan *AssignmentsMessage, 16)
	s := &stream{ctx: ctx, ch: out, done: sess.done}
	go func() {
		defer close(out)
		defer func() { w.Close() }()
		send := func(m *AssignmentsMessage) bool {
			select {
			case out <- m:
				return true
			case <-ctx.Done():
			case <-sess.done:
			case <-runCtx.Done():
			}
			return false
		}
		keyChanged := d.assignKeyWatch()
		for _, m := range parts(d.proven(sess, initial)) {
			if !send(m) {
				return
			}
		}
		initial = nil
		msg := &AssignmentsMessage{Type: AssignmentsIncremental}
		size := 0
		// add puts a change in the message, sending the message first
		// when the change would take it past MaxAssignmentsBytes.
		add := func(b int, put func()) bool {
			if len(msg.Tasks)+len(msg.Removed) > 0 && size+b > MaxAssignmentsBytes {
				if !send(msg) {
					return false
				}
				msg, size = &AssignmentsMessage{Type: AssignmentsIncremental}, 0
			}
			put()
			size += b
			return true
		}
		// resend sends the complete set again, from the state as it is
		// now, on the same stream; the changes gathered are part of it.
		resend := func() bool {
			w.Close()
			fresh, set, err := d.watchAssignments(nodeID)
			if err != nil {
				return false // the store closed
			}
			w = fresh
			msg, size = &AssignmentsMessage{Type: AssignmentsIncremental}, 0
			for _, m := range parts(d.proven(sess, set)) {
				if !send(m) {
					return false
				}
			}
			return true
		}
		for {
			select {
			case ev, ok := <-w.Events():
				if !ok {
					return
				}
				switch ev.Action {
				case store.ActionCommit:
					if len(msg.Tasks)+len(msg.Removed) > 0 {
						if !send(msg) {
							return
						}
						msg, size = &AssignmentsMessage{Type: AssignmentsIncremental}, 0
					}
					continue
				case store.ActionRestore:
					// State replaced wholesale: the node gets its
					// complete set again, from the new state, on the
					// same stream. The changes gathered are part of it.
					if !resend() {
						return
					}
					continue
				}
				t, _ := ev.Object.(*api.Task)
				if t == nil {
					continue
				}
				old, _ := ev.Old.(*api.Task)
				sent := true
				switch {
				case ev.Action == store.ActionDelete && t.NodeID == nodeID:
					sent = add(removedBytes, func() { msg.Removed = append(msg.Removed, t.ID) })
				case assignedTo(t, nodeID) && workerCares(old, t):
					t = d.proven(sess, []*api.Task{t})[0]
					sent = add(taskBytes(t), func() { msg.Tasks = append(msg.Tasks, t) })
				case old != nil && old.NodeID == nodeID && t.NodeID != nodeID:
					sent = add(removedBytes, func() { msg.Removed = append(msg.Removed, t.ID) })
				}
				if !sent {
					return
				}
			case <-keyChanged:
				// A new assignment key (the first, in a cluster made
				// before them): the tasks sent so far lack its proof.
				keyChanged = d.assignKeyWatch()
				if sess.mesh && !resend() {
					return
				}
			case <-ctx.Done():
				return
			case <-sess.done:
				return
			case <-runCtx.Done():
				return
			}
		}
	}()
	return s, nil
}

// watchAssignments reads the tasks assigned to a node, by ID, and watches
// the changes of its tasks from then on.
func (d *Dispatcher) watchAssignments(nodeID string) (*store.Watcher, []*api.Task, error) {
	var set []*api.Task
	w, err := d.store.ViewAndWatch(func(tx store.ReadTx) error {
		tasks, err := tx.FindTasks(store.ByNodeID(nodeID))
		if err != nil {
			return err
		}
		for _, t := range tasks {
			if assignedTo(t, nodeID) {
				set = append(set, t)
			}
		}
		return nil
	}, store.TaskOnNode(nodeID))
	if err != nil {
		return nil, nil, fmt.Errorf("assignments for node %s: %w", nodeID, err)
	}
	sort.Slice(set, func(i, j int) bool { return set[i].ID < set[j].ID })
	return w, set, nil
}
