package dispatcher

import (
	"context"
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
func taskBytes(t *api.Task) int { return objBytes(t) }

// removedBytes is what a removed task's ID adds to a message.
const removedBytes = api.IDLength + 3

// builder fills messages of one type, each within MaxAssignmentsBytes
// unless it holds one item only; flush takes a full one.
type builder struct {
	typ   AssignmentsType
	msg   *AssignmentsMessage
	size  int
	flush func(*AssignmentsMessage) bool
}

func newBuilder(typ AssignmentsType, flush func(*AssignmentsMessage) bool) *builder {
	return &builder{typ: typ, msg: &AssignmentsMessage{Type: typ}, flush: flush}
}

// add puts an item of n bytes in the message, flushing the message first
// when the item would take it past MaxAssignmentsBytes.
func (b *builder) add(n int, put func(m *AssignmentsMessage)) bool {
	if !b.msg.Empty() && b.size+n > MaxAssignmentsBytes {
		if !b.flush(b.msg) {
			return false
		}
		b.reset()
	}
	put(b.msg)
	b.size += n
	return true
}

func (b *builder) reset() { b.msg, b.size = &AssignmentsMessage{Type: b.typ}, 0 }

// addDeps puts the secrets and configs a change brings, and those it
// takes away, in the message: before the tasks that need them.
func (b *builder) addDeps(o depsOut) bool {
	for _, s := range o.secrets {
		if !b.add(objBytes(s), func(m *AssignmentsMessage) { m.Secrets = append(m.Secrets, s) }) {
			return false
		}
	}
	for _, c := range o.configs {
		if !b.add(objBytes(c), func(m *AssignmentsMessage) { m.Configs = append(m.Configs, c) }) {
			return false
		}
	}
	for _, id := range o.removedSecrets {
		if !b.add(removedBytes, func(m *AssignmentsMessage) { m.RemovedSecrets = append(m.RemovedSecrets, id) }) {
			return false
		}
	}
	for _, id := range o.removedConfigs {
		if !b.add(removedBytes, func(m *AssignmentsMessage) { m.RemovedConfigs = append(m.RemovedConfigs, id) }) {
			return false
		}
	}
	return true
}

// parts splits a complete set into messages within MaxAssignmentsBytes;
// an empty set is one empty message.
func parts(tasks []*api.Task) []*AssignmentsMessage { return partsWith(depsOut{}, tasks) }

// partsWith is parts of a set with its secrets and configs, which come
// first.
func partsWith(o depsOut, tasks []*api.Task) []*AssignmentsMessage {
	var out []*AssignmentsMessage
	b := newBuilder(AssignmentsComplete, func(m *AssignmentsMessage) bool {
		m.More = true
		out = append(out, m)
		return true
	})
	b.addDeps(o)
	for _, t := range tasks {
		b.add(taskBytes(t), func(m *AssignmentsMessage) { m.Tasks = append(m.Tasks, t) })
	}
	return append(out, b.msg)
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
			d.delivered(nodeID, m)
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
		dep := newDeps(d.store)
		for _, m := range partsWith(dep.forSet(initial), d.proven(sess, initial)) {
			if !send(m) {
				return
			}
		}
		initial = nil
		// Changes go into incremental messages, each sent when full or
		// at the end of a transaction.
		b := newBuilder(AssignmentsIncremental, send)
		// resend sends the complete set again, from the state as it is
		// now, on the same stream; the changes gathered are part of it.
		resend := func() bool {
			w.Close()
			fresh, set, err := d.watchAssignments(nodeID)
			if err != nil {
				return false // the store closed
			}
			w = fresh
			b.reset()
			for _, m := range partsWith(dep.forSet(set), d.proven(sess, set)) {
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
					if !b.msg.Empty() {
						if !send(b.msg) {
							return
						}
						b.reset()
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
				// What the task holds of secrets and configs follows
				// every change, status-only ones too (a task that ended).
				var o depsOut
				deleted := ev.Action == store.ActionDelete
				dep.change(t, deleted, !deleted && assignedTo(t, nodeID), &o)
				sent := b.addDeps(o)
				switch {
				case !sent:
				case deleted && t.NodeID == nodeID:
					d.proofs.forget(t.ID)
					sent = b.add(removedBytes, func(m *AssignmentsMessage) { m.Removed = append(m.Removed, t.ID) })
				case assignedTo(t, nodeID) && workerCares(old, t):
					t = d.proven(sess, []*api.Task{t})[0]
					sent = b.add(taskBytes(t), func(m *AssignmentsMessage) { m.Tasks = append(m.Tasks, t) })
				case old != nil && old.NodeID == nodeID && t.NodeID != nodeID:
					sent = b.add(removedBytes, func(m *AssignmentsMessage) { m.Removed = append(m.Removed, t.ID) })
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
