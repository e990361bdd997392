package raft

import (
	"bufio"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Taking snapshots: when the apply loop decides one is due (apply.go), the
// FSM's state is taken where entries are applied and written, in the
// background for a Snapshotter, then recorded and the log compacted.

// takeSnapshot saves the FSM as of the last applied entry and compacts
// the log, keeping SnapshotCatchUpEntries entries (at most
// SnapshotCatchUpBytes of them) for slow followers. An FSM that is a
// Snapshotter has its state taken here and written in the background,
// while entries go on being applied: a snapshot of a large state (100,000
// tasks are tens of megabytes) then never stalls the writes behind it. One
// is written at a time; while it is, the next is not started. release
// returns memory to the OS once it is written (a quiet log).
func (n *Node) takeSnapshot(a *applyState, release bool) error {
	job := snapJob{index: a.applied, term: a.appliedTerm, mem: a.mem, dedup: a.dedup.ordered(), cs: a.cs,
		from: a.catchUpFrom(n.cfg.SnapshotCatchUpEntries, n.cfg.SnapshotCatchUpBytes), write: n.fsm.Save}
	snapper, ok := n.fsm.(Snapshotter)
	if !ok {
		err := n.writeSnapshot(job)
		a.lastSnap, a.logBytes = a.applied, 0
		if release {
			debug.FreeOSMemory()
		}
		return err
	}
	if !a.snapping.CompareAndSwap(false, true) {
		return nil // the one being written; the next waits for it
	}
	write, err := snapper.Snapshot()
	if err != nil {
		a.snapping.Store(false)
		return fmt.Errorf("raft: take FSM snapshot: %w", err)
	}
	job.write = write
	a.lastSnap, a.logBytes = a.applied, 0
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		defer a.snapping.Store(false)
		if err := n.writeSnapshot(job); err != nil {
			// Not fatal: the log just grows until the next attempt.
			n.log.Error("snapshot failed", "index", job.index, "err", err)
		}
		if release {
			debug.FreeOSMemory()
		}
	}()
	return nil
}

// snapJob is a snapshot taken: the state and the log position it belongs to.
type snapJob struct {
	index, term uint64
	mem         *membership
	dedup       []proposalID
	cs          *raftpb.ConfState
	from        uint64 // compact the log up to here once written
	write       func(io.Writer) error
}

func (n *Node) writeSnapshot(j snapJob) error {
	start := time.Now()
	sink, err := n.storage.NewSnapshotSink(j.index, j.term)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(sink, 1<<20)
	err = writeSnapHeader(bw, snapHeader{index: j.index, term: j.term, members: j.mem, dedup: j.dedup})
	if err == nil {
		err = j.write(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		sink.Abort()
		return fmt.Errorf("raft: save FSM: %w", err)
	}
	size, crc, err := sink.Commit()
	if err != nil {
		return err
	}
	n.lastSnapSize.Store(uint64(size))
	if err := n.storage.CreateSnapshot(j.index, j.cs, snapRef{size: size, crc: crc}.encode()); err != nil {
		return err
	}
	if j.from > 0 {
		if err := n.storage.Compact(j.from); err != nil {
			return err
		}
	}
	n.log.Info("snapshot taken", "index", j.index, "bytes", size, "took", time.Since(start))
	return nil
}
