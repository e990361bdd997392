package raft

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

type readReq struct {
	epoch uint64
	done  chan result
}

type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

// NewNode opens the storage, restores the FSM from the latest snapshot,
// starts the transport and the node's goroutines, and returns the running
// node. With an empty storage it bootstraps a cluster from cfg.Peers, or
// waits to be added to an existing one.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:         cfg,
		id:          cfg.ID,
		log:         cfg.Logger,
		storage:     cfg.Storage,
		transport:   cfg.Transport,
		fsm:         cfg.FSM,
		propC:       make(chan *proposal, 1024),
		recvC:       make(chan *raftpb.Message, 4096),
		ctrlC:       make(chan func(), 64),
		ccSem:       make(chan struct{}, 1),
		unreachC:    make(chan uint64, 256),
		stopC:       make(chan struct{}),
		doneC:       make(chan struct{}),
		lastContact: map[uint64]time.Time{},
		reads:       map[uint64]*readReq{},
		waiters:     map[proposalID]*proposal{},
		applyQ:      newApplyQueue(),
		applyDone:   make(chan struct{}),
		subs:        map[chan Leadership]struct{}{},
		lchanged:    make(chan struct{}),
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	n.log = n.log.With("raft_id", fmt.Sprintf("%x", cfg.ID))
	var b [8]byte
	rand.Read(b[:])
	n.incarnation = binary.BigEndian.Uint64(b[:])
	n.ctx, n.cancel = context.WithCancel(context.Background())

	if n.storage == nil {
		st, err := openDiskStorage(cfg.DataDir, n.log, cfg.Encryption)
		if err != nil {
			return nil, err
		}
		n.storage, n.ownStorage = st, true
	}
	ok := false
	defer func() {
		if !ok && n.ownStorage {
			n.storage.Close()
		}
	}()
	if err := n.storage.Bind(cfg.ID); err != nil {
		return nil, err
	}
	if n.storage.Removed() {
		return nil, fmt.Errorf("raft: member %x: %w; it cannot rejoin with its old identity (join as a new member with a new ID and an empty data dir)", cfg.ID, ErrRemoved)
	}

	// The membership as of the latest snapshot, then as of the last
	// committed entry: the transport needs the addresses before raft sends
	// anything.
	snap, err := n.storage.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("raft: read snapshot metadata: %w", err)
	}
	snapIndex, snapTerm := snapIndexTerm(snap)
	hdr := snapHeader{members: newMembership()}
	if ref, err := decodeSnapRef(snap.GetData()); snapIndex > 0 && err == nil {
		// The count-based snapshot rule compares the log with it.
		n.lastSnapSize.Store(ref.size)
	}
	if snapIndex > 0 {
		hdr, err = n.readSnapshotHeader(snapIndex, snapTerm)
		if err != nil {
			return nil, err
		}
	}
	if cfg.ForceNewCluster {
		if err := forceNewCluster(n.storage, cfg.ID, cfg.Addr, hdr.members, n.log); err != nil {
			return nil, err
		}
	}
	n.mem, n.confState, err = replayMembership(n.storage, hdr.members)
	if err != nil {
		return nil, err
	}
	if n.mem.removed[cfg.ID] {
		n.storage.MarkRemoved()
		return nil, fmt.Errorf("raft: member %x: %w; it cannot rejoin with its old identity", cfg.ID, ErrRemoved)
	}

	// The FSM starts from the snapshot; the log after it is replayed by
	// raft as committed entries.
	ap := &applyState{dedup: newDedup(cfg.DedupWindow), mem: hdr.members, cs: snap.GetMetadata().GetConfState()}
	if snapIndex > 0 {
		if err := n.restoreSnapshot(ap, snap); err != nil {
			return nil, err
		}
	}

	rc := &etcdraft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTick,
		HeartbeatTick:             cfg.HeartbeatTick,
		Storage:                   raftStorage{n.storage, n},
		Applied:                   snapIndex,
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedEntriesSize,
		CheckQuorum:               cfg.CheckQuorum,
		PreVote:                   cfg.PreVote,
		ReadOnlyOption:            etcdraft.ReadOnlySafe,
		Logger:                    slogLogger{n.log},
		StepDownOnRemoval:         true,
	}
	n.rn, err = etcdraft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("raft: start raft: %w", err)
	}
	last, _ := n.storage.LastIndex()
	hs, _, _ := n.storage.InitialState()
	if last == 0 && etcdraft.IsEmptyHardState(hs) && snapIndex == 0 && len(cfg.Peers) > 0 {
		peers := make([]etcdraft.Peer, len(cfg.Peers))
		for i, p := range cfg.Peers {
			peers[i] = etcdraft.Peer{ID: p.ID, Context: encodeEnvelope(proposalID{}, []byte(p.Addr))}
			n.mem.members[p.ID] = Member{ID: p.ID, Addr: p.Addr}
		}
		if err := n.rn.Bootstrap(peers); err != nil {
			return nil, fmt.Errorf("raft: bootstrap: %w", err)
		}
	}
	st := n.rn.BasicStatus()
	n.term, n.lead, n.raftState = st.HardState.GetTerm(), st.Lead, st.RaftState
	n.publishMembership()

	if err := n.transport.Start(cfg.ID, n); err != nil {
		return nil, fmt.Errorf("raft: start transport: %w", err)
	}
	for _, p := range cfg.Join {
		if _, known := n.mem.members[p.ID]; !known && p.ID != cfg.ID && p.Addr != "" {
			if err := n.transport.AddPeer(p.ID, p.Addr); err != nil {
				n.log.Warn("cannot add peer to transport", "peer", fmt.Sprintf("%x", p.ID), "addr", p.Addr, "err", err)
			}
		}
	}
	for _, m := range n.mem.members {
		if m.ID != cfg.ID && m.Addr != "" {
			if err := n.transport.AddPeer(m.ID, m.Addr); err != nil {
				n.log.Warn("cannot add peer to transport", "peer", fmt.Sprintf("%x", m.ID), "addr", m.Addr, "err", err)
			}
		}
	}
	n.applied.Store(ap.applied)
	n.appliedTerm = ap.appliedTerm
	ok = true
	go n.runApply(ap)
	go n.run()
	return n, nil
}

