package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A proposal's way through the node: Propose (or ProposeFramed) hands it
// to the raft loop and waits for its entry to apply; the loop takes it
// (handlePropose), gathers others under load (gather) and steps them into
// raft as one message (flushProposals), answering at once those raft
// refuses (proposed).

type proposal struct {
	id    proposalID
	data  []byte             // envelope of a normal entry
	cc    *raftpb.ConfChange // or a configuration change
	epoch uint64
	done  chan result
}

type result struct {
	index uint64
	err   error
}

func (p *proposal) finish(index uint64, err error) {
	select {
	case p.done <- result{index, err}:
	default:
	}
}

// Propose replicates data as one log entry and returns after the entry has
// been committed and applied to this member's FSM, with the entry's index
// and the error FSM.Apply returned for it (store.Proposer).
//
// On a follower the proposal is forwarded to the leader through raft
// itself and still returns after the local apply, so callers can propose
// on any member. Failures: a *NotLeaderError when no leader is known;
// ErrProposalDropped; ErrLostLeadership when the leader changed while the
// proposal was pending (its outcome is then unknown: it may still commit,
// at most once); the context's error when ctx ends first (same caveat);
// ErrStopped.
func (n *Node) Propose(ctx context.Context, data []byte) (uint64, error) {
	if max := n.MaxProposalSize(); len(data) > max {
		return 0, fmt.Errorf("%w: %d bytes, at most %d", ErrEntryTooLarge, len(data), max)
	}
	p := &proposal{id: n.nextID(), done: make(chan result, 1)}
	p.data = encodeEnvelope(p.id, data)
	return n.submit(ctx, p)
}

// ProposalHeadroom is how many bytes ProposeFramed wants free in front of
// a proposal: its envelope's.
func (n *Node) ProposalHeadroom() int { return envelopeHdrSize }

// ProposeFramed is Propose for data encoded at buf[ProposalHeadroom():]:
// the envelope is written over buf's first bytes, in place, instead of
// the data being copied behind a new one (a copy of every entry on the
// proposing member; the store encodes its proposals this way). buf is
// the node's from the call on: the caller must not change it again,
// except to propose it anew once this call said it was not proposed
// (ErrProposalDropped, no leader).
func (n *Node) ProposeFramed(ctx context.Context, buf []byte) (uint64, error) {
	if len(buf) < envelopeHdrSize {
		return 0, fmt.Errorf("raft: a framed proposal of %d bytes has no room for its %d-byte envelope", len(buf), envelopeHdrSize)
	}
	if max := n.MaxProposalSize(); len(buf)-envelopeHdrSize > max {
		return 0, fmt.Errorf("%w: %d bytes, at most %d", ErrEntryTooLarge, len(buf)-envelopeHdrSize, max)
	}
	p := &proposal{id: n.nextID(), done: make(chan result, 1)}
	p.data = frameEnvelope(p.id, buf)
	return n.submit(ctx, p)
}

// MaxProposalSize is the largest data Propose accepts: MaxEntrySize less
// the proposal's envelope. The store splits its writes to fit.
func (n *Node) MaxProposalSize() int { return int(n.cfg.MaxEntrySize) - envelopeHdrSize }

func (n *Node) nextID() proposalID {
	return proposalID{node: n.id, incarnation: n.incarnation, seq: n.seq.Add(1)}
}

func (n *Node) submit(ctx context.Context, p *proposal) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// propC has room after a stop too, and a select picks at random among
	// ready cases: look first, or a proposal to a stopped node would wait
	// for its whole ctx.
	select {
	case <-n.stopC:
		return 0, ErrStopped
	default:
	}
	select {
	case n.propC <- p:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.stopC:
		return 0, ErrStopped
	}
	select {
	case r := <-p.done:
		return r.index, r.err
	case <-n.doneC:
		// A proposal queued as the node stopped may have missed the
		// loop's last drain.
		select {
		case r := <-p.done:
			return r.index, r.err
		default:
		}
		return 0, ErrStopped
	case <-ctx.Done():
		n.wmu.Lock()
		delete(n.waiters, p.id)
		n.wmu.Unlock()
		// The result may have arrived meanwhile: prefer it.
		select {
		case r := <-p.done:
			return r.index, r.err
		default:
		}
		return 0, fmt.Errorf("raft: proposal not applied in time (it may still commit): %w", ctx.Err())
	}
}

// gatherMin is the smallest last batch after which the leader waits for
// more proposals (ProposalWait): below it, writers are few, and each
// would wait for others that are not coming.
const gatherMin = 4

// gather waits, on a leader under load (its last batch held at least
// gatherMin proposals), until as many proposals as last time are taken
// or ProposalWait has passed, taking messages meanwhile too: one Ready,
// one fdatasync and one append per follower then carry them all.
func (n *Node) gather() {
	want := n.lastBatch
	if n.cfg.ProposalWait <= 0 || want < gatherMin || len(n.batch) == 0 || len(n.batch) >= want || n.raftState != etcdraft.StateLeader {
		return
	}
	n.gathers.Add(1)
	t := time.NewTimer(n.cfg.ProposalWait)
	defer t.Stop()
	for len(n.batch) < want && len(n.batch) > 0 {
		select {
		case p := <-n.propC:
			n.handlePropose(p)
		case m := <-n.recvC:
			n.step(m)
		case <-t.C:
			return
		case <-n.stopC:
			return
		}
	}
}

func (n *Node) handlePropose(p *proposal) {
	if n.lead == 0 {
		p.finish(0, notLeader(0))
		return
	}
	if p.cc != nil {
		// In order after the data proposals before it.
		n.flushProposals()
	}
	p.epoch = n.epoch
	n.wmu.Lock()
	n.waiters[p.id] = p
	n.wmu.Unlock()
	if p.cc != nil {
		n.proposed([]*proposal{p}, n.rn.ProposeConfChange(p.cc))
		return
	}
	n.batch = append(n.batch, p)
	n.batchBytes += len(p.data)
	if n.batchBytes >= int(n.cfg.MaxSizePerMsg) {
		n.flushProposals()
	}
}

// flushProposals steps the data proposals the loop has taken since the
// last flush into raft as one message. Stepped one at a time, each made
// the leader send an append to every follower, and each append an
// acknowledgement back: ~2 messages per write per follower, marshalled,
// framed, sent and stepped, where one pair per batch does. A batch stays
// within MaxSizePerMsg, so that it goes out as one append.
func (n *Node) flushProposals() {
	if len(n.batch) == 0 {
		return
	}
	n.lastBatch = len(n.batch)
	ents := make([]*raftpb.Entry, len(n.batch))
	for i, p := range n.batch {
		ents[i] = &raftpb.Entry{Data: p.data}
	}
	err := n.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: proto.Uint64(n.id), Entries: ents})
	n.proposed(n.batch, err)
	clear(n.batch) // the proposals are the waiters' now
	n.batch, n.batchBytes = n.batch[:0], 0
}

// proposed answers the proposals raft refused (err != nil); the others
// wait for their entries to apply.
func (n *Node) proposed(ps []*proposal, err error) {
	if err == nil {
		return
	}
	switch {
	case n.raftState != etcdraft.StateLeader && errors.Is(err, etcdraft.ErrProposalDropped):
		err = notLeader(n.lead)
	case errors.Is(err, etcdraft.ErrProposalDropped):
		err = ErrProposalDropped
	default:
		err = fmt.Errorf("raft: propose: %w", err)
	}
	n.wmu.Lock()
	for _, p := range ps {
		delete(n.waiters, p.id)
	}
	n.wmu.Unlock()
	for _, p := range ps {
		p.finish(0, err)
	}
}
