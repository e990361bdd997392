package rpc_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apiary-io/apiary/swarm/rpc"
)

type servingReq struct{}
type servingResp struct{ Serving bool }

// A handler of HandleUnary runs with a context that says so, past any
// interceptor; a context of the caller's own, in process, does not.
func TestServingMarksOnlyTheHandlersContext(t *testing.T) {
	var intercepted bool
	handler := func(ctx context.Context, _ *servingReq) (*servingResp, error) {
		return &servingResp{Serving: rpc.Serving(ctx)}, nil
	}
	addr := serve(t, rpc.NewService("apiary.test.Serving", nil, []rpc.UnaryMethod{rpc.HandleUnary("Ask", handler)}, nil),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			intercepted = !rpc.Serving(ctx) // the interceptor's own context is the server's
			return h(ctx, req)
		}))
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, rpc.DialOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := rpc.Call[servingResp](context.Background(), conn, "apiary.test.Serving", "Ask", &servingReq{})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Serving {
		t.Error("the handler's context does not say it serves a call")
	}
	if !intercepted {
		t.Error("the interceptor did not run, or its context already said so")
	}
	if local, _ := handler(context.Background(), nil); local.Serving {
		t.Error("a context of the caller's says it serves a call")
	}
}
