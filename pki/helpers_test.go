package pki

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/apiary-io/apiary/internal/testutil"
)

const testClusterID = "cluster-test"

// newTestCA returns a fresh cluster CA over an in-memory state.
func newTestCA(t testing.TB, expiry time.Duration) (*MemState, *CAServer) {
	t.Helper()
	rec, err := NewCARecord(testClusterID, expiry)
	if err != nil {
		t.Fatal(err)
	}
	st := NewMemState(rec)
	return st, NewCAServer(st, CAServerOptions{Logger: testutil.DiscardLogger()})
}

// newTestNode issues an identity for a new node of role, persisted in a
// temporary directory.
func newTestNode(t testing.TB, ca *CAServer, role Role) *NodeIdentity {
	t.Helper()
	n, err := ca.NewNodeIdentity(context.Background(), NewNodeID(), role, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// handshake runs a TLS handshake between a server and a client config over
// loopback TCP (buffered, unlike net.Pipe: in TLS 1.3 the client may finish
// its handshake and write while the server is still rejecting it) and
// exchanges one byte each way. It returns the server's view of the
// connection and the errors of both sides.
func handshake(server, client *tls.Config) (tls.ConnectionState, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer lis.Close()
	type result struct {
		st  tls.ConnectionState
		err error
	}
	srvDone := make(chan result, 1)
	go func() {
		raw, err := lis.Accept()
		if err != nil {
			srvDone <- result{err: err}
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(raw, server)
		err = s.Handshake()
		if err == nil {
			b := make([]byte, 1)
			if _, err = io.ReadFull(s, b); err == nil {
				_, err = s.Write(b)
			}
		}
		srvDone <- result{s.ConnectionState(), err}
	}()
	raw, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(raw, client)
	cerr := c.Handshake()
	if cerr == nil {
		if _, cerr = c.Write([]byte{1}); cerr == nil {
			_, cerr = io.ReadFull(c, make([]byte, 1))
		}
	}
	if cerr != nil {
		raw.Close()
	}
	r := <-srvDone
	if cerr != nil || r.err != nil {
		return r.st, fmt.Errorf("client: %v; server: %v", cerr, r.err)
	}
	return r.st, nil
}

// Test gRPC service: hand-written like the CA's, JSON codec.
const (
	echoService      = "apiary.test.Echo"
	methodManager    = "/" + echoService + "/Manager"
	methodAny        = "/" + echoService + "/Any"
	methodManagerStr = "/" + echoService + "/ManagerStream"
	methodUnlisted   = "/" + echoService + "/Unlisted"
)

type echoReply struct {
	NodeID string
	Role   Role
	Serial string
	Peer   string
}

type echoServer interface {
	echo(ctx context.Context) (*echoReply, error)
}

type echoImpl struct{}

func (echoImpl) echo(ctx context.Context) (*echoReply, error) {
	id, _ := IdentityFromContext(ctx)
	r := &echoReply{NodeID: id.NodeID, Role: id.Role, Serial: id.Serial}
	if p, err := peerAddr(ctx); err == nil {
		r.Peer = p
	}
	return r, nil
}

func unaryEcho(name string) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		var in struct{}
		if err := dec(&in); err != nil {
			return nil, err
		}
		call := func(ctx context.Context, _ any) (any, error) { return srv.(echoServer).echo(ctx) }
		if ic == nil {
			return call(ctx, &in)
		}
		return ic(ctx, &in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + echoService + "/" + name}, call)
	}}
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: echoService,
	HandlerType: (*echoServer)(nil),
	Methods:     []grpc.MethodDesc{unaryEcho("Manager"), unaryEcho("Any"), unaryEcho("Unlisted")},
	Streams: []grpc.StreamDesc{{StreamName: "ManagerStream", ServerStreams: true, Handler: func(srv any, ss grpc.ServerStream) error {
		var in struct{}
		if err := ss.RecvMsg(&in); err != nil {
			return err
		}
		r, _ := srv.(echoServer).echo(ss.Context())
		return ss.SendMsg(r)
	}}},
}

func testPolicy() Policy {
	return CAPolicy().Merge(Policy{
		methodManager:    {RoleManager},
		methodManagerStr: {RoleManager},
		methodAny:        {RoleManager, RoleWorker},
	})
}

type testServer struct {
	addr     string
	requests atomic.Int64 // every RPC that reached the server, before authorization
	srv      *grpc.Server
}

// startServer runs a gRPC server on 127.0.0.1:0 with node's join-capable TLS
// config, the Authorizer, the CA service (if ca != nil) and the echo service.
func startServer(t testing.TB, node *NodeIdentity, ca *CAServer, removed RemovedNodes) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: lis.Addr().String()}
	az := NewAuthorizer(testPolicy(), removed, testutil.DiscardLogger())
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ts.requests.Add(1)
		return h(ctx, req)
	}
	countStream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ts.requests.Add(1)
		return h(srv, ss)
	}
	ts.srv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(node.JoinServerTLSConfig())),
		grpc.ChainUnaryInterceptor(count, az.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(countStream, az.StreamServerInterceptor()),
	)
	if ca != nil {
		RegisterCAService(ts.srv, ca)
	}
	ts.srv.RegisterService(&echoDesc, echoImpl{})
	go func() { _ = ts.srv.Serve(lis) }()
	t.Cleanup(ts.srv.Stop)
	return ts
}

// dial connects node to a manager at addr over mutual TLS.
func dial(t testing.TB, node *NodeIdentity, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(node.ClientTLSConfig(RoleManager))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func callEcho(ctx context.Context, conn grpc.ClientConnInterface, method string) (*echoReply, error) {
	var r echoReply
	err := conn.Invoke(ctx, method, &struct{}{}, &r, grpc.CallContentSubtype(CodecName))
	return &r, err
}

func peerAddr(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", errors.New("no gRPC peer")
	}
	return p.Addr.String(), nil
}
