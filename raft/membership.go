package raft

import (
	"context"
	"fmt"
	"slices"
	"time"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Membership changes are made on the leader, one at a time, with checks
// that raft itself does not make:
//
//   - AddMember adds the new member as a learner, waits until it has
//     caught up with the log (by snapshot if the log was compacted), then
//     promotes it to voter. A voter that is still empty would count in the
//     quorum without being able to vote usefully: adding a fourth member
//     to a cluster with one member down would then stall every write until
//     the newcomer caught up.
//   - RemoveMember and DemoteMember refuse a change after which the
//     reachable voters would not form a majority, and refuse to remove the
//     last voter; removing or demoting the leader itself first hands
//     leadership to the most up-to-date other voter.
//   - A removed member's ID is recorded in the replicated membership and
//     refused for ever: its messages are dropped and it is told it was
//     removed, whereupon it stops and marks its data dir as removed.

// memberView is what a membership operation needs from the raft loop.
type memberView struct {
	leader   bool
	lead     uint64
	member   Member
	exists   bool
	removed  bool
	voters   []uint64
	match    map[uint64]uint64
	commit   uint64
	lastSeen map[uint64]time.Time
}

func (n *Node) view(ctx context.Context, id uint64) (memberView, error) {
	var v memberView
	err := n.inLoop(ctx, func() {
		v.leader = n.raftState == etcdraft.StateLeader
		v.lead = n.lead
		v.member, v.exists = n.mem.members[id]
		v.removed = n.mem.removed[id]
		v.voters = slices.Clone(n.confState.GetVoters())
		// BasicStatus and WithProgress, not Status: Status copies every
		// follower's Progress with its in-flight window (4 KiB each), and
		// the roles loop asks for a view of every manager after each
		// write it sees.
		v.commit = n.rn.BasicStatus().HardState.GetCommit()
		v.match = map[uint64]uint64{}
		if v.leader { // as Status: a follower's progress means nothing
			n.rn.WithProgress(func(pid uint64, _ etcdraft.ProgressType, pr tracker.Progress) {
				v.match[pid] = pr.Match
			})
		}
		v.lastSeen = map[uint64]time.Time{}
		for pid, t := range n.lastContact {
			v.lastSeen[pid] = t
		}
	})
	return v, err
}

// reachable counts the voters in ids this leader heard from within an
// election timeout (itself included).
func (n *Node) reachable(v memberView, ids []uint64) int {
	timeout := time.Duration(n.cfg.ElectionTick) * n.cfg.TickInterval
	c := 0
	for _, id := range ids {
		if id == n.id || time.Since(v.lastSeen[id]) < timeout {
			c++
		}
	}
	return c
}

func (n *Node) proposeConfChange(ctx context.Context, typ raftpb.ConfChangeType, id uint64, addr string) error {
	// One change at a time: etcd raft turns a configuration change
	// proposed while another is pending into an empty entry, and the
	// proposer would wait for an entry that never comes. Each change is
	// applied before the next is proposed. (Changes pending from an earlier
	// leader are applied before this node reports leadership.)
	select {
	case n.ccSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("raft: %s %x: waiting for another configuration change: %w", typ, id, ctx.Err())
	}
	defer func() { <-n.ccSem }()
	p := &proposal{id: n.nextID(), done: make(chan result, 1)}
	p.cc = &raftpb.ConfChange{Type: typ.Enum(), NodeId: new(id), Context: encodeEnvelope(p.id, []byte(addr))}
	_, err := n.submit(ctx, p)
	if err != nil {
		return fmt.Errorf("raft: %s %x: %w", typ, id, err)
	}
	return nil
}

// AddMember adds member id, reachable at addr, to the cluster: as a
// learner first, promoted to voter once it has caught up (ctx bounds the
// whole). The new member must be started with an empty storage and no
// Peers: it waits for the leader to contact it. Must be called on the
// leader (else a *NotLeaderError). A removed ID is refused.
func (n *Node) AddMember(ctx context.Context, id uint64, addr string) error {
	if id == 0 || addr == "" {
		return fmt.Errorf("raft: add member: ID and address are required")
	}
	v, err := n.view(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case v.removed:
		return fmt.Errorf("raft: cannot add member %x: %w; it must join with a new ID", id, ErrRemoved)
	case !v.leader:
		return fmt.Errorf("raft: add member %x: %w", id, notLeader(v.lead))
	case v.exists && !v.member.Learner:
		return fmt.Errorf("raft: add member %x: %w", id, ErrMemberExists)
	}
	if !v.exists {
		if err := n.proposeConfChange(ctx, raftpb.ConfChangeAddLearnerNode, id, addr); err != nil {
			return err
		}
	}
	// Wait until the learner holds everything committed so far.
	v, err = n.view(ctx, id)
	if err != nil {
		return err
	}
	target := v.commit
	for {
		if !v.leader {
			return fmt.Errorf("raft: add member %x: lost leadership while the learner caught up: %w", id, notLeader(v.lead))
		}
		if v.match[id] >= target {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("raft: add member %x: learner at %d did not catch up to %d in time: %w", id, v.match[id], target, ctx.Err())
		case <-time.After(n.cfg.TickInterval / 2):
		}
		if v, err = n.view(ctx, id); err != nil {
			return err
		}
	}
	voters := append(slices.Clone(v.voters), id)
	if r, q := n.reachable(v, voters), len(voters)/2+1; r < q {
		return fmt.Errorf("raft: promoting member %x would make %d voters with %d reachable, below the quorum of %d: %w",
			id, len(voters), r, q, ErrQuorumLoss)
	}
	return n.proposeConfChange(ctx, raftpb.ConfChangeAddNode, id, addr)
}

// RemoveMember removes member id from the cluster for good (its ID can
// never rejoin). It refuses to remove the last voter, or a voter whose
// removal leaves fewer reachable voters than a majority of the rest, with
// an error wrapping ErrQuorumLoss that says so. Removing the leader itself
// transfers leadership first. Must be called on the leader.
func (n *Node) RemoveMember(ctx context.Context, id uint64) error {
	return n.removeOrDemote(ctx, id, raftpb.ConfChangeRemoveNode)
}

// DemoteMember turns voter id into a learner (it keeps replicating but no
// longer votes), with the same checks as RemoveMember.
func (n *Node) DemoteMember(ctx context.Context, id uint64) error {
	return n.removeOrDemote(ctx, id, raftpb.ConfChangeAddLearnerNode)
}

func (n *Node) removeOrDemote(ctx context.Context, id uint64, typ raftpb.ConfChangeType) error {
	what := "remove"
	if typ == raftpb.ConfChangeAddLearnerNode {
		what = "demote"
	}
	v, err := n.view(ctx, id)
	if err != nil {
		return err
	}
	if typ == raftpb.ConfChangeAddLearnerNode && v.exists && v.leader && v.member.Learner {
		return nil
	}
	if err := n.checkRemove(v, id, what); err != nil {
		return err
	}
	if id == n.id {
		// The leader cannot remove itself gracefully: it would stop
		// leading mid-change. Hand over first; the change is then proposed
		// through the new leader like any follower's proposal.
		if err := n.TransferLeadership(ctx, 0); err != nil {
			return fmt.Errorf("raft: %s member %x (the leader): %w", what, id, err)
		}
	}
	addr := v.member.Addr
	if typ == raftpb.ConfChangeRemoveNode {
		addr = ""
	}
	return n.proposeConfChange(ctx, typ, id, addr)
}

// CheckRemove says whether RemoveMember(id) would be refused now, and why,
// without changing anything. Must be called on the leader.
func (n *Node) CheckRemove(ctx context.Context, id uint64) error {
	v, err := n.view(ctx, id)
	if err != nil {
		return err
	}
	return n.checkRemove(v, id, "remove")
}

func (n *Node) checkRemove(v memberView, id uint64, what string) error {
	switch {
	case v.removed:
		return fmt.Errorf("raft: %s member %x: %w already", what, id, ErrRemoved)
	case !v.exists:
		return fmt.Errorf("raft: %s member %x: %w", what, id, ErrUnknownMember)
	case !v.leader:
		return fmt.Errorf("raft: %s member %x: %w", what, id, notLeader(v.lead))
	}
	if slices.Contains(v.voters, id) {
		rest := slices.DeleteFunc(slices.Clone(v.voters), func(x uint64) bool { return x == id })
		if len(rest) == 0 {
			return fmt.Errorf("raft: cannot %s member %x: it is the last voter: %w", what, id, ErrQuorumLoss)
		}
		if r, q := n.reachable(v, rest), len(rest)/2+1; r < q {
			return fmt.Errorf("raft: cannot %s member %x: %d voters would remain of which only %d are reachable, below the quorum of %d: %w",
				what, id, len(rest), r, q, ErrQuorumLoss)
		}
	}
	return nil
}

// TransferLeadership hands leadership to voter to (0: the most up-to-date
// reachable voter) and waits until it leads. Must be called on the leader.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) error {
	v, err := n.view(ctx, to)
	if err != nil {
		return err
	}
	if !v.leader {
		return fmt.Errorf("raft: transfer leadership: %w", notLeader(v.lead))
	}
	if to == n.id {
		return nil
	}
	if to == 0 {
		var best uint64
		for _, id := range v.voters {
			if id == n.id || n.reachable(v, []uint64{id}) == 0 {
				continue
			}
			if best == 0 || v.match[id] > v.match[best] {
				best = id
			}
		}
		if best == 0 {
			return fmt.Errorf("raft: transfer leadership: no other reachable voter: %w", ErrTransferFailed)
		}
		to = best
	} else if !slices.Contains(v.voters, to) {
		return fmt.Errorf("raft: transfer leadership to %x: not a voter: %w", to, ErrUnknownMember)
	}
	// Raft aborts a transfer after an election timeout; wait a little
	// longer than that.
	deadline := time.Duration(2*n.cfg.ElectionTick) * n.cfg.TickInterval
	tctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	changed := n.leadershipChanged()
	if err := n.inLoop(tctx, func() { n.rn.TransferLeader(to) }); err != nil {
		return err
	}
	for {
		l := n.Leadership()
		if l.Leader == to {
			return nil
		}
		select {
		case <-changed:
			changed = n.leadershipChanged()
		case <-tctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("raft: transfer leadership to %x: leader is still %x: %w", to, l.Leader, ErrTransferFailed)
		case <-n.doneC:
			return ErrStopped
		}
	}
}
