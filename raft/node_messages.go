package raft

// Messages to and from the other members: what raft sends goes out through
// the Transport (snapshots streamed from their files), and what arrives is
// stepped into raft by the Handler methods.

import (
	"context"
	"fmt"
	"io"
	"time"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

func (n *Node) send(msgs []*raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap {
			n.sendSnapshot(m)
			continue
		}
		out = append(out, m)
	}
	if len(out) > 0 {
		n.transport.Send(out)
	}
}

// sendSnapshot streams a snapshot to a follower in the background: the
// loop keeps running (and heartbeating) meanwhile, and raft sends nothing
// else to that follower until ReportSnapshot.
func (n *Node) sendSnapshot(m *raftpb.Message) {
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		si, st := snapIndexTerm(m.GetSnapshot())
		to := m.GetTo()
		status := etcdraft.SnapshotFinish
		rc, err := n.storage.OpenSnapshot(si, st)
		if err == nil {
			start := time.Now()
			err = n.transport.SendSnapshot(n.ctx, m, rc)
			rc.Close()
			if err == nil {
				n.log.Info("snapshot sent", "to", fmt.Sprintf("%x", to), "index", si, "took", time.Since(start))
			}
		}
		if err != nil {
			n.log.Warn("snapshot send failed", "to", fmt.Sprintf("%x", to), "index", si, "err", err)
			status = etcdraft.SnapshotFailure
		}
		select {
		case n.ctrlC <- func() { n.rn.ReportSnapshot(to, status) }:
		case <-n.stopC:
		}
	}()
}

// Step implements Handler.
func (n *Node) Step(ctx context.Context, m *raftpb.Message) error {
	if m.GetTo() != n.id {
		return fmt.Errorf("raft: message for %x delivered to %x", m.GetTo(), n.id)
	}
	if rm := n.removedIDs.Load(); rm != nil && (*rm)[m.GetFrom()] {
		return fmt.Errorf("raft: messages from member %x refused: %w", m.GetFrom(), ErrRemoved)
	}
	select {
	case n.recvC <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopC:
		return ErrStopped
	}
}

// ReceiveSnapshot implements Handler: the data is written to the storage
// as it streams in and checked against the size and checksum the MsgSnap
// names; only then is the MsgSnap handed to raft.
func (n *Node) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, data io.Reader) error {
	if m.GetTo() != n.id || m.GetType() != raftpb.MsgSnap {
		return fmt.Errorf("raft: unexpected snapshot message %s for %x", m.GetType(), m.GetTo())
	}
	if rm := n.removedIDs.Load(); rm != nil && (*rm)[m.GetFrom()] {
		return fmt.Errorf("raft: snapshot from member %x refused: %w", m.GetFrom(), ErrRemoved)
	}
	si, st := snapIndexTerm(m.GetSnapshot())
	ref, err := decodeSnapRef(m.GetSnapshot().GetData())
	if err != nil {
		return err
	}
	sink, err := n.storage.NewSnapshotSink(si, st)
	if err != nil {
		return err
	}
	h := newCRC()
	size, err := io.Copy(io.MultiWriter(sink, h), data)
	if err != nil {
		sink.Abort()
		return fmt.Errorf("raft: receive snapshot %d: %w", si, err)
	}
	if uint64(size) != ref.size || h.Sum32() != ref.crc {
		sink.Abort()
		return fmt.Errorf("raft: received snapshot %d has %d bytes, crc %08x; expected %d, %08x: %w",
			si, size, h.Sum32(), ref.size, ref.crc, ErrCorrupt)
	}
	if _, _, err := sink.Commit(); err != nil {
		return err
	}
	n.log.Info("snapshot received", "from", fmt.Sprintf("%x", m.GetFrom()), "index", si, "bytes", size)
	return n.Step(ctx, m)
}

// ReportUnreachable implements Handler.
func (n *Node) ReportUnreachable(id uint64) {
	select {
	case n.unreachC <- id:
	default:
	}
}

// ReportRemoved implements Handler: a peer refused this member's messages
// because it was removed. The removal is recorded and the node stops.
func (n *Node) ReportRemoved(by uint64) {
	if n.toldRemoved.Swap(true) {
		return
	}
	go func() {
		err := n.inLoop(n.ctx, func() {
			if err := n.storage.MarkRemoved(); err != nil {
				n.log.Error("cannot record this member's removal", "err", err)
			}
		})
		if err == nil {
			n.fatal(fmt.Errorf("raft: member %x (peer %x refuses its messages): %w", n.id, by, ErrRemoved))
		}
	}()
}
