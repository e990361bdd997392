package balancer

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MaxConnectAttempts bounds the backends one TCP connection tries before
// its client is refused. Backends are health-checked, so more than a few
// failing in a row means the endpoint table is stale; the bound keeps a
// client from waiting ConnectTimeout times the whole backend list.
const MaxConnectAttempts = 16

// conn is what a backend drains: a proxied TCP connection or a UDP flow.
type conn interface{ close() }

// backend is a Backend inside a running service: its latest state, its
// counters and the connections it carries. Addr never changes; the other
// fields not atomic are guarded by the service's mu.
type backend struct {
	Backend
	// listed is false once a SetBackends left the backend out; it then
	// stays only while it has connections.
	listed     bool
	conns      map[conn]struct{}
	drainTimer *time.Timer

	// active counts connections being dialled and open ones; least
	// connections reads it, so a burst of connects spreads.
	active, total, connectFailures, bytesIn, bytesOut atomic.Int64
}

// service is the state shared by the TCP and UDP sides of a running
// frontend.
type service struct {
	p  *Proxy
	fe Frontend

	mu       sync.Mutex
	opts     Options
	backends []*backend                  // listed, in the caller's order
	byAddr   map[netip.AddrPort]*backend // listed and draining
	next     uint64                      // rotation counter of choose
	removed  bool                        // RemoveService: no listener, draining
	closed   bool                        // Close: no connection may register
	stop     func()                      // closes the listener
	flows    map[netip.AddrPort]*udpFlow // UDP only

	limit                                             atomic.Int64 // max open connections or flows
	active, total, refused, failed, bytesIn, bytesOut atomic.Int64
}

func newService(p *Proxy, svc Service) *service {
	s := &service{p: p, fe: svc.Frontend, byAddr: map[netip.AddrPort]*backend{}}
	s.setOptions(svc.Options)
	return s
}

func (s *service) setOptions(o Options) {
	s.mu.Lock()
	s.opts = o
	s.mu.Unlock()
	limit := o.MaxConnections
	if limit == 0 {
		limit = s.p.cfg.MaxConnections
		if s.fe.Protocol == UDP {
			limit = s.p.cfg.MaxUDPFlows
		}
	}
	s.limit.Store(int64(limit))
}

// admit counts a new connection or flow in, unless the service is full.
func (s *service) admit() bool {
	if s.active.Add(1) > s.limit.Load() {
		s.active.Add(-1)
		s.refused.Add(1)
		return false
	}
	return true
}

// eligible says whether b may take a new connection.
func (s *service) eligible(b *backend) bool {
	return b.listed && b.Healthy && !s.removed && !s.closed
}

// acquire picks a backend for a new connection, skipping those already
// tried, and counts the connection on it. It returns nil when no backend
// is eligible; proxyV2 reports the service's current PROXY setting.
func (s *service) acquire(tried []*backend) (b *backend, proxyV2 bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs := s.backends
	i := choose(len(bs), s.opts.Scheduler, s.opts.TrafficPolicy, s.next,
		func(i int) bool {
			if !s.eligible(bs[i]) {
				return false
			}
			for _, t := range tried {
				if t == bs[i] {
					return false
				}
			}
			return true
		},
		func(i int) bool { return bs[i].Local },
		func(i int) int64 { return bs[i].active.Load() })
	if i < 0 {
		return nil, false
	}
	if len(tried) == 0 {
		// Only a connection's first choice moves the rotation: a retry
		// after a failed connect takes the backend after the dead one,
		// and the next connection goes on from there, so a dead backend
		// is tried by its share of connections, not by all of them.
		s.next++
	}
	bs[i].active.Add(1)
	return bs[i], s.opts.ProxyProtocol == ProxyV2
}

// register records c on b once it is connected, so a drain can close it.
// It returns false, and the caller closes c, when the proxy is closing.
func (s *service) register(b *backend, c conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if b.conns == nil {
		b.conns = map[conn]struct{}{}
	}
	b.conns[c] = struct{}{}
	b.total.Add(1)
	s.total.Add(1)
	if !s.eligible(b) {
		// The backend left while this connection was being made.
		s.drainLocked(b)
	}
	return true
}

