package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	miekg "github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// shutdownGrace is how long Close waits for queries being answered.
const shutdownGrace = 5 * time.Second

// busyLogEvery spaces the warnings that forwarding is at its limit: under a
// flood there would be one per query.
const busyLogEvery = 10 * time.Second

// Server is a node's DNS server. It answers the cluster's names from its
// records and forwards other names upstream.
type Server struct {
	cfg    Config
	domain string // lower-case, fully qualified
	ttl    uint32
	fwd    *forwarder // nil without upstreams
	log    *slog.Logger
	addr   netip.AddrPort
	udp    *miekg.Server
	tcp    *miekg.Server

	ctx    context.Context // cancelled by Close: ends forwards in flight
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
	lastBusy  atomic.Int64 // unix nanoseconds of the last "busy" warning
}

// Listen validates cfg, binds UDP and TCP on one port of cfg.Addr and
// serves until Close.
func Listen(cfg Config) (*Server, error) {
	cfg, ups, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if len(ups) == 0 {
		if ups, err = readResolvConf(cfg.ResolvConf); err != nil {
			return nil, err
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, ln, err := listenBoth(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := newServer(cfg, log)
	s.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	s.addr = netip.AddrPortFrom(s.addr.Addr().Unmap(), s.addr.Port())
	kept := withoutSelf(ups, s.addr)
	switch {
	case len(kept) == 0:
		log.Warn("dns: no upstream resolvers; names outside the cluster are refused", "resolv_conf", cfg.ResolvConf, "upstreams", ups, "addr", s.addr)
	case len(kept) < len(ups):
		log.Warn("dns: an upstream is this server, not forwarding to it", "upstreams", ups, "addr", s.addr)
	}
	if len(kept) > 0 {
		s.fwd = newForwarder(kept, cfg, log)
	}
	s.udp = &miekg.Server{PacketConn: pc, Handler: s, UDPSize: cfg.MaxUDPSize, MsgAcceptFunc: accept}
	s.tcp = &miekg.Server{
		Listener:      netutil.LimitListener(ln, cfg.MaxTCPConns),
		Handler:       s,
		MsgAcceptFunc: accept,
		IdleTimeout:   func() time.Duration { return cfg.TCPIdleTimeout },
	}
	if err := errors.Join(start(s.udp), start(s.tcp)); err != nil {
		s.Close()
		return nil, fmt.Errorf("dns: serving on %s: %w", s.addr, err)
	}
	log.Info("dns: serving", "addr", s.addr, "domain", s.domain, "upstreams", kept)
	return s, nil
}

// newServer returns a server with cfg (validated) and no sockets.
func newServer(cfg Config, log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:    cfg,
		domain: cfg.Domain,
		ttl:    uint32(cfg.TTL / time.Second),
		log:    log,
		ctx:    ctx,
		cancel: cancel,
	}
}

// start serves srv in a goroutine and returns once it is serving, or the
// error that kept it from starting.
func start(srv *miekg.Server) error {
	started := make(chan struct{})
	failed := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { failed <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-failed:
		if err == nil {
			err = errors.New("stopped before it started")
		}
		return err
	}
}

// listenBoth binds UDP and TCP on the same port. With port 0 the UDP port
// is picked first and TCP may find it taken: it then tries another.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: config: Addr: want HOST:PORT, got %q: %w", addr, err)
	}
	const attempts = 10
	for range attempts {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listening on %s/udp: %w", addr, err)
		}
		picked := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, picked))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" {
			return nil, nil, fmt.Errorf("dns: listening on %s/tcp: %w", addr, err)
		}
	}
	return nil, nil, fmt.Errorf("dns: listening on %s: no port free for both UDP and TCP in %d attempts", addr, attempts)
}

// accept refuses what DefaultMsgAcceptFunc lets through but we do not
// serve (NOTIFY), before the message is parsed.
func accept(h miekg.Header) miekg.MsgAcceptAction {
	if int(h.Bits>>11)&0xF == miekg.OpcodeNotify && h.Bits&(1<<15) == 0 {
		return miekg.MsgRejectNotImplemented
	}
	return miekg.DefaultMsgAcceptFunc(h)
}

