package balancer

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// startUDPBackend answers every datagram with "<name>:<datagram>".
func startUDPBackend(t testing.TB, name string) Backend {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name+":"+string(buf[:n])), from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return Backend{Addr: netip.MustParseAddrPort(pc.LocalAddr().String()), NodeID: "node-" + name, Healthy: true}
}

// udpClient is a client socket of its own, hence a flow of its own.
func udpClient(t testing.TB, fe Frontend) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(fe.Addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ask sends msg and waits for its answer (skipping late answers to earlier
// ones), sending again now and then: a datagram may be lost, even on
// loopback, when the machine is loaded.
func ask(t testing.TB, c *net.UDPConn, msg string) string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	buf := make([]byte, maxDatagram)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			if got := string(buf[:n]); strings.HasSuffix(got, ":"+msg) {
				return got
			}
			continue // a late answer to an earlier datagram
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Fatalf("reading the answer to %q: %v", msg, err)
		}
	}
	t.Fatalf("no answer to %q within %v", msg, waitFor)
	return ""
}

func TestUDPRoundTripAndFlows(t *testing.T) {
	p := newProxy(t, Config{UDPIdleTimeout: time.Hour})
	fe := freeFrontend(t, UDP)
	addService(t, p, fe, Options{}, startUDPBackend(t, "a"), startUDPBackend(t, "b"))

	c1, c2 := udpClient(t, fe), udpClient(t, fe)
	first := ask(t, c1, "hello")
	name, _, _ := strings.Cut(first, ":")
	// A flow sticks to its backend; the next client's flow goes to the
	// other one (round robin).
	if got := ask(t, c1, "again"); got != name+":again" {
		t.Fatalf("second datagram of the flow answered %q, want %s:again", got, name)
	}
	other := map[string]string{"a": "b", "b": "a"}[name]
	if got := ask(t, c2, "hi"); got != other+":hi" {
		t.Fatalf("second client answered %q, want %s:hi", got, other)
	}
	// The counters advance just after a datagram is forwarded.
	testutil.EventuallyWhy(t, waitFor, "2 flows and the bytes sent counted", func() (bool, string) {
		s := statsOf(t, p, fe)
		return s.Total == 2 && s.Active == 2 && s.BytesIn >= int64(len("helloagainhi")), fmt.Sprintf("%+v", s)
	})
}

func TestUDPFlowExpiresWhenIdle(t *testing.T) {
	p := newProxy(t, Config{UDPIdleTimeout: 50 * time.Millisecond})
	fe := freeFrontend(t, UDP)
	addService(t, p, fe, Options{}, startUDPBackend(t, "a"))
	c := udpClient(t, fe)
	ask(t, c, "hello")
	testutil.Eventually(t, waitFor, "the flow expired after the idle timeout", func() bool {
		return statsOf(t, p, fe).Active == 0
	})
	// A datagram after expiry starts a new flow.
	if got := ask(t, c, "back"); got != "a:back" {
		t.Fatalf("after expiry answered %q, want a:back", got)
	}
	if s := statsOf(t, p, fe); s.Total < 2 {
		t.Fatalf("total flows %d, want at least 2 (a new flow after expiry)", s.Total)
	}
}

func TestUDPFlowsAreBounded(t *testing.T) {
	p := newProxy(t, Config{UDPIdleTimeout: time.Hour})
	fe := freeFrontend(t, UDP)
	addService(t, p, fe, Options{MaxConnections: 1}, startUDPBackend(t, "a"))

	c1, c2 := udpClient(t, fe), udpClient(t, fe)
	ask(t, c1, "one")
	if _, err := c2.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "the second flow refused", func() bool {
		return statsOf(t, p, fe).Refused >= 1
	})
	if s := statsOf(t, p, fe); s.Active != 1 {
		t.Fatalf("%d flows open, want 1 (the cap)", s.Active)
	}
	ask(t, c1, "first flow still served")
}

func TestUDPFlowOfARemovedBackendDrains(t *testing.T) {
	p := newProxy(t, Config{UDPIdleTimeout: time.Hour, DrainTimeout: 50 * time.Millisecond})
	fe := freeFrontend(t, UDP)
	a, b := startUDPBackend(t, "a"), startUDPBackend(t, "b")
	addService(t, p, fe, Options{}, a)
	c := udpClient(t, fe)
	if got := ask(t, c, "x"); got != "a:x" {
		t.Fatalf("answered %q, want a:x", got)
	}
	if err := p.SetBackends(fe, []Backend{b}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, "the flow to a closed at the drain timeout", func() bool {
		_, ok := backendStats(statsOf(t, p, fe), a.Addr)
		return !ok
	})
	if got := ask(t, c, "y"); got != "b:y" {
		t.Fatalf("after the drain answered %q, want b:y", got)
	}
}
