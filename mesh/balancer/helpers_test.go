package balancer

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// waitFor bounds every wait of these tests: generous, because the machine is
// shared and the tests run under -race; a passing test never waits it out.
const waitFor = 20 * time.Second

func newProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	cfg.Logger = testutil.DiscardLogger()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// freeFrontend returns a frontend on 127.0.0.1 at a port the system just
// handed out and took back.
func freeFrontend(t testing.TB, proto Protocol) Frontend {
	t.Helper()
	return Frontend{Addr: freeAddr(t, "127.0.0.1", proto), Protocol: proto}
}

func freeAddr(t testing.TB, host string, proto Protocol) netip.AddrPort {
	t.Helper()
	var addr net.Addr
	if proto == UDP {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr()
		pc.Close()
	} else {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr()
		ln.Close()
	}
	return netip.MustParseAddrPort(addr.String())
}

// refusedAddr is a loopback address and port nothing listens on.
func refusedAddr(t testing.TB) netip.AddrPort { return freeAddr(t, "127.0.0.1", TCP) }

func addService(t testing.TB, b Balancer, fe Frontend, o Options, backends ...Backend) {
	t.Helper()
	if err := b.UpsertService(Service{Frontend: fe, Options: o}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetBackends(fe, backends); err != nil {
		t.Fatal(err)
	}
}

// testBackend is a TCP server that greets each connection with its name
// and a newline, then echoes until the client half-closes, then closes.
type testBackend struct {
	name string
	ln   net.Listener
	// handle replaces the greeting and echo when set.
	handle func(c net.Conn)
	wg     sync.WaitGroup
}

func startBackend(t testing.TB, name string) *testBackend {
	t.Helper()
	return startBackendWith(t, name, "127.0.0.1:0", nil)
}

func startBackendWith(t testing.TB, name, addr string, handle func(net.Conn)) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBackend{name: name, ln: ln, handle: handle}
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	tb.wg.Add(1)
	go func() {
		defer tb.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			tb.wg.Add(1)
			go func() {
				defer tb.wg.Done()
				defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }()
				if tb.handle != nil {
					tb.handle(c)
					return
				}
				io.WriteString(c, tb.name+"\n")
				// Plain reads and writes: io.Copy(c, c) would splice
				// and hold a pipe, which TestIdleConnectionsHoldNoPipe
				// would count as the balancer's.
				io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 4096))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		tb.wg.Wait()
	})
	return tb
}

func (tb *testBackend) backend() Backend {
	return Backend{Addr: netip.MustParseAddrPort(tb.ln.Addr().String()), NodeID: "node-" + tb.name, Healthy: true}
}

// greeted is a client connection through the balancer and the name of the
// backend that greeted it.
type greeted struct {
	conn net.Conn
	r    *bufio.Reader
	name string
}

// dialGreeted connects to fe and reads the backend's greeting.
func dialGreeted(t testing.TB, fe Frontend) *greeted {
	t.Helper()
	c, err := net.DialTimeout("tcp", fe.Addr.String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(waitFor))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		t.Fatalf("reading the greeting through %s: %v", fe, err)
	}
	return &greeted{conn: c, r: r, name: strings.TrimSuffix(line, "\n")}
}

// echo checks the connection still carries bytes both ways.
func (g *greeted) echo(t testing.TB, msg string) {
	t.Helper()
	if _, err := io.WriteString(g.conn, msg+"\n"); err != nil {
		t.Fatalf("writing to %s's connection: %v", g.name, err)
	}
	line, err := g.r.ReadString('\n')
	if err != nil || line != msg+"\n" {
		t.Fatalf("echo from %s: %q, %v; want %q", g.name, line, err, msg)
	}
}

// closedByPeer waits until the connection is closed from the other side.
func (g *greeted) closedByPeer(t testing.TB) {
	t.Helper()
	g.conn.SetReadDeadline(time.Now().Add(waitFor))
	_, err := g.r.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection to %s still open after %v", g.name, waitFor)
	}
	if err == nil {
		t.Fatalf("connection to %s carried a byte, want it closed", g.name)
	}
}

// spread opens n connections one after the other (each closed before the
// next) and counts them by the backend that answered.
func spread(t testing.TB, fe Frontend, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		g := dialGreeted(t, fe)
		got[g.name]++
		g.conn.Close()
	}
	return got
}

// statsOf returns the stats of fe and of its backend at addr.
func statsOf(t testing.TB, b Balancer, fe Frontend) ServiceStats {
	t.Helper()
	for _, s := range b.Stats() {
		if s.Frontend == fe {
			return s
		}
	}
	t.Fatalf("no stats for %s", fe)
	return ServiceStats{}
}

func backendStats(s ServiceStats, addr netip.AddrPort) (BackendStats, bool) {
	for _, b := range s.Backends {
		if b.Addr == addr {
			return b, true
		}
	}
	return BackendStats{}, false
}

// waitIdle waits until fe has no open connection, so the next one is
// chosen with every earlier one released.
func waitIdle(t testing.TB, b Balancer, fe Frontend) {
	t.Helper()
	testutil.Eventually(t, waitFor, "no open connection on "+fe.String(), func() bool {
		return statsOf(t, b, fe).Active == 0
	})
}

func addrPortOf(t testing.TB, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// dial connects to fe with every deadline at waitFor; the test's cleanup
// closes the connection.
func dial(t testing.TB, fe Frontend) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", fe.Addr.String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitFor))
	return c
}

// refusedAfterAccept checks that the balancer closed c without a byte:
// what a client sees when its connection cannot be forwarded.
func refusedAfterAccept(t testing.TB, c net.Conn, why string) {
	t.Helper()
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes, want the connection closed (%s)", n, why)
	}
}

// oneOpenConnection starts a proxy with one TCP service whose one backend,
// "a", carries one open connection: the start of every drain test.
func oneOpenConnection(t testing.TB, cfg Config) (*Proxy, Frontend, *testBackend, *greeted) {
	t.Helper()
	p := newProxy(t, cfg)
	fe := freeFrontend(t, TCP)
	a := startBackend(t, "a")
	addService(t, p, fe, Options{}, a.backend())
	g := dialGreeted(t, fe)
	t.Cleanup(func() { g.conn.Close() })
	return p, fe, a, g
}
