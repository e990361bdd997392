package raft

import (
	"context"
	"io"

	"go.etcd.io/raft/v3/raftpb"
)

// Transport carries raft messages between members. Two implementations:
// GRPCTransport between processes and the in-memory Network for tests.
//
// Send is best effort and must not block: raft retries whatever is lost.
// Snapshots travel apart from the message stream: raft's MsgSnap carries
// only metadata, and SendSnapshot streams the data (of any size) in chunks.
type Transport interface {
	// Start begins accepting messages for member id and delivering them to
	// h. The node calls it once, before anything else.
	Start(id uint64, h Handler) error
	// Send sends messages (never MsgSnap) to their recipients, in order
	// per recipient, dropping what cannot be sent.
	Send(msgs []*raftpb.Message)
	// SendSnapshot streams a snapshot: m is the MsgSnap, data its content.
	// It returns once the recipient has received and stored all of it, or
	// with the error that stopped it.
	SendSnapshot(ctx context.Context, m *raftpb.Message, data io.Reader) error
	// AddPeer records (or updates) the address of a member.
	AddPeer(id uint64, addr string) error
	// RemovePeer forgets a member and closes connections to it.
	RemovePeer(id uint64)
	// Stop closes the transport: no delivery to h after it returns.
	Stop() error
}

// Handler is the receiving side of a Transport: the Node implements it.
type Handler interface {
	// Step delivers a message. It returns an error wrapping ErrRemoved when
	// the sender was removed from the cluster: the transport then tells
	// the sender, whose own handler gets ReportRemoved.
	Step(ctx context.Context, m *raftpb.Message) error
	// ReceiveSnapshot stores a streamed snapshot and then delivers its
	// MsgSnap to raft.
	ReceiveSnapshot(ctx context.Context, m *raftpb.Message, data io.Reader) error
	// ReportUnreachable says a message to id could not be sent.
	ReportUnreachable(id uint64)
	// ReportRemoved says peer id refused this member's messages because
	// this member was removed from the cluster.
	ReportRemoved(id uint64)
}