// raftStorage is the storage as raft sees it. A snapshot raft wants to
// send must include the recipient in its configuration, or the recipient
// ignores it (a member added after the latest snapshot, whose log the
// leader compacted already, would never catch up). When the latest
// snapshot predates a current member, raft is told to retry later and a
// fresh snapshot is requested.
type raftStorage struct {
	Storage
	n *Node
}

func (s raftStorage) Snapshot() (*raftpb.Snapshot, error) {
	snap, err := s.Storage.Snapshot()
	if err != nil {
		return snap, err
	}
	// Called by raft, hence on the raft loop: confState is safe to read.
	have := map[uint64]bool{}
	cs := snap.GetMetadata().GetConfState()
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetLearners()} {
		for _, id := range set {
			have[id] = true
		}
	}
	for _, set := range [][]uint64{s.n.confState.GetVoters(), s.n.confState.GetLearners()} {
		for _, id := range set {
			if !have[id] {
				if !s.n.snapWanted.Swap(true) {
					s.n.applyQ.push(&applyItem{})
				}
				return nil, etcdraft.ErrSnapshotTemporarilyUnavailable
			}
		}
	}
	return snap, nil
}

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

func (n *Node) readSnapshotHeader(index, term uint64) (snapHeader, error) {
	rc, err := n.storage.OpenSnapshot(index, term)
	if err != nil {
		return snapHeader{}, err
	}
	defer rc.Close()
	h, err := readSnapHeader(bufio.NewReaderSize(rc, 64<<10))
	if err != nil {
		return h, fmt.Errorf("raft: snapshot %d: %w", index, err)
	}
	if h.index != index || h.term != term {
		return h, fmt.Errorf("raft: snapshot file for %d/%d holds %d/%d: %w", index, term, h.index, h.term, ErrCorrupt)
	}
	return h, nil
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

func (n *Node) handlePropose(p *proposal) {
	if n.lead == 0 {
		p.finish(0, notLeader(0))
		return
	}
	p.epoch = n.epoch
	n.wmu.Lock()
	n.waiters[p.id] = p
	n.wmu.Unlock()
	var err error
	if p.cc != nil {
		err = n.rn.ProposeConfChange(p.cc)
	} else {
		err = n.rn.Propose(p.data)
	}
	if err != nil {
		n.wmu.Lock()
		delete(n.waiters, p.id)
		n.wmu.Unlock()
		switch {
		case n.raftState != etcdraft.StateLeader && errors.Is(err, etcdraft.ErrProposalDropped):
			err = notLeader(n.lead)
		case errors.Is(err, etcdraft.ErrProposalDropped):
			err = ErrProposalDropped
		default:
			err = fmt.Errorf("raft: propose: %w", err)
		}
		p.finish(0, err)
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
