package raft

// Starting a node: its storage opened and checked, the FSM restored from
// the latest snapshot, the membership replayed, raft configured, and the
// storage raft reads through (which holds back a snapshot a new member
// could not use).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

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
