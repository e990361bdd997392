package raft

import (
	"bufio"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The apply goroutine applies committed entries to the FSM in log order,
// answers the waiting proposals and takes snapshots. It is apart from the
// raft loop so that a slow FSM (a large Save, say) never delays heartbeats
// and elections: the loop only queues work for it.

type applyItem struct {
	snap      *raftpb.Snapshot // restore the FSM from this snapshot first
	ents      []*raftpb.Entry
	cs        *raftpb.ConfState // configuration after ents (nil: unchanged)
	mem       *membership       // membership after ents (nil: unchanged)
	failEpoch uint64            // then fail proposals made before this epoch
}

type applyQueue struct {
	mu     sync.Mutex
	items  []*applyItem
	signal chan struct{}
	closed bool
}

func newApplyQueue() *applyQueue { return &applyQueue{signal: make(chan struct{}, 1)} }

func (q *applyQueue) push(it *applyItem) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *applyQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take returns everything queued, waiting for something; more is false
// once the queue is closed and empty. It returns nothing (and more) when
// quiet fires first.
func (q *applyQueue) take(quiet <-chan time.Time) (items []*applyItem, more bool) {
	for {
		q.mu.Lock()
		items, q.items = q.items, nil
		closed := q.closed
		q.mu.Unlock()
		if len(items) > 0 || closed {
			return items, !closed
		}
		select {
		case <-q.signal:
		case <-quiet:
			return nil, true
		}
	}
}

// applyState is owned by the apply goroutine.
type applyState struct {
	applied, appliedTerm uint64
	lastSnap             uint64
	cs                   *raftpb.ConfState
	mem                  *membership
	dedup                *dedup
	// logBytes counts the bytes of the entries applied since the last
	// snapshot; recent holds the sizes of the last entries applied (by
	// index modulo its length), to keep the catch-up entries within
	// SnapshotCatchUpBytes.
	logBytes uint64
	recent   []entrySize
	// snapping is set while a snapshot is written in the background.
	snapping atomic.Bool
	// batch gathers an item's entries for a BatchApplier.
	batch applyBatch
}

type entrySize struct {
	index uint64
	size  uint64
}

// noteEntry records the size of an applied entry.
func (a *applyState) noteEntry(index, size uint64) {
	a.logBytes += size
	if len(a.recent) > 0 {
		a.recent[index%uint64(len(a.recent))] = entrySize{index, size}
	}
}

// catchUpFrom returns the index to compact the log at after a snapshot at
// a.applied: the entries after it are the last ones applied, at most
// maxEntries of them holding at most maxBytes (an entry whose size is not
// known, applied before a restart, counts as empty).
func (a *applyState) catchUpFrom(maxEntries, maxBytes uint64) uint64 {
	keep, bytes := uint64(0), uint64(0)
	for keep < maxEntries && keep < a.applied {
		i := a.applied - keep
		var size uint64
		if len(a.recent) > 0 {
			if e := a.recent[i%uint64(len(a.recent))]; e.index == i {
				size = e.size
			}
		}
		if bytes+size > maxBytes {
			break
		}
		bytes += size
		keep++
	}
	return a.applied - keep
}

func (n *Node) runApply(a *applyState) {
	defer close(n.applyDone)
	a.lastSnap = a.applied
	a.recent = make([]entrySize, min(n.cfg.SnapshotCatchUpEntries, 1<<16))
	quiet := time.NewTimer(n.cfg.SnapshotQuiet)
	defer quiet.Stop()
	for {
		// After a burst of writes, a quiet log is snapshotted and
		// compacted: at rest, memory holds no more log than that.
		var wait <-chan time.Time
		if a.logBytes > n.cfg.SnapshotCatchUpBytes {
			quiet.Reset(n.cfg.SnapshotQuiet)
			wait = quiet.C
		}
		items, more := n.applyQ.take(wait)
		if more && len(items) == 0 {
			if err := n.takeSnapshot(a, n.cfg.ReleaseMemoryWhenQuiet); err != nil {
				n.log.Error("snapshot failed", "index", a.applied, "err", err)
				a.lastSnap, a.logBytes = a.applied, 0
			}
			continue
		}
		for _, it := range items {
			if err := n.applyOne(a, it); err != nil {
				n.fatal(err)
				// Keep draining so the loop can finish; apply nothing more.
				n.drainFailed()
				return
			}
		}
		if !more {
			return
		}
		wanted := n.snapWanted.Load() && a.applied > a.lastSnap
		// By count only once the log since the last snapshot holds as
		// many bytes as that snapshot: rewriting a large state (100,000
		// tasks are ~57 MB) costs about as much CPU as writing it, so
		// waiting for a log of its size keeps the snapshots' share of
		// each write constant as the state grows. At a quarter, the
		// three members of a cluster with 100,000 tasks each rewrote it
		// every ~15,000 updates, at once, and writes went 0.74x as fast
		// as with an empty store (docs/benchmarks.md, issue 14);
		// SnapshotBytes still bounds the log.
		byCount := a.applied-a.lastSnap >= n.cfg.SnapshotInterval && a.logBytes >= n.lastSnapSize.Load()
		if wanted || byCount || a.logBytes >= n.cfg.SnapshotBytes {
			if err := n.takeSnapshot(a, false); err != nil {
				// Not fatal: the log just grows until the next attempt.
				n.log.Error("snapshot failed", "index", a.applied, "err", err)
				a.lastSnap, a.logBytes = a.applied, 0
			}
			if wanted && a.lastSnap == a.applied {
				// Taken (or being written); otherwise asked again next time.
				n.snapWanted.Store(false)
			}
		}
	}
}

func (n *Node) drainFailed() {
	for {
		if _, more := n.applyQ.take(nil); !more {
			return
		}
	}
}

func (n *Node) applyOne(a *applyState, it *applyItem) error {
	if it.snap != nil {
		if err := n.restoreSnapshot(a, it.snap); err != nil {
			return err
		}
	}
	batch := &a.batch
	batch.reset()
	for _, e := range it.ents {
		if e.GetIndex() <= a.applied {
			continue
		}
		a.noteEntry(e.GetIndex(), uint64(len(e.GetData())))
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) == 0 {
				break // a new leader's empty entry
			}
			id, payload, err := decodeEnvelope(e.GetData())
			if err != nil {
				n.log.Error("skipping a committed entry not written by this package", "index", e.GetIndex(), "err", err)
				break
			}
			if !a.dedup.add(id) {
				// Raft never commits an entry twice; a proposal that shows
				// up again was resubmitted. Applying it twice would be the
				// bug, so it is skipped on every member alike.
				n.log.Warn("skipping a duplicate of an applied proposal", "index", e.GetIndex(),
					"proposer", fmt.Sprintf("%x", id.node), "seq", id.seq)
				break
			}
			if _, ok := n.fsm.(BatchApplier); ok {
				batch.add(id, e.GetIndex(), payload)
				break
			}
			aerr := n.fsm.Apply(e.GetIndex(), payload)
			n.finishWaiter(id, e.GetIndex(), aerr)
		case raftpb.EntryConfChange:
			// The entries before it are applied before it is.
			n.flushBatch(batch)
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err == nil {
				if id, _, err := decodeEnvelope(cc.GetContext()); err == nil {
					n.finishWaiter(id, e.GetIndex(), nil)
				}
			}
		}
		a.applied, a.appliedTerm = e.GetIndex(), e.GetTerm()
	}
	n.flushBatch(batch)
	if it.cs != nil {
		a.cs = it.cs
	}
	if it.mem != nil {
		a.mem = it.mem
	}
	if it.snap != nil || len(it.ents) > 0 {
		n.setApplied(a.applied, a.appliedTerm)
	}
	if it.failEpoch > 0 {
		n.failWaitersBefore(it.failEpoch)
	}
	return nil
}

