package raft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrProposalDropped: the leader refused the proposal before appending it
// (a leadership transfer is in progress, or its uncommitted log is full).
// The proposal will not commit; retrying is safe.
var ErrProposalDropped = errors.New("raft: proposal dropped by the leader (leadership transfer in progress or too many uncommitted entries); it will not commit")

// Node is one member of a raft cluster. See the package documentation for
// how it works. All methods are safe for concurrent use.
type Node struct {
	cfg         Config
	id          uint64
	log         *slog.Logger
	storage     Storage
	ownStorage  bool
	transport   Transport
	fsm         FSM
	rn          *etcdraft.RawNode // raft loop only
	incarnation uint64
	seq         atomic.Uint64

	propC    chan *proposal
	recvC    chan *raftpb.Message
	ctrlC    chan func()
	ccSem    chan struct{} // held while a configuration change is in flight
	unreachC chan uint64
	stopC    chan struct{}
	doneC    chan struct{}
	stopOnce sync.Once
	ctx      context.Context // cancelled when the node stops
	cancel   context.CancelFunc
	bg       sync.WaitGroup // snapshot senders

	errMu sync.Mutex
	err   error

	// Raft loop state.
	lead, term      uint64
	raftState       etcdraft.StateType
	epoch           uint64 // bumped whenever term, leader or role changes
	mem             *membership
	confState       *raftpb.ConfState
	lastContact     map[uint64]time.Time
	reads           map[uint64]*readReq
	readSeq         uint64
	removedSelf     bool
	leaderDownSince time.Time
	campaignAt      time.Time
	// batch is the data proposals taken since the last flushProposals,
	// batchBytes their size.
	batch      []*proposal
	batchBytes int
	// lastBatch is how many proposals the last flush stepped (gather);
	// gathers counts gather's waits, for tests.
	lastBatch int
	gathers   atomic.Int64

	removedIDs atomic.Pointer[map[uint64]bool]
	members    atomic.Pointer[[]Member]

	// Proposals waiting to be applied, shared by the loop and the apply
	// goroutine.
	wmu     sync.Mutex
	waiters map[proposalID]*proposal

	applyQ     *applyQueue
	applyDone  chan struct{}
	snapWanted atomic.Bool // a snapshot is needed now (see raftStorage)
	// lastSnapSize is the size of the last snapshot written (0 before
	// the first): the count-based snapshot waits for a log of a quarter
	// of it.
	lastSnapSize atomic.Uint64
	toldRemoved  atomic.Bool
	applied      atomic.Uint64
	amu          sync.Mutex
	aWaiters     []appliedWaiter

	lmu         sync.Mutex
	lstate      Leadership
	rawLead     uint64
	rawTerm     uint64
	rawLeader   bool
	appliedTerm uint64
	subs        map[chan Leadership]struct{}
	lchanged    chan struct{}
}

type readReq struct {
	epoch uint64
	done  chan result
}

type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

// ID returns this member's raft ID.
func (n *Node) ID() uint64 { return n.id }

// Done is closed when the node has stopped (Stop, a fatal storage error,
// or its own removal from the cluster); Err then says why.
func (n *Node) Done() <-chan struct{} { return n.doneC }

// Err returns why the node stopped by itself (nil after Stop or while it
// runs). errors.Is(err, ErrRemoved) after this member was removed.
func (n *Node) Err() error {
	n.errMu.Lock()
	defer n.errMu.Unlock()
	return n.err
}

func (n *Node) fatal(err error) {
	n.errMu.Lock()
	if n.err == nil {
		n.err = err
	}
	n.errMu.Unlock()
	n.log.Error("raft node stopping", "err", err)
	n.stopOnce.Do(func() { close(n.stopC) })
}

// Stop stops the node: pending proposals and reads fail with ErrStopped,
// the transport stops, the storage is closed if the node opened it. Stop
// waits for all of it and may be called more than once.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() { close(n.stopC) })
	<-n.doneC
	return nil
}

// inLoop runs f on the raft loop and waits for it.
func (n *Node) inLoop(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case n.ctrlC <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopC:
		return ErrStopped
	}
	// Once queued, f runs soon and writes to its caller's variables: wait
	// for it even if ctx ends, or the caller would read them while f
	// writes.
	select {
	case <-done:
		return nil
	case <-n.doneC:
		return ErrStopped
	}
}