// Addr is the address the server listens on, UDP and TCP (the port chosen
// when the configured one was 0).
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Close stops serving, ends forwards in flight, and waits up to a few
// seconds for the queries being answered. It is safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		var errs []error
		for _, srv := range []*miekg.Server{s.udp, s.tcp} {
			if srv == nil {
				continue
			}
			if err := srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			s.closeErr = fmt.Errorf("dns: closing: %w", errors.Join(errs...))
		}
	})
	return s.closeErr
}

// ServeDNS implements miekg/dns's Handler: it answers one query.
func (s *Server) ServeDNS(w miekg.ResponseWriter, r *miekg.Msg) {
	overTCP := false
	var client netip.Addr
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		client = a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		client = a.AddrPort().Addr().Unmap()
		overTCP = true
	}
	resp := s.respond(r, client, overTCP)
	if resp == nil {
		return
	}
	s.fit(resp, r, overTCP)
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns: writing an answer", "client", client, "err", err)
	}
}

// respond returns the answer to r, or nil when none must be sent.
func (s *Server) respond(r *miekg.Msg, client netip.Addr, overTCP bool) *miekg.Msg {
	if r.Response {
		return nil // an answer sent to us: replying could loop
	}
	m := new(miekg.Msg)
	switch {
	case r.Opcode != miekg.OpcodeQuery:
		return m.SetRcode(r, miekg.RcodeNotImplemented)
	case len(r.Question) != 1:
		return m.SetRcodeFormatError(r)
	}
	if opt := r.IsEdns0(); opt != nil && opt.Version() != 0 {
		m.SetRcode(r, miekg.RcodeBadVers)
		m.SetEdns0(uint16(s.cfg.MaxUDPSize), false)
		return m
	}
	q := r.Question[0]
	if q.Qclass != miekg.ClassINET {
		return m.SetRcode(r, miekg.RcodeRefused)
	}
	recs := s.cfg.Records
	if s.cfg.View != nil {
		recs = s.cfg.View(client)
	}
	rel, inDomain := splitDomain(q.Name, s.domain)
	var a answer
	switch {
	case inDomain && rel == "":
		a.known = true // the domain itself: it exists, with no records
	case recs == nil:
	case !inDomain && (strings.HasSuffix(rel, ".in-addr.arpa") || strings.HasSuffix(rel, ".ip6.arpa")):
		a = s.lookupPTR(recs, q.Name, q.Qtype, rel)
	default:
		a = s.lookup(recs, q.Name, q.Qtype, rel)
	}
	if !a.known && !inDomain {
		return s.forward(r, overTCP)
	}
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = s.fwd != nil
	if !a.known {
		m.Rcode = miekg.RcodeNameError
	}
	m.Answer, m.Extra = a.records, a.extra
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(uint16(s.cfg.MaxUDPSize), opt.Do())
	}
	return m
}

// forward answers r from the upstreams: SERVFAIL when none answers,
// REFUSED when there are none.
func (s *Server) forward(r *miekg.Msg, overTCP bool) *miekg.Msg {
	if s.fwd == nil {
		return new(miekg.Msg).SetRcode(r, miekg.RcodeRefused)
	}
	resp, err := s.fwd.forward(s.ctx, r, overTCP)
	if err == nil {
		return resp
	}
	if errors.Is(err, errForwardBusy) {
		now := time.Now().UnixNano()
		if last := s.lastBusy.Load(); now-last >= int64(busyLogEvery) && s.lastBusy.CompareAndSwap(last, now) {
			s.log.Warn("dns: forwarding at its limit, answering SERVFAIL", "max_concurrent_forwards", s.cfg.MaxConcurrentForwards)
		}
	} else {
		s.log.Debug("dns: forwarding failed", "name", r.Question[0].Name, "err", err)
	}
	m := new(miekg.Msg).SetRcode(r, miekg.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// fit truncates resp to what the client can take: over UDP, 512 bytes or
// the buffer it advertised (EDNS0), capped by MaxUDPSize, with TC set when
// records had to go; over TCP, a message's 64 KiB.
func (s *Server) fit(resp, r *miekg.Msg, overTCP bool) {
	if overTCP {
		resp.Truncate(miekg.MaxMsgSize)
		return
	}
	size := minUDPSize
	if opt := r.IsEdns0(); opt != nil {
		size = max(minUDPSize, min(int(opt.UDPSize()), s.cfg.MaxUDPSize))
	}
	resp.Truncate(size)
}
