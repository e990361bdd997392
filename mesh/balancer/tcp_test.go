package balancer

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	addService(t, p, fe, Options{}, a.backend(), b.backend(), c.backend())

	got := spread(t, fe, 30)
	if want := map[string]int{"a": 10, "b": 10, "c": 10}; !maps.Equal(got, want) {
		t.Fatalf("30 connections went %v, want %v", got, want)
	}
	s := statsOf(t, p, fe)
	if s.Total != 30 || len(s.Backends) != 3 || s.Backends[0].Total != 10 {
		t.Fatalf("stats %+v, want 30 in total, 10 on each of 3 backends", s)
	}
}

func TestLeastConnectionsPrefersTheLeastLoaded(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	a, b := startBackend(t, "a"), startBackend(t, "b")
	addService(t, p, fe, Options{Scheduler: LeastConnections}, a.backend(), b.backend())

	// One connection held open: every later one, made while it is the
	// only one, goes to the other backend.
	held := dialGreeted(t, fe)
	defer held.conn.Close()
	other := map[string]string{"a": "b", "b": "a"}[held.name]
	for i := range 10 {
		g := dialGreeted(t, fe)
		if g.name != other {
			t.Fatalf("connection %d went to %s, which holds one open; want %s", i, g.name, other)
		}
		g.conn.Close()
		testutil.Eventually(t, waitFor, "the short connection released", func() bool {
			return statsOf(t, p, fe).Active == 1
		})
	}
	// With nothing open, ties alternate.
	held.conn.Close()
	waitIdle(t, p, fe)
	got := map[string]int{}
	for range 10 {
		g := dialGreeted(t, fe)
		got[g.name]++
		g.conn.Close()
		waitIdle(t, p, fe)
	}
	if got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("10 connections to two idle backends went %v, want 5 each", got)
	}
}

func TestUnhealthyBackendsGetNoConnections(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	sick := b.backend()
	sick.Healthy = false
	addService(t, p, fe, Options{}, a.backend(), sick, c.backend())

	if got, want := spread(t, fe, 20), map[string]int{"a": 10, "c": 10}; !maps.Equal(got, want) {
		t.Fatalf("20 connections went %v, want %v (b is unhealthy)", got, want)
	}
	for _, sched := range []Scheduler{RoundRobin, LeastConnections} {
		if err := p.UpsertService(Service{Frontend: fe, Options: Options{Scheduler: sched}}); err != nil {
			t.Fatal(err)
		}
		if got := spread(t, fe, 6); got["b"] != 0 {
			t.Fatalf("%s: unhealthy b got %d connections", sched, got["b"])
		}
	}
}

func TestNoHealthyBackendClosesTheClient(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	a := startBackend(t, "a")
	sick := a.backend()
	sick.Healthy = false
	addService(t, p, fe, Options{}, sick)

	refusedAfterAccept(t, dial(t, fe), "no healthy backend")
	testutil.Eventually(t, waitFor, "the connection counted as failed", func() bool {
		return statsOf(t, p, fe).Failed == 1
	})
}

func TestConnectFailureIsRetriedOnAnotherBackend(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	live := startBackend(t, "live")
	dead1 := Backend{Addr: refusedAddr(t), Healthy: true}
	dead2 := Backend{Addr: refusedAddr(t), Healthy: true}
	addService(t, p, fe, Options{}, dead1, live.backend(), dead2)

	// Round robin starts on each backend in turn: every client is served
	// by the live one, whichever was tried first.
	if got := spread(t, fe, 9); got["live"] != 9 {
		t.Fatalf("9 connections went %v, want all to live", got)
	}
	s := statsOf(t, p, fe)
	d1, _ := backendStats(s, dead1.Addr)
	d2, _ := backendStats(s, dead2.Addr)
	if d1.ConnectFailures == 0 || d2.ConnectFailures == 0 || s.Failed != 0 {
		t.Fatalf("stats %+v: want connect failures on both dead backends and no failed client", s)
	}
}