// run is the raft loop: the only goroutine that touches the RawNode.
func (n *Node) run() {
	defer n.shutdown()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	// A sole voter has nobody to wait for: it campaigns at once rather
	// than sitting out an election timeout (checked after the first Ready,
	// which applies a bootstrap's configuration).
	checkSole := true
	for {
		select {
		case <-ticker.C:
			n.tick()
		case p := <-n.propC:
			n.handlePropose(p)
			n.drain()
		case m := <-n.recvC:
			n.step(m)
			n.drain()
		case id := <-n.unreachC:
			n.handleUnreachable(id)
		case f := <-n.ctrlC:
			f()
		case <-n.stopC:
			return
		}
		n.gather()
		n.flushProposals()
		// Until nothing is ready: advancing a Ready can make the next one
		// (a sole voter's own append acknowledgement commits its entries),
		// and waiting for the next event would hold those entries back by
		// up to a tick.
		for n.rn.HasReady() && !n.removedSelf {
			if err := n.handleReady(); err != nil {
				n.fatal(err)
				return
			}
		}
		if n.removedSelf {
			return
		}
		if checkSole {
			checkSole = false
			if n.isSoleVoter() && n.raftState == etcdraft.StateFollower {
				n.rn.Campaign()
			}
		}
	}
}

// drain takes what else is queued, so that one Ready (one fsync) carries
// every proposal and message that arrived meanwhile.
func (n *Node) drain() {
	for i := 0; i < 1024; i++ {
		select {
		case p := <-n.propC:
			n.handlePropose(p)
		case m := <-n.recvC:
			n.step(m)
		default:
			return
		}
	}
}

func (n *Node) isSoleVoter() bool {
	v := n.confState.GetVoters()
	return len(v) == 1 && v[0] == n.id && len(n.confState.GetVotersOutgoing()) == 0
}

func (n *Node) tick() {
	n.rn.Tick()
	if !n.cfg.FastFailover {
		return
	}
	now := time.Now()
	hb := time.Duration(n.cfg.HeartbeatTick) * n.cfg.TickInterval
	if !n.leaderDownSince.IsZero() && now.Sub(n.leaderDownSince) >= 2*hb {
		if n.raftState == etcdraft.StateFollower && n.lead != 0 && n.lastContact[n.lead].Before(n.leaderDownSince) {
			n.log.Info("leader's transport is down: forgetting it and holding an election early",
				"leader", fmt.Sprintf("%x", n.lead))
			n.rn.ForgetLeader()
			// A random delay spreads the followers' campaigns so that they
			// do not split the vote.
			n.campaignAt = now.Add(hb + mrand.N(3*hb))
		}
		n.leaderDownSince = time.Time{}
	}
	if !n.campaignAt.IsZero() && now.After(n.campaignAt) {
		n.campaignAt = time.Time{}
		if n.raftState == etcdraft.StateFollower && n.lead == 0 && n.isVoter(n.id) {
			n.rn.Campaign()
		}
	}
}

func (n *Node) isVoter(id uint64) bool {
	for _, v := range n.confState.GetVoters() {
		if v == id {
			return true
		}
	}
	return false
}

func (n *Node) handleUnreachable(id uint64) {
	n.rn.ReportUnreachable(id)
	if n.cfg.FastFailover && id == n.lead && n.raftState == etcdraft.StateFollower && n.leaderDownSince.IsZero() {
		n.leaderDownSince = time.Now()
	}
}

func (n *Node) step(m *raftpb.Message) {
	from := m.GetFrom()
	n.lastContact[from] = time.Now()
	if from == n.lead {
		n.leaderDownSince = time.Time{}
		n.campaignAt = time.Time{}
	}
	if err := n.rn.Step(m); err != nil && !errors.Is(err, etcdraft.ErrStepPeerNotFound) {
		n.log.Debug("raft step", "from", fmt.Sprintf("%x", from), "type", m.GetType().String(), "err", err)
	}
}

