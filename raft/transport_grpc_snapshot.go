package raft

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// serveSnapshot takes a snapshot sent on a stream of its own (the
// Snapshot method, transport_grpc.go): the MsgSnap, then the data in
// chunks; it replies once the handler has stored all of it.
func (t *GRPCTransport) serveSnapshot(_ any, ss grpc.ServerStream) error {
	h, ctx, done, err := t.serve(ss)
	if err != nil {
		return err
	}
	defer done()
	f := &rawFrame{}
	if err := ss.RecvMsg(f); err != nil {
		return err
	}
	m := &raftpb.Message{}
	err = proto.Unmarshal(f.B, m)
	f.Release()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "raft: bad snapshot message: %v", err)
	}
	if err := t.authorize(ctx, m); err != nil {
		return err
	}
	if t.isBlocked(m.GetFrom(), m.GetTo()) {
		return status.Error(codes.Unavailable, "raft: link blocked")
	}
	pr, pw := io.Pipe()
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			f := &rawFrame{}
			err := ss.RecvMsg(f)
			if err == io.EOF {
				pw.Close()
				return
			}
			if err != nil {
				pw.CloseWithError(fmt.Errorf("raft: snapshot stream broke: %w", err))
				return
			}
			// Write returns once the receiver has read all of it.
			_, err = pw.Write(f.B)
			f.Release()
			if err != nil {
				return
			}
		}
	}()
	err = h.ReceiveSnapshot(ctx, m, pr)
	pr.CloseWithError(errors.New("raft: snapshot receiver done"))
	if err != nil {
		// Returning ends the stream, which unblocks the reader goroutine.
		return stepError(err)
	}
	<-recvDone
	return ss.SendMsg(&rawFrame{})
}

// SendSnapshot implements Transport.
func (t *GRPCTransport) SendSnapshot(ctx context.Context, m *raftpb.Message, data io.Reader) error {
	t.mu.Lock()
	p := t.peers[m.GetTo()]
	h := t.h
	t.mu.Unlock()
	if p == nil {
		return fmt.Errorf("raft: no address for member %x", m.GetTo())
	}
	if t.isBlocked(m.GetFrom(), m.GetTo()) {
		return fmt.Errorf("raft: link to %x blocked", m.GetTo())
	}
	ctx, cancel := mergeCancel(ctx, t.ctx)
	defer cancel()
	cs, err := p.conn.NewStream(ctx, &snapDesc, grpcSnapMethod)
	if err != nil {
		return fmt.Errorf("raft: open snapshot stream to %x: %w", m.GetTo(), err)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(&rawFrame{B: b}); err != nil {
		return t.snapErr(cs, h, m.GetTo(), err)
	}
	for {
		// A fresh buffer per chunk: gRPC may still hold the previous one.
		buf := make([]byte, t.cfg.ChunkSize)
		n, rerr := io.ReadFull(data, buf)
		if n > 0 {
			if err := cs.SendMsg(&rawFrame{B: buf[:n]}); err != nil {
				return t.snapErr(cs, h, m.GetTo(), err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("raft: read snapshot data: %w", rerr)
		}
	}
	if err := cs.CloseSend(); err != nil {
		return t.snapErr(cs, h, m.GetTo(), err)
	}
	if err := cs.RecvMsg(&rawFrame{}); err != nil {
		return t.snapErr(cs, h, m.GetTo(), err)
	}
	return nil
}

func (t *GRPCTransport) snapErr(cs grpc.ClientStream, h Handler, to uint64, err error) error {
	if err == io.EOF {
		// The server ended the stream: its status says why.
		err = cs.RecvMsg(&rawFrame{})
	}
	if isRemoved(err) && h != nil {
		h.ReportRemoved(to)
	}
	return fmt.Errorf("raft: stream snapshot to %x: %w", to, err)
}
