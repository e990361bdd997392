package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/apiary-io/apiary/swarm/rpc"
)

// The gRPC service is declared by hand (there is no generated code): two
// streaming methods whose frames are raw bytes, carried by a codec that
// passes them through. Raft messages are marshalled by the caller.
//
//	Stream    bidirectional: a sender's raft messages to one recipient, in
//	          order; the server answers only by ending the stream with an
//	          error (PermissionDenied when the sender was removed).
//	Snapshot  client stream: the MsgSnap, then the data in chunks; one
//	          empty reply once the recipient stored all of it.
const (
	grpcService      = "apiary.raft.v1.Raft"
	grpcStreamMethod = "/" + grpcService + "/Stream"
	grpcSnapMethod   = "/" + grpcService + "/Snapshot"
	rawCodecName     = rpc.CodecName
)

func init() {
	rpc.RegisterError("RAFT_MEMBER_REMOVED", ErrRemoved, codes.PermissionDenied)
	// Kept across the wire so that a caller can ask another member (a
	// manager asked to add a member after leadership moved) or read and
	// try again (the outcome of a change is unknown).
	rpc.RegisterError("RAFT_NOT_LEADER", ErrNotLeader, codes.Unavailable)
	rpc.RegisterError("RAFT_LOST_LEADERSHIP", ErrLostLeadership, codes.Aborted)
}

// rawFrame is a raft message or a snapshot chunk, already encoded: rpc's
// codec carries it as it is.
type rawFrame = rpc.Frame

type raftService interface{ raftService() }

func (*GRPCTransport) raftService() {}

var (
	streamDesc = grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}
	snapDesc   = grpc.StreamDesc{StreamName: "Snapshot", ClientStreams: true}
)

// GRPCConfig configures a GRPCTransport.
type GRPCConfig struct {
	// ListenAddr is the address to listen on ("127.0.0.1:0" picks a port;
	// Addr tells which). Ignored when Listener or Server is set.
	ListenAddr string
	// Listener, if set, is served instead of listening on ListenAddr.
	Listener net.Listener
	// Server, if set, is a gRPC server the caller owns and serves (shared
	// with other services): the raft service is registered on it and the
	// transport neither listens nor stops it. Its options must allow
	// messages of MaxFrameSize.
	Server grpc.ServiceRegistrar
	// MaxFrameSize is the largest frame sent or received: the members'
	// Config.MaxFrameSize (zero: DefaultConfig's). The transport's own
	// server refuses larger ones before reading them.
	MaxFrameSize int
	// TLS, if set, secures both directions with it (mutual TLS when it
	// holds a certificate and verifies the peer's): the pki plugs in here.
	// Without TLS or credentials the transport is plaintext (tests, and
	// loopback until the pki exists).
	TLS *tls.Config
	// ServerCredentials and ClientCredentials override TLS per side.
	ServerCredentials credentials.TransportCredentials
	ClientCredentials credentials.TransportCredentials
	// Authorize, if set, is called once per incoming stream with the raft
	// ID the sender claims; an error refuses the stream. With mutual TLS
	// it checks the ID against the verified certificate
	// (peer.FromContext(ctx)).
	Authorize func(ctx context.Context, from uint64) error
	// ServerOptions and DialOptions are added to the transport's own.
	ServerOptions []grpc.ServerOption
	DialOptions   []grpc.DialOption
	// ChunkSize is the snapshot chunk size (default 1 MiB).
	ChunkSize int
	// QueueSize is the per-peer queue of unsent messages (default 4096).
	QueueSize int
	Logger    *slog.Logger
}

// GRPCTransport is the Transport between manager processes.
type GRPCTransport struct {
	cfg     GRPCConfig
	log     *slog.Logger
	lis     net.Listener
	srv     *grpc.Server
	ownSrv  bool
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	id      uint64
	h       Handler
	stopped bool
	peers   map[uint64]*grpcPeer
	active  sync.WaitGroup // server handlers
	serveWG sync.WaitGroup
	// blocked, when set (tests), drops messages on links it names, in
	// both directions, as a network partition would.
	blocked atomic.Pointer[func(from, to uint64) bool]
}

func (t *GRPCTransport) isBlocked(from, to uint64) bool {
	f := t.blocked.Load()
	return f != nil && (*f)(from, to)
}

var _ Transport = (*GRPCTransport)(nil)