func TestDrainOnRemoval(t *testing.T) {
	p, fe, a, old := oneOpenConnection(t, Config{DrainTimeout: time.Hour})
	b := startBackend(t, "b")

	if err := p.SetBackends(fe, []Backend{b.backend()}); err != nil {
		t.Fatal(err)
	}
	old.echo(t, "still here")
	if got := spread(t, fe, 4); got["b"] != 4 {
		t.Fatalf("after a left, 4 new connections went %v, want all to b", got)
	}
	st, ok := backendStats(statsOf(t, p, fe), a.backend().Addr)
	if !ok || !st.Draining || st.Active != 1 {
		t.Fatalf("a's stats %+v (listed %v), want draining with its one connection", st, ok)
	}
	old.echo(t, "and still")
	old.conn.Close()
	testutil.Eventually(t, waitFor, "a gone from the stats once its connection ended", func() bool {
		_, ok := backendStats(statsOf(t, p, fe), a.backend().Addr)
		return !ok
	})
}

func TestDrainTimeoutClosesConnections(t *testing.T) {
	for _, how := range []string{"removed", "unhealthy"} {
		t.Run(how, func(t *testing.T) {
			p := newProxy(t, Config{DrainTimeout: 50 * time.Millisecond})
			fe := freeFrontend(t, TCP)
			a, b := startBackend(t, "a"), startBackend(t, "b")
			addService(t, p, fe, Options{}, a.backend())
			old := dialGreeted(t, fe)
			defer old.conn.Close()

			next := []Backend{b.backend()}
			if how == "unhealthy" {
				sick := a.backend()
				sick.Healthy = false
				next = append(next, sick)
			}
			if err := p.SetBackends(fe, next); err != nil {
				t.Fatal(err)
			}
			old.closedByPeer(t)
			if g := dialGreeted(t, fe); g.name != "b" {
				t.Fatalf("new connection went to %s, want b", g.name)
			} else {
				g.conn.Close()
			}
		})
	}
}

func TestBackendBackBeforeItsDrainEndsKeepsItsConnections(t *testing.T) {
	p, fe, a, old := oneOpenConnection(t, Config{DrainTimeout: time.Hour})
	sick := a.backend()
	sick.Healthy = false
	drainTimer := func() *time.Timer {
		p.mu.Lock()
		s := p.services[fe]
		p.mu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.byAddr[sick.Addr].drainTimer
	}
	if err := p.SetBackends(fe, []Backend{sick}); err != nil {
		t.Fatal(err)
	}
	if drainTimer() == nil {
		t.Fatal("no drain timer on a backend that turned unhealthy with a connection open")
	}
	if err := p.SetBackends(fe, []Backend{a.backend()}); err != nil {
		t.Fatal(err)
	}
	if drainTimer() != nil {
		t.Fatal("the drain timer still runs on a backend healthy again")
	}
	old.echo(t, "kept")
	// And should a timer fire anyway (it was due as the backend came
	// back), it leaves an eligible backend's connections alone.
	p.mu.Lock()
	s := p.services[fe]
	p.mu.Unlock()
	s.mu.Lock()
	b := s.byAddr[sick.Addr]
	s.mu.Unlock()
	s.expire(b)
	old.echo(t, "still kept")
}

func TestRemoveServiceDrains(t *testing.T) {
	p, fe, a, old := oneOpenConnection(t, Config{DrainTimeout: time.Hour})

	if err := p.RemoveService(fe); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", fe.Addr.String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after removal: %v, want connection refused", err)
	}
	old.echo(t, "draining")
	if err := p.SetBackends(fe, nil); !errors.Is(err, ErrUnknownService) {
		t.Fatalf("SetBackends on a removed service: %v, want ErrUnknownService", err)
	}

	// The same frontend can come back at once, beside the draining one.
	addService(t, p, fe, Options{}, a.backend())
	g := dialGreeted(t, fe)
	g.conn.Close()
	old.echo(t, "still draining")
}