// release undoes acquire (and register, if c is not nil) when a connection
// ends or its connect failed. The last connection of a backend that left
// takes the backend with it; the last of a removed service, the service.
func (s *service) release(b *backend, c conn) {
	b.active.Add(-1)
	s.mu.Lock()
	if c != nil {
		delete(b.conns, c)
	}
	if len(b.conns) == 0 && b.drainTimer != nil {
		b.drainTimer.Stop()
		b.drainTimer = nil
	}
	if (!b.listed || s.removed) && b.active.Load() == 0 && s.byAddr[b.Addr] == b {
		delete(s.byAddr, b.Addr)
	}
	gone := s.removed && len(s.byAddr) == 0
	s.mu.Unlock()
	if gone {
		s.p.forget(s)
	}
}

// setBackends installs a new backend list. Backends that stay keep their
// counters and connections; those that leave, or turn unhealthy, drain.
func (s *service) setBackends(list []Backend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.backends {
		b.listed = false
	}
	s.backends = make([]*backend, 0, len(list))
	for _, nb := range list {
		b := s.byAddr[nb.Addr]
		if b == nil {
			b = &backend{Backend: nb}
			s.byAddr[nb.Addr] = b
		}
		// Addr is never written again: connects and logs read it
		// without the lock.
		b.NodeID, b.Healthy, b.Local = nb.NodeID, nb.Healthy, nb.Local
		b.listed = true
		s.backends = append(s.backends, b)
	}
	for addr, b := range s.byAddr {
		switch {
		case s.eligible(b):
			if b.drainTimer != nil { // back before its drain ended
				b.drainTimer.Stop()
				b.drainTimer = nil
			}
		case !b.listed && b.active.Load() == 0:
			delete(s.byAddr, addr)
		default:
			s.drainLocked(b)
		}
	}
}

// remove marks the service removed: no new connections, every open one
// drains. It reports whether connections remain.
func (s *service) remove() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = true
	open := false
	for addr, b := range s.byAddr {
		if b.active.Load() == 0 {
			delete(s.byAddr, addr)
			continue
		}
		open = true
		s.drainLocked(b)
	}
	return open
}

// drainLocked starts b's drain timer if b has connections and none runs:
// when it fires, b's connections are closed.
func (s *service) drainLocked(b *backend) {
	if len(b.conns) == 0 || b.drainTimer != nil {
		return
	}
	b.drainTimer = time.AfterFunc(s.p.cfg.DrainTimeout, func() { s.expire(b) })
}

// expire closes the connections of b, still not eligible at the end of its
// drain.
func (s *service) expire(b *backend) {
	s.mu.Lock()
	if s.eligible(b) {
		s.mu.Unlock()
		return
	}
	b.drainTimer = nil
	victims := make([]conn, 0, len(b.conns))
	for c := range b.conns {
		victims = append(victims, c)
	}
	s.mu.Unlock()
	if len(victims) > 0 {
		s.p.log.Info("balancer: drain timeout, closing connections",
			"service", s.fe.String(), "backend", b.Addr.String(), "connections", len(victims))
	}
	for _, c := range victims {
		c.close()
	}
}

// shut closes the listener and every connection at once (Proxy.Close).
func (s *service) shut() {
	s.mu.Lock()
	s.closed = true
	stop := s.stop
	var victims []conn
	for _, b := range s.byAddr {
		if b.drainTimer != nil {
			b.drainTimer.Stop()
			b.drainTimer = nil
		}
		for c := range b.conns {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	for _, c := range victims {
		c.close()
	}
}

func (s *service) stats() ServiceStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServiceStats{
		Frontend: s.fe, Active: s.active.Load(), Total: s.total.Load(),
		Refused: s.refused.Load(), Failed: s.failed.Load(),
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
	}
	add := func(b *backend) {
		st.Backends = append(st.Backends, BackendStats{
			Addr: b.Addr, NodeID: b.NodeID, Healthy: b.Healthy,
			Draining: !s.eligible(b) && b.active.Load() > 0,
			Active:   b.active.Load(), Total: b.total.Load(),
			ConnectFailures: b.connectFailures.Load(),
			BytesIn:         b.bytesIn.Load(), BytesOut: b.bytesOut.Load(),
		})
	}
	for _, b := range s.backends {
		add(b)
	}
	var left []*backend
	for _, b := range s.byAddr {
		if !b.listed {
			left = append(left, b)
		}
	}
	slices.SortFunc(left, func(a, b *backend) int { return a.Addr.Compare(b.Addr) })
	for _, b := range left {
		add(b)
	}
	return st
}
