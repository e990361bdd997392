package rpc

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The pieces rpcgen's generated code is made of (internal/rpcgen): a
// contract is a Go interface; the generated file describes its service
// with these, so a method is one line of the interface and one of its
// implementation.

// Stream is what a server-streaming method returns: messages until an
// error, io.EOF at the end.
type Stream[T any] interface {
	Recv() (*T, error)
}

// Guard runs before each handler of a service with the call's context and
// full method name ("/apiary.Control/CreateService"); an error refuses the
// call. A service served over mutual TLS uses it to insist that the
// authorizer vouched for the caller (see RequireIdentity in the packages
// that serve).
type Guard func(ctx context.Context, fullMethod string) error

// UnaryMethod is a unary method waiting for its service's name and guard.
type UnaryMethod func(service string, guard Guard) grpc.MethodDesc

// StreamMethod is a server-streaming method waiting for its service's name
// and guard.
type StreamMethod func(service string, guard Guard) grpc.StreamDesc

// Serving reports whether ctx is the context of a unary call that a
// handler of HandleUnary serves: the call's response is only encoded for
// the wire, once, and dropped, so the handler may answer with objects it
// shares with others (a store's, which nobody changes) instead of copies
// made for a caller that could change them. An implementation called in
// the same process, with a context of its caller's, gets false.
func Serving(ctx context.Context) bool {
	v, _ := ctx.Value(servingKey{}).(bool)
	return v
}

type servingKey struct{}

// HandleUnary describes a unary method whose handler is fn.
func HandleUnary[Req, Resp any](name string, fn func(context.Context, *Req) (*Resp, error)) UnaryMethod {
	return func(service string, guard Guard) grpc.MethodDesc {
		full := "/" + service + "/" + name
		return grpc.MethodDesc{
			MethodName: name,
			Handler: func(_ any, ctx context.Context, dec func(any) error, intercept grpc.UnaryServerInterceptor) (any, error) {
				if guard != nil {
					if err := guard(ctx, full); err != nil {
						return nil, ToStatus(err)
					}
				}
				req := new(Req)
				if err := dec(req); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "decode %s request: %v", name, err)
				}
				call := func(ctx context.Context, r any) (any, error) {
					resp, err := fn(context.WithValue(ctx, servingKey{}, true), r.(*Req))
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

// HandleStream describes a server-streaming method: fn answers one request
// with a Stream, whose messages are sent until it ends (io.EOF ends the
// call cleanly) or the client goes away.
func HandleStream[Req, Resp any](name string, fn func(context.Context, *Req) (Stream[Resp], error)) StreamMethod {
	return func(service string, guard Guard) grpc.StreamDesc {
		full := "/" + service + "/" + name
		return grpc.StreamDesc{
			StreamName:    name,
			ServerStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				ctx := ss.Context()
				if guard != nil {
					if err := guard(ctx, full); err != nil {
						return ToStatus(err)
					}
				}
				req := new(Req)
				if err := ss.RecvMsg(req); err != nil {
					return status.Errorf(codes.InvalidArgument, "decode %s request: %v", name, err)
				}
				st, err := fn(ctx, req)
				if err != nil {
					return ToStatus(err)
				}
				for {
					m, err := st.Recv()
					if errors.Is(err, io.EOF) {
						return nil
					}
					if err != nil {
						return ToStatus(err)
					}
					if err := ss.SendMsg(m); err != nil {
						return err
					}
				}
			},
		}
	}
}

// NewService builds a service description from its methods; register it
// with server.RegisterService(&desc, nil).
func NewService(name string, guard Guard, unary []UnaryMethod, streams []StreamMethod) grpc.ServiceDesc {
	desc := grpc.ServiceDesc{ServiceName: name, HandlerType: (*any)(nil)}
	for _, m := range unary {
		desc.Methods = append(desc.Methods, m(name, guard))
	}
	for _, s := range streams {
		desc.Streams = append(desc.Streams, s(name, guard))
	}
	return desc
}

// CallStream starts a server-streaming call with req and returns its
// messages as a Stream.
func CallStream[Resp any](ctx context.Context, conn grpc.ClientConnInterface, service, method string, req any, opts ...grpc.CallOption) (Stream[Resp], error) {
	return OpenStream[Resp](ctx, conn, service, method, req, opts...)
}

// Unimplemented is the error of a method a server does not offer, with a
// reason when the server gave one (e.g. "this node is not a manager").
func Unimplemented(method string, why error) error {
	if why != nil {
		return why
	}
	return status.Errorf(codes.Unimplemented, "method %s is not implemented", method)
}
