package raft

import (
	"fmt"
	"log/slog"
	"slices"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// forceNewCluster rewrites a member's stored state into a one-member
// cluster, as etcd's --force-new-cluster does: configuration changes that
// make this member the only voter and remove every other member are
// appended as committed entries, and the term is bumped so that nothing
// sent under the old cluster's terms is taken for current.
//
// Unlike etcd, entries past the stored commit index are kept (and so
// commit): the stored commit index may lag the cluster's, since a Ready
// that only moves it is not written, and every write acknowledged to a
// client that this member holds must survive. An entry of unknown outcome
// may thereby commit, as any such proposal may.
func forceNewCluster(st Storage, self uint64, selfAddr string, base *membership, log *slog.Logger) error {
	hs, _, err := st.InitialState()
	if err != nil {
		return fmt.Errorf("raft: force new cluster: %w", err)
	}
	if etcdraft.IsEmptyHardState(hs) {
		return fmt.Errorf("raft: force new cluster: member %x has no stored state to recover from", self)
	}
	last, err := st.LastIndex()
	if err != nil {
		return fmt.Errorf("raft: force new cluster: %w", err)
	}
	mem, cs, err := replayMembershipTo(st, base, last)
	if err != nil {
		return fmt.Errorf("raft: force new cluster: %w", err)
	}
	if mem.removed[self] {
		return fmt.Errorf("raft: force new cluster: member %x: %w", self, ErrRemoved)
	}
	commit := hs.GetCommit()
	lastTerm, err := st.Term(last)
	if err != nil {
		return fmt.Errorf("raft: force new cluster: %w", err)
	}
	term := max(hs.GetTerm(), lastTerm) + 1
	index := last
	var ents []*raftpb.Entry
	add := func(typ raftpb.ConfChangeType, id uint64, addr string) error {
		cc := &raftpb.ConfChange{Type: typ.Enum(), NodeId: new(id), Context: encodeEnvelope(proposalID{}, []byte(addr))}
		b, err := proto.Marshal(cc)
		if err != nil {
			return err
		}
		index++
		ents = append(ents, &raftpb.Entry{Type: raftpb.EntryConfChange.Enum(), Term: new(term), Index: new(index), Data: b})
		return nil
	}
	if !slices.Contains(cs.GetVoters(), self) {
		addr := mem.members[self].Addr
		if addr == "" {
			addr = selfAddr
		}
		if err := add(raftpb.ConfChangeAddNode, self, addr); err != nil {
			return err
		}
	}
	var others []uint64
	for _, id := range append(slices.Clone(cs.GetVoters()), cs.GetLearners()...) {
		if id != self {
			others = append(others, id)
		}
	}
	slices.Sort(others)
	for _, id := range others {
		if err := add(raftpb.ConfChangeRemoveNode, id, ""); err != nil {
			return err
		}
	}
	// An empty entry in the new term, so that the log ends in it even when
	// no configuration change is needed.
	index++
	ents = append(ents, &raftpb.Entry{Type: raftpb.EntryNormal.Enum(), Term: new(term), Index: new(index)})
	nhs := &raftpb.HardState{Term: new(term), Vote: new(uint64(0)), Commit: new(index)}
	if err := st.Save(nhs, ents, nil, true); err != nil {
		return fmt.Errorf("raft: force new cluster: %w", err)
	}
	log.Warn("forced a new one-member cluster from this member's data",
		"stored_commit", commit, "log_kept_to", last, "removed_members", fmt.Sprintf("%x", others), "new_term", term)
	return nil
}
