//go:build linux

package balancer

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// blackhole returns a loopback address whose connects hang: a socket
// listening with a backlog of 0 that never accepts, its queue filled, so
// Linux drops further SYNs and a connect waits until its timeout.
func blackhole(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue until a connect hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatalf("filling %s's queue: %v, want a connect timeout", addr, err)
			}
			break
		}
		t.Cleanup(func() { c.Close() })
		if i == 16 {
			t.Fatalf("%s still accepts connections after %d", addr, i)
		}
	}
	return addr
}

func TestConnectTimeoutIsRetriedOnAnotherBackend(t *testing.T) {
	// Long enough that a connect to the live backend never times out on
	// a loaded machine; each connection the rotation sends to the hole
	// first waits it out.
	p := newProxy(t, Config{ConnectTimeout: 500 * time.Millisecond})
	fe := freeFrontend(t, TCP)
	live := startBackend(t, "live")
	hole := Backend{Addr: blackhole(t), Healthy: true}
	addService(t, p, fe, Options{}, hole, live.backend())

	if got := spread(t, fe, 4); got["live"] != 4 {
		t.Fatalf("4 connections went %v, want all to live", got)
	}
	// Round robin goes on after the backend that answered: the hole was
	// the first choice of every other connection, not of all four.
	s := statsOf(t, p, fe)
	if h, _ := backendStats(s, hole.Addr); h.ConnectFailures != 2 || h.Total != 0 || s.Failed != 0 {
		t.Fatalf("stats %+v: want 2 connect timeouts on the unanswering backend, no connection on it, no failed client", s)
	}
}