func (n *Node) handleReady() error {
	rd := n.rn.Ready()

	changed := false
	if ss := rd.SoftState; ss != nil && (ss.Lead != n.lead || ss.RaftState != n.raftState) {
		if ss.Lead != n.lead {
			n.log.Info("raft leader changed", "leader", fmt.Sprintf("%x", ss.Lead), "state", ss.RaftState.String())
		}
		n.lead, n.raftState = ss.Lead, ss.RaftState
		changed = true
	}
	if !etcdraft.IsEmptyHardState(rd.HardState) && rd.HardState.GetTerm() != n.term {
		n.term = rd.HardState.GetTerm()
		changed = true
	}
	if changed {
		n.epoch++
		n.leaderDownSince = time.Time{}
		if n.lead != 0 {
			n.campaignAt = time.Time{} // someone leads: no early election
		}
		for k, r := range n.reads {
			delete(n.reads, k)
			r.done <- result{err: ErrLostLeadership}
		}
		n.setRaw(n.lead, n.term, n.raftState == etcdraft.StateLeader)
	}

	item := &applyItem{}
	memChanged := false
	if !etcdraft.IsEmptySnap(rd.Snapshot) {
		si, st := snapIndexTerm(rd.Snapshot)
		hdr, err := n.readSnapshotHeader(si, st)
		if err != nil {
			return fmt.Errorf("raft: install snapshot %d: %w", si, err)
		}
		n.log.Info("installing snapshot from the leader", "index", si, "term", st)
		n.resetMembership(hdr.members)
		n.confState = rd.Snapshot.GetMetadata().GetConfState()
		item.snap = rd.Snapshot
		memChanged = true
	}
	// Durability first: nothing this Ready says may leave the node before
	// it is on disk (a vote, an acknowledgement), except a steady leader's
	// appends and heartbeats: it writes its entries in parallel with the
	// followers (raft thesis §10.2.1, as etcd does), because it counts its
	// own copy only once Save has returned (at Advance), so an entry still
	// commits only on a quorum of durable copies. That takes a disk write
	// off every write's latency. A node that has just become leader, or
	// whose term changed, saves first; so does a leader committing a
	// configuration change, so that no member learns of that commit before
	// the leader has applied it (who has left is the same on both sides).
	early := !changed && n.raftState == etcdraft.StateLeader && !hasConfChange(rd.CommittedEntries)
	if early {
		n.send(rd.Messages)
	}
	if err := n.storage.Save(rd.HardState, rd.Entries, rd.Snapshot, rd.MustSync); err != nil {
		return err
	}
	for _, e := range rd.CommittedEntries {
		if e.GetType() == raftpb.EntryConfChange {
			if err := n.applyConfChange(e); err != nil {
				return err
			}
			memChanged = true
		}
	}
	if memChanged {
		item.mem = n.mem.clone()
		item.cs = n.confState
		n.publishMembership()
	}
	if !early {
		n.send(rd.Messages)
	}
	item.ents = rd.CommittedEntries
	if item.snap != nil || len(item.ents) > 0 || memChanged {
		n.applyQ.push(item)
	}
	if changed {
		// Queued behind the entries of this Ready: a proposal that
		// committed in it is answered with its result, not a failure.
		n.applyQ.push(&applyItem{failEpoch: n.epoch})
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 8 {
			continue
		}
		k := binary.BigEndian.Uint64(rs.RequestCtx)
		if r, ok := n.reads[k]; ok {
			delete(n.reads, k)
			r.done <- result{index: rs.Index}
		}
	}
	n.rn.Advance(rd)
	if n.removedSelf {
		if err := n.storage.MarkRemoved(); err != nil {
			n.log.Error("cannot record this member's removal", "err", err)
		}
		n.fatal(fmt.Errorf("raft: member %x: %w", n.id, ErrRemoved))
	}
	return nil
}

// shutdown runs when the loop ends, whatever the reason.
func (n *Node) shutdown() {
	n.stopOnce.Do(func() { close(n.stopC) })
	n.cancel()
	if err := n.transport.Stop(); err != nil {
		n.log.Warn("stop transport", "err", err)
	}
	// The apply goroutine finishes what is queued (committed entries: a
	// member that applied its own removal still answers the proposal).
	n.applyQ.close()
	<-n.applyDone
	n.bg.Wait()
	n.wmu.Lock()
	for id, p := range n.waiters {
		delete(n.waiters, id)
		p.finish(0, ErrStopped)
	}
	n.wmu.Unlock()
	for k, r := range n.reads {
		delete(n.reads, k)
		r.done <- result{err: ErrStopped}
	}
	// Proposals still queued for the loop.
	for {
		select {
		case p := <-n.propC:
			p.finish(0, ErrStopped)
			continue
		case f := <-n.ctrlC:
			_ = f
			continue
		default:
		}
		break
	}
	// The commit index is not written on its own while running (see
	// Storage.Save): record the last one on the way out.
	// Never beyond the log on disk: a member stopped before its first
	// Ready had raft's bootstrap entries in memory only, and a commit
	// index past them made its data dir unreadable ("entries lost"); with
	// nothing on disk it records nothing and bootstraps again.
	hs := proto.Clone(n.rn.BasicStatus().HardState).(*raftpb.HardState)
	last, _ := n.storage.LastIndex()
	hs.Commit = proto.Uint64(min(hs.GetCommit(), last))
	if !etcdraft.IsEmptyHardState(hs) && !n.removedSelf && last > 0 {
		if err := n.storage.Save(hs, nil, nil, true); err != nil {
			n.log.Warn("persist final hard state", "err", err)
		}
	}
	n.setRaw(0, n.term, false)
	n.lmu.Lock()
	for ch := range n.subs {
		close(ch)
		delete(n.subs, ch)
	}
	n.lmu.Unlock()
	if n.ownStorage {
		if err := n.storage.Close(); err != nil {
			n.log.Warn("close storage", "err", err)
		}
	}
	close(n.doneC)
}
