package raft

// Configuration changes as the node sees them: the membership replayed from
// the storage when it starts, each committed change applied to raft and to
// the membership, and the members published to readers.

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// replayMembership computes the membership and raft configuration as of
// the last committed entry: the snapshot's, changed by the committed
// configuration changes after it.
func replayMembership(st Storage, base *membership) (*membership, *raftpb.ConfState, error) {
	hs, _, _ := st.InitialState()
	return replayMembershipTo(st, base, hs.GetCommit())
}

func replayMembershipTo(st Storage, base *membership, upTo uint64) (*membership, *raftpb.ConfState, error) {
	mem := base.clone()
	snap, _ := st.Snapshot()
	cs := proto.Clone(raftpb.EnsureConfState(snap.GetMetadata().GetConfState())).(*raftpb.ConfState)
	si, _ := snapIndexTerm(snap)
	if upTo <= si {
		return mem, cs, nil
	}
	ents, err := st.Entries(si+1, upTo+1, 1<<62)
	if err != nil {
		return nil, nil, fmt.Errorf("raft: read log: %w", err)
	}
	for _, e := range ents {
		if e.GetType() != raftpb.EntryConfChange {
			continue
		}
		var cc raftpb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, nil, fmt.Errorf("raft: configuration change at %d: %v: %w", e.GetIndex(), err, ErrCorrupt)
		}
		mem.apply(&cc)
		cs = applyToConfState(cs, &cc)
	}
	return mem, cs, nil
}

// apply records a committed configuration change in the membership.
func (m *membership) apply(cc *raftpb.ConfChange) {
	id := cc.GetNodeId()
	var addr string
	if _, a, err := decodeEnvelope(cc.GetContext()); err == nil {
		addr = string(a)
	}
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		old := m.members[id]
		if addr == "" {
			addr = old.Addr
		}
		m.members[id] = Member{ID: id, Addr: addr, Learner: cc.GetType() == raftpb.ConfChangeAddLearnerNode}
	case raftpb.ConfChangeRemoveNode:
		delete(m.members, id)
		m.removed[id] = true
	case raftpb.ConfChangeUpdateNode:
		if old, ok := m.members[id]; ok && addr != "" {
			old.Addr = addr
			m.members[id] = old
		}
	}
}

// applyToConfState mirrors a simple configuration change on a ConfState,
// for the replay before raft runs (raft itself is the authority once it
// does).
func applyToConfState(cs *raftpb.ConfState, cc *raftpb.ConfChange) *raftpb.ConfState {
	out := &raftpb.ConfState{}
	id := cc.GetNodeId()
	for _, v := range cs.GetVoters() {
		if v != id {
			out.Voters = append(out.Voters, v)
		}
	}
	for _, v := range cs.GetLearners() {
		if v != id {
			out.Learners = append(out.Learners, v)
		}
	}
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode:
		out.Voters = append(out.Voters, id)
	case raftpb.ConfChangeAddLearnerNode:
		out.Learners = append(out.Learners, id)
	case raftpb.ConfChangeRemoveNode:
	default:
		// An update, or a type raft refuses: membership.apply changes no
		// member either. Dropping the member here made the two disagree
		// (found by FuzzReplayMembership).
		return cs
	}
	return out
}

func hasConfChange(ents []*raftpb.Entry) bool {
	for _, e := range ents {
		if e.GetType() == raftpb.EntryConfChange {
			return true
		}
	}
	return false
}

func (n *Node) applyConfChange(e *raftpb.Entry) (err error) {
	var cc raftpb.ConfChange
	if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
		return fmt.Errorf("raft: configuration change at %d: %v: %w", e.GetIndex(), err, ErrBadEntry)
	}
	defer func() {
		// etcd raft panics on a change its configuration cannot take; the
		// node refuses such changes before proposing them, so this is a
		// broken invariant: stop this member rather than the program.
		if r := recover(); r != nil {
			err = fmt.Errorf("raft: configuration change at %d refused by raft: %v", e.GetIndex(), r)
		}
	}()
	n.confState = n.rn.ApplyConfChange(&cc)
	id := cc.GetNodeId()
	n.mem.apply(&cc)
	switch cc.GetType() {
	case raftpb.ConfChangeRemoveNode:
		n.log.Info("member removed", "member", fmt.Sprintf("%x", id), "index", e.GetIndex())
		if id == n.id {
			n.removedSelf = true
		} else {
			n.transport.RemovePeer(id)
		}
	default:
		m := n.mem.members[id]
		n.log.Info("member added or changed", "member", fmt.Sprintf("%x", id), "addr", m.Addr, "learner", m.Learner, "index", e.GetIndex())
		if id != n.id && m.Addr != "" {
			if err := n.transport.AddPeer(id, m.Addr); err != nil {
				n.log.Warn("cannot add peer to transport", "peer", fmt.Sprintf("%x", id), "err", err)
			}
		}
	}
	return nil
}

// resetMembership replaces the membership with a snapshot's.
func (n *Node) resetMembership(m *membership) {
	for id := range n.mem.members {
		if _, ok := m.members[id]; !ok && id != n.id {
			n.transport.RemovePeer(id)
		}
	}
	n.mem = m.clone()
	for _, mb := range n.mem.members {
		if mb.ID != n.id && mb.Addr != "" {
			n.transport.AddPeer(mb.ID, mb.Addr)
		}
	}
	if n.mem.removed[n.id] {
		n.removedSelf = true
	}
}

func (n *Node) publishMembership() {
	rm := make(map[uint64]bool, len(n.mem.removed))
	for k := range n.mem.removed {
		rm[k] = true
	}
	n.removedIDs.Store(&rm)
	l := n.mem.list()
	n.members.Store(&l)
}
