// Package rpc carries Apiary's APIs over gRPC without generated code:
// messages are the plain Go structs of the API packages, encoded as JSON by
// a gRPC codec, and services are described by grpc.ServiceDesc values built
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// CodecName is the content-subtype of Codec.
const CodecName = "apiary-json"

// Codec encodes messages as JSON. Its name is not "proto", so it never
// clashes with the protobuf codec of other services on the same server.
type Codec struct{}

// Marshal implements encoding.Codec.
func (Codec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements encoding.Codec.
func (Codec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Name implements encoding.Codec.
func (Codec) Name() string { return CodecName }

func init() { encoding.RegisterCodec(Codec{}) }

// ServerOptions are the options a server of these services needs. The
// codec is chosen per call by its content subtype, not forced on the
// server, so other services (raft's raw frames, the CA) share it.
func ServerOptions() []grpc.ServerOption { return nil }

// DialOptions make a client connection speak the codec.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.CallContentSubtype(Codec{}.Name()))}
}

// Method is a unary method waiting for the name of its service (the full
// method name reaches interceptors, an authorizer among them).
type Method func(service string) grpc.MethodDesc

// Unary describes a unary method whose handler is fn.
func Unary[Req, Resp any](name string, fn func(context.Context, *Req) (*Resp, error)) Method {
	return func(service string) grpc.MethodDesc {
		full := "/" + service + "/" + name
		return grpc.MethodDesc{
			MethodName: name,
			Handler: func(_ any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
				req := new(Req)
				if err := dec(req); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "decode %s request: %v", name, err)
				}
				call := func(ctx context.Context, r any) (any, error) {
					resp, err := fn(ctx, r.(*Req))
					if err != nil {
						return nil, ToStatus(err)
					}
					return resp, nil
				}
				if intercept == nil {
					return call(ctx, req)
				}
				return intercept(ctx, req, &grpc.UnaryServerInfo{FullMethod: full}, call)
			},
		}
	}
}

// ServerStream describes a server-streaming method: one request in, a stream
// of responses out, each sent with send.
func ServerStream[Req, Resp any](name string, fn func(ctx context.Context, req *Req, send func(*Resp) error) error) grpc.StreamDesc {
	return grpc.StreamDesc{
		StreamName:    name,
		ServerStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			req := new(Req)
			if err := stream.RecvMsg(req); err != nil {
				return status.Errorf(codes.InvalidArgument, "decode %s request: %v", name, err)
			}
			err := fn(stream.Context(), req, func(m *Resp) error { return stream.SendMsg(m) })
			return ToStatus(err)
		},
	}
}

// Service builds a service description; register it with
// server.RegisterService(&desc, nil).
func Service(name string, unary []Method, streams ...grpc.StreamDesc) grpc.ServiceDesc {
	methods := make([]grpc.MethodDesc, len(unary))
	for i, m := range unary {
		methods[i] = m(name)
	}
	return grpc.ServiceDesc{ServiceName: name, HandlerType: (*any)(nil), Methods: methods, Streams: streams}
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
