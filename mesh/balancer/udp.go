package balancer

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// maxDatagram is the receive buffer of a UDP service and of each flow: the
// largest UDP payload, so no datagram is truncated.
const maxDatagram = 65535

// udpFlow is the datagrams of one client address: a connected socket to
// the backend chosen for its first datagram, whose answers go back to the
// client from the service's socket, until it has been idle for
// Config.UDPIdleTimeout.
type udpFlow struct {
	s      *service
	b      *backend
	client netip.AddrPort
	up     *net.UDPConn
	// last is the time of the latest datagram either way, in UnixNano.
	last      atomic.Int64
	closeOnce sync.Once
}

func (f *udpFlow) close() { f.closeOnce.Do(func() { f.up.Close() }) }

// serveUDP reads datagrams from clients until the socket is closed, and
// forwards each on its client's flow, making the flow if there is none.
func (s *service) serveUDP(pc *net.UDPConn) {
	defer s.p.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors surface here on some systems; they concern one
			// datagram, not the socket.
			s.p.log.Debug("balancer: udp read", "service", s.fe.String(), "err", err)
			continue
		}
		f := s.flow(pc, from)
		if f == nil {
			continue // dropped: counted as refused or failed
		}
		f.last.Store(time.Now().UnixNano())
		_, err = f.up.Write(buf[:n])
		if errors.Is(err, net.ErrClosed) {
			// The flow expired (or drained) between the lookup and the
			// write: the datagram starts the client's next flow.
			s.forgetFlow(f)
			if f = s.flow(pc, from); f == nil {
				continue
			}
			_, err = f.up.Write(buf[:n])
		}
		if err != nil {
			s.p.log.Debug("balancer: udp forward", "service", s.fe.String(), "backend", f.b.Addr.String(), "err", err)
			continue
		}
		s.bytesIn.Add(int64(n))
		f.b.bytesIn.Add(int64(n))
	}
}

// flow returns the flow of client, making one (and starting its answer
// loop) if there is none. nil means the datagram is dropped: the service is
// at its flow limit, or no backend is eligible.
func (s *service) flow(pc *net.UDPConn, client netip.AddrPort) *udpFlow {
	s.mu.Lock()
	f := s.flows[client]
	s.mu.Unlock()
	if f != nil {
		return f
	}
	if !s.admit() {
		return nil
	}
	b, _ := s.acquire(nil)
	if b == nil {
		s.active.Add(-1)
		s.failed.Add(1)
		return nil
	}
	up, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.Addr))
	if err != nil {
		b.connectFailures.Add(1)
		s.release(b, nil)
		s.active.Add(-1)
		s.failed.Add(1)
		s.p.log.Debug("balancer: udp flow", "service", s.fe.String(), "backend", b.Addr.String(), "err", err)
		return nil
	}
	f = &udpFlow{s: s, b: b, client: client, up: up}
	f.last.Store(time.Now().UnixNano())
	if !s.register(b, f) {
		f.close()
		s.release(b, nil)
		s.active.Add(-1)
		return nil
	}
	s.mu.Lock()
	s.flows[client] = f
	s.mu.Unlock()
	s.p.wg.Add(1)
	go f.answer(pc)
	return f
}

// answer copies the backend's datagrams back to the client until the flow
// has been idle for the idle timeout or its socket is closed (drain, Close,
// or the backend refusing with ICMP), then removes the flow.
func (f *udpFlow) answer(pc *net.UDPConn) {
	s := f.s
	defer s.p.wg.Done()
	idle := s.p.cfg.UDPIdleTimeout
	buf := make([]byte, maxDatagram)
	for {
		f.up.SetReadDeadline(time.Unix(0, f.last.Load()).Add(idle))
		n, err := f.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, f.last.Load())) < idle {
				continue // a client datagram came meanwhile
			}
			break
		}
		f.last.Store(time.Now().UnixNano())
		if _, err := pc.WriteToUDPAddrPort(buf[:n], f.client); err != nil {
			s.p.log.Debug("balancer: udp answer", "service", s.fe.String(), "client", f.client.String(), "err", err)
			continue
		}
		s.bytesOut.Add(int64(n))
		f.b.bytesOut.Add(int64(n))
	}
	s.forgetFlow(f)
	f.close()
	s.release(f.b, f)
	s.active.Add(-1)
}

// forgetFlow removes f from the flow table, if it is still there, so the
// client's next datagram makes a new flow.
func (s *service) forgetFlow(f *udpFlow) {
	s.mu.Lock()
	if s.flows[f.client] == f {
		delete(s.flows, f.client)
	}
	s.mu.Unlock()
}
