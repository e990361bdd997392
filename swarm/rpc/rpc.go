// Package rpc carries Apiary's APIs over gRPC without generated code:
// messages are the plain Go structs of the API packages, encoded by a gRPC
// codec (internal/wire's binary form, or JSON), and services are described by grpc.ServiceDesc values built
// with Unary and ServerStream. Errors keep their identity across the wire
// (errors.go): a package registers its sentinel errors (RegisterError) and
// a client gets back an error for which errors.Is matches the same sentinel
// the server returned. Server (server.go) is the TLS server every node
// runs: it sorts connections by the caller's verified certificate before
// gRPC reads a byte of a request, so each kind of caller meets the limits
// that fit what it may call.
package rpc

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// CodecName is the content-subtype of Codec.
const CodecName = "apiary-json"

// Codec is the one codec of every Apiary service: messages are the plain
// Go structs of the contracts, encoded as JSON, except a *Frame, which
// travels as the bytes it holds (raft's messages, already encoded). Its
// name is not "proto", so it never clashes with the protobuf codec of
// other services on the same server.
type Codec struct{}

// Marshal implements encoding.CodecV2.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*Frame); ok {
		return f.slice(), nil
	}
	b, err := json.Marshal(v)
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

// Unmarshal implements encoding.CodecV2.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*Frame); ok {
		f.take(data)
		return nil
	}
	return json.Unmarshal(contiguous(data), v)
}

// Name implements encoding.Codec.
func (Codec) Name() string { return CodecName }

func init() {
	encoding.RegisterCodecV2(Codec{})
	encoding.RegisterCodecV2(WireCodec{})
}

// DialOptions make a client connection speak WireCodec, with fixed
// flow-control windows (StreamWindow, ConnWindow). Servers take both
// codecs (a call names its own), so a client of an earlier version, which
// speaks Codec, is still served.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.CallContentSubtype(WireCodec{}.Name())),
		grpc.WithInitialWindowSize(StreamWindow), grpc.WithInitialConnWindowSize(ConnWindow)}
}

// The flow-control windows of our clients and of the servers that do not
// bound them lower (the control socket; a manager's manager class).
//
// gRPC sizes windows by itself unless they are set, and to measure the
// link it sends a ping whenever data arrives with no ping out: for a
// client that waits for each answer, a ping and its acknowledgement each
// way on every call, two more writes and two more reads (8% of a write's
// CPU at 64 clients, docs/benchmarks.md, issue 14). Fixed windows turn
// that off. 1 MiB per stream holds a raft append or snapshot chunk whole
// (1 MiB each by default) and carries 1 MiB per round trip: 20 MB/s at a
// 50 ms WAN round trip, far more on a LAN or loopback. It is also the most
// a stream makes its reader buffer unread; ConnWindow bounds a
// connection's streams together.
const (
	StreamWindow = 1 << 20
	ConnWindow   = 4 << 20
)

// WindowOptions are the server options of those fixed windows.
func WindowOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(StreamWindow), grpc.InitialConnWindowSize(ConnWindow)}
}

// Call invokes a unary method on conn and restores registered errors.
func Call[Resp any](ctx context.Context, conn grpc.ClientConnInterface, service, method string, req any, opts ...grpc.CallOption) (*Resp, error) {
	resp := new(Resp)
	if err := conn.Invoke(ctx, "/"+service+"/"+method, req, resp, opts...); err != nil {
		return nil, FromStatus(err)
	}
	return resp, nil
}

// clientStream is the client side of a server stream.
type clientStream[Resp any] struct {
	s grpc.ClientStream
}

// Recv returns the next message, or the stream's end as an error.
func (s *clientStream[Resp]) Recv() (*Resp, error) {
	m := new(Resp)
	if err := s.s.RecvMsg(m); err != nil {
		return nil, FromStatus(err)
	}
	return m, nil
}

// OpenStream starts a server-streaming call with req.
func OpenStream[Resp any](ctx context.Context, conn grpc.ClientConnInterface, service, method string, req any, opts ...grpc.CallOption) (*clientStream[Resp], error) {
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: method, ServerStreams: true}, "/"+service+"/"+method, opts...)
	if err != nil {
		return nil, FromStatus(err)
	}
	if err := cs.SendMsg(req); err != nil {
		return nil, FromStatus(err)
	}
	if err := cs.CloseSend(); err != nil {
		return nil, FromStatus(err)
	}
	return &clientStream[Resp]{s: cs}, nil
}
