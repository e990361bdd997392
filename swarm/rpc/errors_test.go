package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/apiary-io/apiary/swarm/rpc"
)

var (
	errFirst  = errors.New("first sentinel")
	errSecond = errors.New("second sentinel")
)

func init() {
	rpc.RegisterError("TEST_FIRST", errFirst, codes.FailedPrecondition)
	rpc.RegisterError("TEST_SECOND", errSecond, codes.NotFound)
}

type failReq struct{ Which string }
type failResp struct{}

// A registered sentinel, wrapped with context on the server, comes back
// to the client as an error for which errors.Is holds, with its status
// code and the server's message; an unregistered error keeps its code and
// text but matches no sentinel.
func TestErrorsKeepTheirIdentityAcrossTheWire(t *testing.T) {
	addr := serve(t, rpc.NewService("apiary.test.Errors", nil, []rpc.UnaryMethod{rpc.HandleUnary("Fail", func(_ context.Context, r *failReq) (*failResp, error) {
		switch r.Which {
		case "first":
			return nil, fmt.Errorf("doing x for %s: %w", "y", errFirst)
		case "second":
			return nil, fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", errSecond))
		case "status":
			return nil, status.Error(codes.ResourceExhausted, "already a status")
		}
		return nil, errors.New("plain failure")
	})}, nil))
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, rpc.DialOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		which string
		is    error
		code  codes.Code
		text  string
	}{
		{"first", errFirst, codes.FailedPrecondition, "doing x for y: first sentinel"},
		{"second", errSecond, codes.NotFound, "outer: inner: second sentinel"},
		{"status", nil, codes.ResourceExhausted, "already a status"},
		{"plain", nil, codes.Unknown, "plain failure"},
	} {
		_, err := rpc.Call[failResp](context.Background(), conn, "apiary.test.Errors", "Fail", &failReq{Which: tc.which})
		if err == nil {
			t.Fatalf("%s: no error", tc.which)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v does not match its sentinel", tc.which, err)
		}
		if tc.is == nil && (errors.Is(err, errFirst) || errors.Is(err, errSecond)) {
			t.Errorf("%s: %v matches a sentinel it did not wrap", tc.which, err)
		}
		if status.Code(err) != tc.code {
			t.Errorf("%s: code %s, want %s", tc.which, status.Code(err), tc.code)
		}
		if got := err.Error(); got != tc.text && got != tc.code.String()+": "+tc.text {
			t.Errorf("%s: message %q, want %q", tc.which, got, tc.text)
		}
	}
}
