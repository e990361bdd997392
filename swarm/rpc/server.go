package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/tap"
)

// A gRPC server reads a request into memory before any interceptor runs,
// and its limits (message size, streams, flow-control windows) are the
// same for every caller. Server therefore does the TLS handshake itself and
// hands each connection to one of several gRPC servers by the class of its
// caller (pki: the role in its verified certificate, or anonymous), each
// with the limits of what that class may call: a joiner without a
// certificate meets a server whose largest message is a certificate
// request, not a raft entry. Within a class, Authorize (a tap handle) runs
// on a call's headers, before gRPC reads a byte of its body, so a caller
// is refused before it can make the server buffer anything.

// Limits bound what the callers of one class can make a server hold.
// Zero fields are not bounded (by us; gRPC's own defaults apply).
type Limits struct {
	// MaxRecvMsgSize is the largest request message. gRPC refuses a
	// larger one from its length prefix, before reading it.
	MaxRecvMsgSize int
	// MaxConcurrentStreams bounds the calls in progress on one connection.
	MaxConcurrentStreams uint32
	// MaxConns bounds the connections of the class at once; a connection
	// beyond it is closed after its handshake.
	MaxConns int
	// MaxConnsPerIdentity bounds the connections of one identity (one
	// node) at once.
	MaxConnsPerIdentity int
	// WindowSize, if set (at least 64 KiB), is the HTTP/2 flow-control
	// window of a stream and of a connection: the most a connection holds
	// that its handlers did not read yet. Unset, the windows are
	// StreamWindow and ConnWindow (never gRPC's own sizing, which grows
	// them up to 16 MiB and pings on every call to measure the link).
	WindowSize int32
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Credentials do the TLS handshake (credentials.NewTLS over a config
	// that verifies a client certificate when one is sent).
	Credentials credentials.TransportCredentials
	// Classify names the class of a connection from what its handshake
	// verified, and the identity its connections are counted under (""
	// for none). An error closes the connection.
	Classify func(credentials.AuthInfo) (class, identity string, err error)
	// Classes are the limits of each class; a connection of a class not
	// listed is closed.
	Classes map[string]Limits
	// Authorize runs on each call's headers, before its body is read: it
	// refuses the call (a status error) or returns the context the
	// handler runs with (the caller's identity in it).
	Authorize tap.ServerInHandle
	// Options are added to every class's gRPC server (keepalive, say).
	Options []grpc.ServerOption
	// HandshakeTimeout bounds a handshake (default 10 s).
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the handshakes in progress (default 256): a
	// connection beyond it is closed at once, so that peers that never
	// finish a handshake cannot hold the server's memory.
	MaxHandshakes int
	Logger        *slog.Logger
}

// Server serves gRPC services over TLS to callers sorted into classes. It
// implements grpc.ServiceRegistrar: a service registered on it is served to
// every class, and Authorize decides who may call what.
type Server struct {
	cfg     ServerConfig
	log     *slog.Logger
	servers map[string]*grpc.Server
	queues  map[string]*connQueue
	slots   chan struct{} // handshakes in progress

	mu      sync.Mutex
	stopped bool
	lis     []net.Listener
	conns   map[string]int // by class, and by class+"/"+identity
	wg      sync.WaitGroup
}

// NewServer returns a server for cfg; register services, then Serve.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Credentials == nil || cfg.Classify == nil || len(cfg.Classes) == 0 {
		return nil, errors.New("rpc: server config: Credentials, Classify and Classes are required")
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = 256
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger,
		servers: map[string]*grpc.Server{}, queues: map[string]*connQueue{},
		slots: make(chan struct{}, cfg.MaxHandshakes),
		conns: map[string]int{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	for class, l := range cfg.Classes {
		opts := []grpc.ServerOption{grpc.Creds(handshaken{}), StreamWorkersOption()}
		if cfg.Authorize != nil {
			opts = append(opts, grpc.InTapHandle(cfg.Authorize))
		}
		if l.MaxRecvMsgSize > 0 {
			opts = append(opts, grpc.MaxRecvMsgSize(l.MaxRecvMsgSize))
		}
		if l.MaxConcurrentStreams > 0 {
			opts = append(opts, grpc.MaxConcurrentStreams(l.MaxConcurrentStreams))
		}
		if l.WindowSize > 0 {
			opts = append(opts, grpc.InitialWindowSize(l.WindowSize), grpc.InitialConnWindowSize(l.WindowSize))
		} else {
			opts = append(opts, WindowOptions()...)
		}
		s.servers[class] = grpc.NewServer(append(opts, cfg.Options...)...)
		s.queues[class] = newConnQueue()
	}
	return s, nil
}

// RegisterService implements grpc.ServiceRegistrar.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, srv := range s.servers {
		srv.RegisterService(desc, impl)
	}
}

