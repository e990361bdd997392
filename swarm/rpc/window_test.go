package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apiary-io/apiary/swarm/rpc"
)

type pingReq struct{ N int }
type pingResp struct{ N int }

// recordingConn keeps every byte the client reads: the server's frames.
type recordingConn struct {
	net.Conn
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (c recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// serverPings makes calls one after another, as a client waiting for each
// answer does, and counts the PING frames (not acknowledgements) the
// server sent meanwhile.
func serverPings(t *testing.T, serverOpts []grpc.ServerOption, dialOpts []grpc.DialOption, calls int) int {
	t.Helper()
	addr := serve(t, rpc.NewService("apiary.test.Ping", nil, []rpc.UnaryMethod{rpc.HandleUnary("Ping", func(_ context.Context, r *pingReq) (*pingResp, error) {
		return &pingResp{N: r.N}, nil
	})}, nil), serverOpts...)
	var mu sync.Mutex
	var read bytes.Buffer
	dial := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return recordingConn{Conn: c, mu: &mu, buf: &read}, nil
	})
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), dial}, dialOpts...)
	conn, err := grpc.NewClient(addr, all...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range calls {
		r, err := rpc.Call[pingResp](context.Background(), conn, "apiary.test.Ping", "Ping", &pingReq{N: i})
		if err != nil || r.N != i {
			t.Fatalf("call %d: %v, %+v", i, err, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	fr := http2.NewFramer(io.Discard, bytes.NewReader(read.Bytes()))
	pings := 0
	for {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return pings
		}
		if err != nil {
			t.Fatalf("server's frames: %v", err)
		}
		if p, ok := f.(*http2.PingFrame); ok && !p.IsAck() {
			pings++
		}
	}
}

// With our fixed windows (rpc.WindowOptions, rpc.DialOptions) neither side
// measures the link: the server sends no ping however many calls it
// answers. gRPC's own sizing pings on nearly every call of a client that
// waits for each answer (checked too, so that the count means something).
func TestFixedWindowsSendNoPings(t *testing.T) {
	const calls = 200
	defaults := serverPings(t, nil, []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.CallContentSubtype(rpc.WireCodec{}.Name()))}, calls)
	if defaults < calls/2 {
		t.Fatalf("gRPC's own window sizing sent %d pings in %d calls: the count does not see them", defaults, calls)
	}
	if fixed := serverPings(t, rpc.WindowOptions(), rpc.DialOptions(), calls); fixed != 0 {
		t.Errorf("with fixed windows the server sent %d pings in %d calls, want 0", fixed, calls)
	}
	t.Logf("server pings in %d calls: %d with gRPC's sizing, 0 with fixed windows", calls, defaults)
}

// serve serves desc on a loopback port until the test ends and returns
// the port's address.
func serve(t *testing.T, desc grpc.ServiceDesc, opts ...grpc.ServerOption) string {
	t.Helper()
	s := grpc.NewServer(opts...)
	s.RegisterService(&desc, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().String()
}
