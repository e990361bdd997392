package raft

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/apiary-io/apiary/internal/testutil"
)

// A proposal larger than MaxEntrySize is refused before it reaches the
// log, naming both sizes; one that fits commits.
func TestProposalLargerThanMaxEntrySizeRefused(t *testing.T) {
	c := newCluster(t, memNet, 1, func(cfg *Config) { cfg.MaxEntrySize = 4096 })
	n := c.node(c.leader(c.ids, 10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	max := n.MaxProposalSize()
	if max != 4096-envelopeHdrSize {
		t.Fatalf("MaxProposalSize %d, want %d", max, 4096-envelopeHdrSize)
	}
	before := n.Status().Commit
	_, err := n.Propose(ctx, kvOp("big", strings.Repeat("x", 5000)))
	if !errors.Is(err, ErrEntryTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(max)) {
		t.Fatalf("oversized proposal: %v", err)
	}
	if after := n.Status().Commit; after != before {
		t.Fatalf("an oversized proposal reached the log: commit %d -> %d", before, after)
	}
	if _, err := n.Propose(ctx, kvOp("small", "fits")); err != nil {
		t.Fatalf("a proposal that fits: %v", err)
	}
}

// The frame bound covers the largest message a member sends: an append
// message carrying one entry of MaxEntrySize.
func TestMaxFrameSizeCoversTheLargestAppend(t *testing.T) {
	cfg := DefaultConfig()
	data := make([]byte, cfg.MaxEntrySize)
	m := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(1 << 40)),
		Entries: []*raftpb.Entry{{Term: new(uint64(1 << 40)), Index: new(uint64(1 << 50)), Data: data}}}
	// Fill the rest of MaxSizePerMsg with small entries, as raft may.
	for size := 0; size < int(cfg.MaxSizePerMsg); size += 64 {
		m.Entries = append(m.Entries, &raftpb.Entry{Term: new(uint64(1 << 40)), Index: new(uint64(1 << 50)), Data: make([]byte, 32)})
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > cfg.MaxFrameSize() {
		t.Fatalf("an append of %d bytes exceeds MaxFrameSize %d", len(b), cfg.MaxFrameSize())
	}
	if cfg.MaxFrameSize() > 64<<20 {
		t.Fatalf("MaxFrameSize %d is not a small bound", cfg.MaxFrameSize())
	}
}

// A stream is authorized for the member its first message comes from, and
// held to it: a later message from another member ends the stream with
// PermissionDenied, even one that Authorize would allow on its own stream.
func TestGRPCStreamHeldToItsFirstSender(t *testing.T) {
	cfg := selfSignedTLS(t)
	tr, err := NewGRPCTransport(GRPCConfig{ListenAddr: "127.0.0.1:0", TLS: cfg, Logger: testLogger(t),
		Authorize: func(ctx context.Context, from uint64) error {
			if from != 1 && from != 3 {
				return errors.New("unknown member")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Stop()
	rec := &recorder{}
	tr.Start(2, rec)

	conn, err := grpc.NewClient(tr.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(cfg.Clone())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := conn.NewStream(ctx, &streamDesc, grpcStreamMethod, grpc.CallContentSubtype(rawCodecName))
	if err != nil {
		t.Fatal(err)
	}
	send := func(from uint64) error {
		b, err := proto.Marshal(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(from), To: new(uint64(2))})
		if err != nil {
			t.Fatal(err)
		}
		return st.SendMsg(&rawFrame{B: b})
	}
	if err := send(1); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the first message", func() bool { return rec.count() == 1 })
	_ = send(3)
	_ = send(1)
	err = st.RecvMsg(&rawFrame{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "carried a message from 3") {
		t.Fatalf("a stream switching senders: %v", err)
	}
	if rec.count() != 1 {
		t.Fatalf("%d messages delivered, want only the first", rec.count())
	}
}

// A framed proposal (the store's way: the data encoded behind
// ProposalHeadroom free bytes) commits the data alone on every member,
// as Propose would; the bounds are the data's, as Propose's are, and a
// buffer with no room for the envelope is refused.
func TestProposeFramedCommitsTheDataBehindTheHeadroom(t *testing.T) {
	c := newCluster(t, memNet, 3, func(cfg *Config) { cfg.MaxEntrySize = 4096 })
	n := c.node(c.leader(c.ids, 10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	framed := func(data []byte) []byte {
		return append(make([]byte, n.ProposalHeadroom()), data...)
	}
	if _, err := n.ProposeFramed(ctx, framed(kvOp("framed", "yes"))); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids {
		testutil.EventuallyWhy(t, 10*time.Second, "the framed write on every member", func() (bool, string) {
			v, ok := c.fsm(id).get("framed")
			return ok && v == "yes", fmt.Sprintf("member %d: framed = %q, %v", id, v, ok)
		})
	}
	max := n.MaxProposalSize()
	if _, err := n.ProposeFramed(ctx, framed(kvOp("big", strings.Repeat("x", 5000)))); !errors.Is(err, ErrEntryTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(max)) {
		t.Fatalf("oversized framed proposal: %v", err)
	}
	if _, err := n.ProposeFramed(ctx, framed(kvOp("k", strings.Repeat("x", max-2)))); err != nil {
		t.Fatalf("a framed proposal of exactly MaxProposalSize: %v", err)
	}
	if _, err := n.ProposeFramed(ctx, make([]byte, n.ProposalHeadroom()-1)); err == nil || !strings.Contains(err.Error(), "no room") {
		t.Fatalf("a buffer shorter than the headroom: %v", err)
	}
}