// applyBatch is the normal entries of an applyItem waiting for a
// BatchApplier, reused from one item to the next.
type applyBatch struct {
	ids     []proposalID
	indexes []uint64
	data    [][]byte
}

func (b *applyBatch) reset() {
	clear(b.data) // the payloads are not kept alive by the buffer
	b.ids, b.indexes, b.data = b.ids[:0], b.indexes[:0], b.data[:0]
}

func (b *applyBatch) add(id proposalID, index uint64, payload []byte) {
	b.ids = append(b.ids, id)
	b.indexes = append(b.indexes, index)
	b.data = append(b.data, payload)
}

// flushBatch applies the batch's entries and then answers their
// proposers: a proposer that reads after its write is answered sees it.
func (n *Node) flushBatch(b *applyBatch) {
	if len(b.indexes) == 0 {
		return
	}
	errs := n.fsm.(BatchApplier).ApplyBatch(b.indexes, b.data)
	for i, id := range b.ids {
		var err error
		if i < len(errs) {
			err = errs[i]
		}
		n.finishWaiter(id, b.indexes[i], err)
	}
	b.reset()
}

// restoreSnapshot replaces the FSM's state with a snapshot's.
func (n *Node) restoreSnapshot(a *applyState, snap *raftpb.Snapshot) error {
	si, st := snapIndexTerm(snap)
	rc, err := n.storage.OpenSnapshot(si, st)
	if err != nil {
		return fmt.Errorf("raft: restore snapshot %d: %w", si, err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	h, err := readSnapHeader(br)
	if err != nil {
		return fmt.Errorf("raft: restore snapshot %d: %w", si, err)
	}
	start := time.Now()
	if err := n.fsm.Restore(br); err != nil {
		return fmt.Errorf("raft: restore snapshot %d into the FSM: %w", si, err)
	}
	n.log.Info("FSM restored from snapshot", "index", si, "took", time.Since(start))
	a.applied, a.appliedTerm, a.lastSnap, a.logBytes = si, st, si, 0
	a.cs = snap.GetMetadata().GetConfState()
	a.mem = h.members
	a.dedup = newDedup(n.cfg.DedupWindow)
	for _, id := range h.dedup {
		a.dedup.add(id)
	}
	return nil
}

func (n *Node) finishWaiter(id proposalID, index uint64, err error) {
	if id.node != n.id || id.incarnation != n.incarnation {
		return
	}
	n.wmu.Lock()
	p, ok := n.waiters[id]
	delete(n.waiters, id)
	n.wmu.Unlock()
	if ok {
		p.finish(index, err)
	}
}

func (n *Node) failWaitersBefore(epoch uint64) {
	var failed []*proposal
	n.wmu.Lock()
	for id, p := range n.waiters {
		if p.epoch < epoch {
			delete(n.waiters, id)
			failed = append(failed, p)
		}
	}
	n.wmu.Unlock()
	for _, p := range failed {
		p.finish(0, ErrLostLeadership)
	}
}

func (n *Node) setApplied(index, term uint64) {
	n.applied.Store(index)
	n.amu.Lock()
	kept := n.aWaiters[:0]
	for _, w := range n.aWaiters {
		if w.index <= index {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	n.aWaiters = kept
	n.amu.Unlock()
	n.lmu.Lock()
	n.appliedTerm = term
	n.publishLocked()
	n.lmu.Unlock()
}

// AppliedIndex returns the index of the last entry applied to the FSM.
func (n *Node) AppliedIndex() uint64 { return n.applied.Load() }

// WaitApplied waits until the FSM has applied index.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	if n.applied.Load() >= index {
		return nil
	}
	ch := make(chan struct{})
	n.amu.Lock()
	if n.applied.Load() >= index {
		n.amu.Unlock()
		return nil
	}
	n.aWaiters = append(n.aWaiters, appliedWaiter{index, ch})
	n.amu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.doneC:
		if n.applied.Load() >= index {
			return nil
		}
		return ErrStopped
	}
}

// LinearizableRead returns an index such that the local FSM, once it has
// applied it (which LinearizableRead waits for), reflects every write that
// completed anywhere before the call: raft's ReadIndex, confirmed by a
// heartbeat round with a quorum, so a deposed leader cannot answer from
// stale state. Read the FSM after it returns.
func (n *Node) LinearizableRead(ctx context.Context) (uint64, error) {
	r := &readReq{done: make(chan result, 1)}
	err := n.inLoop(ctx, func() {
		if n.lead == 0 {
			r.done <- result{err: notLeader(0)}
			return
		}
		n.readSeq++
		var b [8]byte
		putUint64(b[:], n.readSeq)
		r.epoch = n.epoch
		n.reads[n.readSeq] = r
		n.rn.ReadIndex(b[:])
	})
	if err != nil {
		return 0, err
	}
	var res result
	select {
	case res = <-r.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("raft: read index not confirmed in time: %w", ctx.Err())
	case <-n.doneC:
		return 0, ErrStopped
	}
	if res.err != nil {
		return 0, res.err
	}
	if err := n.WaitApplied(ctx, res.index); err != nil {
		return 0, fmt.Errorf("raft: waiting to apply up to read index %d: %w", res.index, err)
	}
	return res.index, nil
}

// ReadIndex is LinearizableRead without the index.
func (n *Node) ReadIndex(ctx context.Context) error {
	_, err := n.LinearizableRead(ctx)
	return err
}

func putUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// Leadership is this member's view of who leads.
type Leadership struct {
	// Leader is the leader's ID, 0 when none is known.
	Leader uint64
	// Term is the raft term.
	Term uint64
	// IsLeader: this member leads AND has applied every entry committed
	// before its term, so its FSM is current and leader-only work (the
	// orchestrators) may start.
	IsLeader bool
}

// setRaw records the raft loop's view (called by the loop).
func (n *Node) setRaw(lead, term uint64, leader bool) {
	n.lmu.Lock()
	n.rawLead, n.rawTerm, n.rawLeader = lead, term, leader
	n.publishLocked()
	n.lmu.Unlock()
}

func (n *Node) publishLocked() {
	l := Leadership{Leader: n.rawLead, Term: n.rawTerm, IsLeader: n.rawLeader && n.appliedTerm == n.rawTerm}
	if l == n.lstate {
		return
	}
	n.lstate = l
	close(n.lchanged)
	n.lchanged = make(chan struct{})
	for ch := range n.subs {
		select {
		case <-ch:
		default:
		}
		ch <- l
	}
}

// Leader returns the current leader's ID as this member knows it, 0 when
// none is known.
func (n *Node) Leader() uint64 {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	return n.lstate.Leader
}

// IsLeader reports whether this member leads and its FSM is current (see
// Leadership.IsLeader).
func (n *Node) IsLeader() bool {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	return n.lstate.IsLeader
}

// Leadership returns the current leadership view.
func (n *Node) Leadership() Leadership {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	return n.lstate
}

// WatchLeadership returns a channel that holds the latest leadership view:
// it receives the current one at once and then every change. A slow reader
// misses intermediate views but always finds the latest, which is what
// starting and stopping leader-only work needs. The channel is closed when
// the node stops or cancel is called.
func (n *Node) WatchLeadership() (<-chan Leadership, func()) {
	ch := make(chan Leadership, 1)
	n.lmu.Lock()
	select {
	case <-n.doneC:
		close(ch)
		n.lmu.Unlock()
		return ch, func() {}
	default:
	}
	ch <- n.lstate
	n.subs[ch] = struct{}{}
	n.lmu.Unlock()
	return ch, func() {
		n.lmu.Lock()
		defer n.lmu.Unlock()
		if _, ok := n.subs[ch]; ok {
			delete(n.subs, ch)
			close(ch)
		}
	}
}

// leadershipChanged returns a channel closed at the next change.
func (n *Node) leadershipChanged() <-chan struct{} {
	n.lmu.Lock()
	defer n.lmu.Unlock()
	return n.lchanged
}

// Status is a point-in-time summary of the node.
type Status struct {
	ID, Leader, Term, Commit, Applied uint64
	State                             string
	IsLeader                          bool
	Members                           []Member
}

// Status returns the node's status.
func (n *Node) Status() Status {
	s := Status{ID: n.id, Applied: n.applied.Load(), Members: n.Members()}
	l := n.Leadership()
	s.Leader, s.Term, s.IsLeader = l.Leader, l.Term, l.IsLeader
	s.State = "stopped"
	n.inLoop(context.Background(), func() {
		st := n.rn.BasicStatus()
		s.Commit = st.HardState.GetCommit()
		s.State = st.RaftState.String()
	})
	return s
}

// Members returns the cluster's members as this member knows them.
func (n *Node) Members() []Member {
	if p := n.members.Load(); p != nil {
		return append([]Member(nil), (*p)...)
	}
	return nil
}

var _ = etcdraft.StateLeader