// NewGRPCTransport listens (unless given a Server) and registers the raft
// service. Messages are refused until Start.
func NewGRPCTransport(cfg GRPCConfig) (*GRPCTransport, error) {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 1 << 20
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.MaxFrameSize <= 0 {
		cfg.MaxFrameSize = DefaultConfig().MaxFrameSize()
	}
	t := &GRPCTransport{cfg: cfg, log: cfg.Logger, peers: map[uint64]*grpcPeer{}}
	if t.log == nil {
		t.log = slog.Default()
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	desc := grpc.ServiceDesc{
		ServiceName: grpcService,
		HandlerType: (*raftService)(nil),
		Streams: []grpc.StreamDesc{
			{StreamName: "Stream", Handler: t.serveStream, ServerStreams: true, ClientStreams: true},
			{StreamName: "Snapshot", Handler: t.serveSnapshot, ClientStreams: true},
		},
	}
	if cfg.Server != nil {
		cfg.Server.RegisterService(&desc, t)
		return t, nil
	}
	lis := cfg.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			return nil, fmt.Errorf("raft: listen on %s: %w", cfg.ListenAddr, err)
		}
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxFrameSize),
		grpc.WaitForHandlers(true),
	}
	if c := t.serverCreds(); c != nil {
		opts = append(opts, grpc.Creds(c))
	}
	opts = append(opts, cfg.ServerOptions...)
	t.lis, t.srv, t.ownSrv = lis, grpc.NewServer(opts...), true
	t.srv.RegisterService(&desc, t)
	t.serveWG.Add(1)
	go func() {
		defer t.serveWG.Done()
		if err := t.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.log.Error("raft transport server stopped", "err", err)
		}
	}()
	return t, nil
}

func (t *GRPCTransport) serverCreds() credentials.TransportCredentials {
	if t.cfg.ServerCredentials != nil {
		return t.cfg.ServerCredentials
	}
	if t.cfg.TLS != nil {
		return credentials.NewTLS(t.cfg.TLS)
	}
	return nil
}

func (t *GRPCTransport) clientCreds() credentials.TransportCredentials {
	if t.cfg.ClientCredentials != nil {
		return t.cfg.ClientCredentials
	}
	if t.cfg.TLS != nil {
		return credentials.NewTLS(t.cfg.TLS)
	}
	return insecure.NewCredentials()
}

// Addr returns the address the transport listens on.
func (t *GRPCTransport) Addr() string {
	if t.lis != nil {
		return t.lis.Addr().String()
	}
	return t.cfg.ListenAddr
}

// Start implements Transport.
func (t *GRPCTransport) Start(id uint64, h Handler) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return errors.New("raft: transport stopped")
	}
	t.id, t.h = id, h
	return nil
}

// handler returns the handler and registers an active call, or nil.
func (t *GRPCTransport) handler() Handler {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.h == nil {
		return nil
	}
	t.active.Add(1)
	return t.h
}

// serve starts serving a stream: the handler (registered as an active
// call), a context that ends with the stream or the transport, and done,
// which the caller defers; an error when the transport is not running.
func (t *GRPCTransport) serve(ss grpc.ServerStream) (Handler, context.Context, func(), error) {
	h := t.handler()
	if h == nil {
		return nil, nil, nil, status.Error(codes.Unavailable, "raft: transport not running")
	}
	ctx, cancel := mergeCancel(ss.Context(), t.ctx)
	return h, ctx, func() { cancel(); t.active.Done() }, nil
}

func (t *GRPCTransport) authorize(ctx context.Context, m *raftpb.Message) error {
	if t.cfg.Authorize == nil {
		return nil
	}
	if err := t.cfg.Authorize(ctx, m.GetFrom()); err != nil {
		return status.Errorf(codes.PermissionDenied, "raft: sender %x not authorized: %v", m.GetFrom(), err)
	}
	return nil
}

func stepError(err error) error {
	switch {
	case errors.Is(err, ErrRemoved):
		return rpc.ToStatus(err)
	case errors.Is(err, ErrStopped):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}

func (t *GRPCTransport) serveStream(_ any, ss grpc.ServerStream) error {
	h, ctx, done, err := t.serve(ss)
	if err != nil {
		return err
	}
	defer done()
	// The sender is authorized for the member ID it speaks as; every
	// frame of the stream is held to that ID, so a stream authorized as
	// one member cannot go on to speak as another.
	var sender uint64
	for {
		f := &rawFrame{}
		if err := ss.RecvMsg(f); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		m := &raftpb.Message{}
		err := proto.Unmarshal(f.B, m) // which copies what it keeps
		f.Release()
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "raft: bad message: %v", err)
		}
		if t.isBlocked(m.GetFrom(), m.GetTo()) {
			continue
		}
		if m.GetFrom() != sender || sender == 0 {
			if sender != 0 {
				return status.Errorf(codes.PermissionDenied, "raft: stream authorized for member %x carried a message from %x", sender, m.GetFrom())
			}
			if err := t.authorize(ctx, m); err != nil {
				return err
			}
			sender = m.GetFrom()
		}
		if err := h.Step(ctx, m); err != nil {
			if errors.Is(err, ErrRemoved) || errors.Is(err, ErrStopped) || ctx.Err() != nil {
				return stepError(err)
			}
			t.log.Debug("raft transport: message refused", "from", fmt.Sprintf("%x", m.GetFrom()), "err", err)
		}
	}
}

// mergeCancel returns a context cancelled when either parent is.
func mergeCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}

