package balancer

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiary-io/apiary/mesh/balancer/proxyproto"
)

// Accept errors other than a closed listener (EMFILE, ENFILE, ENOBUFS) are
// retried after a pause that doubles from acceptBackoffMin to
// acceptBackoffMax, so a process out of descriptors does not spin.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// serveTCP accepts connections until the listener is closed.
func (s *service) serveTCP(ln *net.TCPListener) {
	defer s.p.wg.Done()
	backoff := acceptBackoffMin
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.p.log.Warn("balancer: accept failed", "service", s.fe.String(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, acceptBackoffMax)
			continue
		}
		backoff = acceptBackoffMin
		s.p.wg.Add(1)
		go s.handleTCP(c)
	}
}

// tcpConn is one proxied connection: the client's socket and the
// backend's.
type tcpConn struct {
	client, upstream *net.TCPConn
}

func (c *tcpConn) close() {
	c.client.Close()
	c.upstream.Close()
}

// handleTCP connects client to a backend, retrying others when a connect
// fails, then copies both ways until both are done.
func (s *service) handleTCP(client *net.TCPConn) {
	defer s.p.wg.Done()
	if !s.admit() {
		client.Close()
		return
	}
	defer s.active.Add(-1)
	b, up := s.connect(client)
	if b == nil {
		s.failed.Add(1)
		client.Close()
		return
	}
	c := &tcpConn{client: client, upstream: up}
	if !s.register(b, c) {
		c.close()
		s.release(b, nil)
		return
	}
	s.pipe(c, b)
	c.close()
	s.release(b, c)
}

// connect dials eligible backends in the scheduler's order until one
// accepts, at most MaxConnectAttempts, and writes the PROXY header if the
// service asks for one. It returns a nil backend when none accepted.
func (s *service) connect(client *net.TCPConn) (*backend, *net.TCPConn) {
	var tried []*backend
	for range MaxConnectAttempts {
		b, proxyV2 := s.acquire(tried)
		if b == nil {
			break
		}
		up, err := s.dial(b, client, proxyV2)
		if err == nil {
			return b, up
		}
		b.connectFailures.Add(1)
		s.release(b, nil)
		if s.p.ctx.Err() != nil {
			break // closing
		}
		s.p.log.Debug("balancer: connect failed, trying another backend",
			"service", s.fe.String(), "backend", b.Addr.String(), "err", err)
		tried = append(tried, b)
	}
	s.p.log.Debug("balancer: no backend accepted the connection", "service", s.fe.String(),
		"client", client.RemoteAddr().String(), "tried", len(tried))
	return nil, nil
}

func (s *service) dial(b *backend, client *net.TCPConn, proxyV2 bool) (*net.TCPConn, error) {
	c, err := s.p.dialer.DialContext(s.p.ctx, "tcp", b.Addr.String())
	if err != nil {
		return nil, err
	}
	up := c.(*net.TCPConn)
	if proxyV2 {
		src := client.RemoteAddr().(*net.TCPAddr).AddrPort()
		dst := client.LocalAddr().(*net.TCPAddr).AddrPort()
		hdr, err := proxyproto.Append(make([]byte, 0, 64), proxyproto.Stream, src, dst)
		if err == nil {
			_, err = up.Write(hdr)
		}
		if err != nil {
			up.Close()
			return nil, err
		}
	}
	return up, nil
}

// pipe copies both directions until both have ended. A direction that ends
// cleanly (EOF) half-closes the other side (CloseWrite), so a client that
// shuts down its sending side still gets the whole answer; a direction that
// fails (reset, drain timeout, Close) ends both.
func (s *service) pipe(c *tcpConn, b *backend) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.copyHalf(c, c.upstream, c.client, &s.bytesIn, &b.bytesIn)
	}()
	s.copyHalf(c, c.client, c.upstream, &s.bytesOut, &b.bytesOut)
	wg.Wait()
}

func (s *service) copyHalf(c *tcpConn, dst, src *net.TCPConn, counters ...*atomic.Int64) {
	if err := copyTCP(dst, src, counters...); err != nil {
		c.close()
		return
	}
	if err := dst.CloseWrite(); err != nil {
		c.close()
	}
}