func TestRemoveServiceDrainTimeoutClosesConnections(t *testing.T) {
	p, fe, _, old := oneOpenConnection(t, Config{DrainTimeout: 50 * time.Millisecond})
	if err := p.RemoveService(fe); err != nil {
		t.Fatal(err)
	}
	old.closedByPeer(t)
}

// A client that half-closes still gets the whole answer, and the backend
// sees the EOF. The payload is several copy chunks of random bytes, so both
// ways of copying (buffered messages, spliced streams) carry it, in order.
func TestHalfCloseIsForwarded(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	a := startBackendWith(t, "a", "127.0.0.1:0", func(c net.Conn) {
		h := sha256.New()
		n, _ := io.Copy(h, c) // until the client's EOF
		fmt.Fprintf(c, "read %d bytes, sha256 %x", n, h.Sum(nil))
	})
	addService(t, p, fe, Options{}, a.backend())

	c := dial(t, fe)
	payload := make([]byte, 3*copyChunk+12345)
	rand.Read(payload)
	// In pieces of every size, small messages and large writes.
	for rest, size := payload, 1; len(rest) > 0; size *= 3 {
		k := min(size, len(rest))
		if _, err := c.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("read %d bytes, sha256 %x", len(payload), sha256.Sum256(payload)); string(got) != want {
		t.Fatalf("answer %q, want %q", got, want)
	}
	testutil.Eventually(t, waitFor, "bytes counted", func() bool {
		s := statsOf(t, p, fe)
		return s.BytesIn == int64(len(payload)) && s.BytesOut == int64(len(got))
	})
}

func TestMaxConnectionsRefusesBeyondTheCap(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	a := startBackend(t, "a")
	addService(t, p, fe, Options{MaxConnections: 1}, a.backend())
	held := dialGreeted(t, fe)
	defer held.conn.Close()

	refusedAfterAccept(t, dial(t, fe), "over the cap of 1")
	if s := statsOf(t, p, fe); s.Refused != 1 {
		t.Fatalf("refused %d, want 1", s.Refused)
	}
	held.echo(t, "first still served")
}

func TestLocalPolicyPrefersLocalBackends(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	local := b.backend()
	local.Local = true
	addService(t, p, fe, Options{TrafficPolicy: TrafficLocal}, a.backend(), local, c.backend())
	if got := spread(t, fe, 6); got["b"] != 6 {
		t.Fatalf("6 connections went %v, want all to the local b", got)
	}
	// No healthy local backend: fall back to the others.
	local.Healthy = false
	if err := p.SetBackends(fe, []Backend{a.backend(), local, c.backend()}); err != nil {
		t.Fatal(err)
	}
	if got, want := spread(t, fe, 6), map[string]int{"a": 3, "c": 3}; !maps.Equal(got, want) {
		t.Fatalf("with the local backend unhealthy, 6 connections went %v, want %v", got, want)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	p := newProxy(t, Config{DrainTimeout: time.Hour})
	fe, gone := freeFrontend(t, TCP), freeFrontend(t, TCP)
	a := startBackend(t, "a")
	addService(t, p, fe, Options{}, a.backend())
	addService(t, p, gone, Options{}, a.backend())
	open := dialGreeted(t, fe)
	defer open.conn.Close()
	draining := dialGreeted(t, gone)
	defer draining.conn.Close()
	if err := p.RemoveService(gone); err != nil {
		t.Fatal(err)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	open.closedByPeer(t)
	draining.closedByPeer(t)
	for name, err := range map[string]error{
		"UpsertService": p.UpsertService(Service{Frontend: fe}),
		"SetBackends":   p.SetBackends(fe, nil),
		"RemoveService": p.RemoveService(fe),
		"Close":         p.Close(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