// Serve accepts connections on l until Stop. It returns nil after Stop, or
// the listener's error.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	first := len(s.lis) == 0
	s.lis = append(s.lis, l)
	if first {
		for class, srv := range s.servers {
			q := s.queues[class]
			q.addr = l.Addr()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_ = srv.Serve(q)
			}()
		}
	}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			stopped := s.stopped
			s.mu.Unlock()
			if stopped {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		select {
		case s.slots <- struct{}{}:
		default:
			s.log.Debug("rpc: too many handshakes in progress; connection closed", "remote", c.RemoteAddr())
			c.Close()
			continue
		}
		go func() {
			defer func() { <-s.slots }()
			s.admit(c)
		}()
	}
}

// admit handshakes c and hands it to the server of its class.
func (s *Server) admit(raw net.Conn) {
	_ = raw.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	conn, info, err := s.cfg.Credentials.ServerHandshake(raw)
	if err != nil {
		s.log.Debug("rpc: handshake failed", "remote", raw.RemoteAddr(), "err", err)
		raw.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	class, identity, err := s.cfg.Classify(info)
	limits, known := s.cfg.Classes[class]
	if err == nil && !known {
		err = fmt.Errorf("no server for callers of class %q", class)
	}
	if err != nil {
		s.log.Debug("rpc: connection refused", "remote", raw.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	release, err := s.count(class, identity, limits)
	if err != nil {
		s.log.Warn("rpc: connection refused", "remote", raw.RemoteAddr(), "class", class, "identity", identity, "err", err)
		conn.Close()
		return
	}
	cc := &classConn{Conn: conn, info: info, release: release}
	if !s.queues[class].put(cc) {
		cc.Close()
	}
}

// count takes a place for a connection of class and identity, or says why
// there is none; release gives it back.
func (s *Server) count(class, identity string, l Limits) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errors.New("server stopped")
	}
	if l.MaxConns > 0 && s.conns[class] >= l.MaxConns {
		return nil, fmt.Errorf("%d connections of class %s already open, the most allowed", s.conns[class], class)
	}
	idKey := class + "/" + identity
	if identity != "" && l.MaxConnsPerIdentity > 0 && s.conns[idKey] >= l.MaxConnsPerIdentity {
		return nil, fmt.Errorf("%d connections of %s already open, the most allowed", s.conns[idKey], identity)
	}
	s.conns[class]++
	if identity != "" {
		s.conns[idKey]++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.conns[class]--
		if identity != "" {
			if s.conns[idKey]--; s.conns[idKey] == 0 {
				delete(s.conns, idKey)
			}
		}
	}, nil
}

// Stop closes the listeners and every connection, and waits for the
// class servers to return.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	for _, l := range s.lis {
		l.Close()
	}
	s.mu.Unlock()
	for _, srv := range s.servers {
		srv.Stop()
	}
	for _, q := range s.queues {
		q.Close()
	}
	s.wg.Wait()
}

// classConn is a connection whose handshake is done: its AuthInfo travels
// with it to the gRPC server, and closing it frees its place.
type classConn struct {
	net.Conn
	info    credentials.AuthInfo
	once    sync.Once
	release func()
}

func (c *classConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// handshaken are the credentials of the class servers: the handshake is
// already done, so they hand on the connection and what it verified.
type handshaken struct{}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("rpc: server-side credentials cannot dial")
}

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cc, ok := c.(*classConn)
	if !ok {
		return nil, nil, fmt.Errorf("rpc: connection %T did not come through the handshake", c)
	}
	return cc, cc.info, nil
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (h handshaken) Clone() credentials.TransportCredentials { return h }

func (handshaken) OverrideServerName(string) error { return nil }

// connQueue is the net.Listener a class server accepts from.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to the server, or reports false once the queue is closed.
func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.closed.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