// AddPeer implements Transport.
func (t *GRPCTransport) AddPeer(id uint64, addr string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return errors.New("raft: transport stopped")
	}
	if p := t.peers[id]; p != nil {
		if p.addr == addr {
			return nil
		}
		p.close()
		delete(t.peers, id)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(t.clientCreds()),
		// Reconnect fast: a restarted member must be reachable again
		// within an election timeout, not after gRPC's default backoff of
		// up to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(rawCodecName), grpc.MaxCallRecvMsgSize(t.cfg.MaxFrameSize), grpc.MaxCallSendMsgSize(t.cfg.MaxFrameSize)),
	}
	opts = append(opts, t.cfg.DialOptions...)
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return fmt.Errorf("raft: connect to %x at %s: %w", id, addr, err)
	}
	p := &grpcPeer{t: t, id: id, addr: addr, conn: conn, q: make(chan *raftpb.Message, t.cfg.QueueSize),
		stop: make(chan struct{}), done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	t.peers[id] = p
	go p.run()
	return nil
}

// RemovePeer implements Transport.
func (t *GRPCTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.close()
	}
}

// Send implements Transport.
func (t *GRPCTransport) Send(msgs []*raftpb.Message) {
	t.mu.Lock()
	h := t.h
	var unknown []uint64
	for _, m := range msgs {
		if t.isBlocked(m.GetFrom(), m.GetTo()) {
			continue
		}
		p := t.peers[m.GetTo()]
		if p == nil {
			unknown = append(unknown, m.GetTo())
			continue
		}
		select {
		case p.q <- m:
		default:
			// The peer is slow or gone; raft will resend.
			unknown = append(unknown, m.GetTo())
		}
	}
	t.mu.Unlock()
	if h != nil {
		for _, id := range unknown {
			h.ReportUnreachable(id)
		}
	}
}

func isRemoved(err error) bool {
	return errors.Is(rpc.FromStatus(err), ErrRemoved)
}

// Stop implements Transport.
func (t *GRPCTransport) Stop() error {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil
	}
	t.stopped = true
	peers := t.peers
	t.peers = map[uint64]*grpcPeer{}
	t.mu.Unlock()
	t.cancel()
	for _, p := range peers {
		p.close()
	}
	if t.ownSrv {
		t.srv.Stop()
		t.serveWG.Wait()
	}
	t.active.Wait()
	return nil
}

// grpcPeer sends one member's messages over one long-lived stream.
type grpcPeer struct {
	t      *GRPCTransport
	id     uint64
	addr   string
	conn   *grpc.ClientConn
	ctx    context.Context // cancelled by close: unblocks a stalled send
	cancel context.CancelFunc
	q      chan *raftpb.Message
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func (p *grpcPeer) close() {
	p.once.Do(func() { p.cancel(); close(p.stop) })
	<-p.done
	p.conn.Close()
}

func (p *grpcPeer) unreachable() {
	p.t.mu.Lock()
	h := p.t.h
	p.t.mu.Unlock()
	if h != nil {
		h.ReportUnreachable(p.id)
	}
}

func (p *grpcPeer) run() {
	defer close(p.done)
	var cur *peerStream
	defer func() {
		if cur != nil {
			cur.cancel()
		}
	}()
	for {
		var m *raftpb.Message
		select {
		case m = <-p.q:
		case <-p.stop:
			return
		}
		if cur == nil {
			cur = p.open()
			if cur == nil {
				p.unreachable()
				continue
			}
		}
		// Into a buffer of gRPC's pool, which it takes back once the
		// frame is written: appends are tens of kilobytes, one per
		// follower per batch of proposals.
		f, err := rpc.AppendFrame(proto.Size(m), func(b []byte) ([]byte, error) {
			return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, m)
		})
		if err != nil {
			continue
		}
		err = cur.cs.SendMsg(f)
		f.Release()
		if err != nil {
			cur.cancel()
			cur = nil
			p.unreachable()
		}
	}
}

type peerStream struct {
	cs     grpc.ClientStream
	cancel context.CancelFunc
}

func (p *grpcPeer) open() *peerStream {
	ctx, cancel := context.WithCancel(p.ctx)
	cs, err := p.conn.NewStream(ctx, &streamDesc, grpcStreamMethod)
	if err != nil {
		cancel()
		return nil
	}
	go p.watch(cs)
	return &peerStream{cs: cs, cancel: cancel}
}

// watch waits for the server to end a stream: that only happens on an
// error, and a removed-member error must reach the node.
func (p *grpcPeer) watch(cs grpc.ClientStream) {
	err := cs.RecvMsg(&rawFrame{})
	if err == nil || err == io.EOF {
		return
	}
	if isRemoved(err) {
		p.t.mu.Lock()
		h := p.t.h
		p.t.mu.Unlock()
		if h != nil {
			h.ReportRemoved(p.id)
		}
		return
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Canceled {
		return
	}
	p.unreachable()
}
