package pki

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

func TestRenewalTime(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(100 * time.Hour)
	for _, c := range []struct {
		jitter float64
		want   time.Duration
	}{{0, 50 * time.Hour}, {0.5, 65 * time.Hour}, {0.999999, 80 * time.Hour}} {
		got := RenewalTime(nb, na, c.jitter).Sub(nb)
		if d := got - c.want; d < -time.Second || d > time.Second {
			t.Errorf("jitter %v: renew after %v, want %v", c.jitter, got, c.want)
		}
	}
}

// fakeClock fires After channels only when advanced.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	added   chan time.Time // deadline of each new waiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, added: make(chan time.Time, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := c.now.Add(d)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, fakeWaiter{at, ch})
	}
	c.added <- at
	return ch
}

func (c *fakeClock) Set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(now) {
			w.ch <- now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func TestRenewerSchedulesInSecondHalfWithFakeClock(t *testing.T) {
	_, ca := newTestCA(t, 10*time.Hour)
	node := newTestNode(t, ca, RoleWorker)
	clock := newFakeClock(time.Now())
	renewed := make(chan Identity, 16)
	r := NewRenewer(node, ca.LocalIssuer(node), RenewerOptions{
		Clock: clock, Jitter: func() float64 { return 0.5 }, Logger: testutil.DiscardLogger(),
		OnRenew: func(id Identity) {
			select {
			case renewed <- id:
			default:
				t.Error("renewing in a loop")
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	first := node.Leaf()
	want := RenewalTime(first.NotBefore, first.NotAfter, 0.5) // 65% of life
	if at := <-clock.added; !at.Equal(want) {
		t.Fatalf("renewal scheduled at %v, want %v", at, want)
	}
	clock.Set(want.Add(-time.Second))
	select {
	case <-renewed:
		t.Fatal("renewed before its time")
	case <-time.After(100 * time.Millisecond):
	}
	clock.Set(want)
	var id Identity
	select {
	case id = <-renewed:
	case <-time.After(10 * time.Second):
		t.Fatal("no renewal at its time")
	}
	if id.Serial == first.SerialNumber.Text(16) || id.NodeID != node.Identity().NodeID {
		t.Fatalf("renewal: %+v", id)
	}
	// The next renewal is scheduled; even if the new certificate's renewal
	// time has come on this frozen clock (same second as the first), the
	// renewer waits at least RetryMin instead of renewing in a loop.
	next := <-clock.added
	if want2 := RenewalTime(node.Leaf().NotBefore, node.Leaf().NotAfter, 0.5); next.Before(want2) && next.Before(want.Add(time.Second)) {
		t.Fatalf("next renewal at %v, want max(%v, now+1s)", next, want2)
	}
	// RenewNow renews at once (root rotation, role change).
	r.RenewNow()
	select {
	case <-renewed:
	case <-time.After(10 * time.Second):
		t.Fatal("RenewNow did not renew")
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
}

// TestAutomaticRenewalKeepsConnections runs real renewers with certificates
// that live three seconds: a worker renewing over its gRPC connection to a
// manager, and the manager renewing through its own CA. The connection
// opened before the first renewal keeps serving calls, even after the
// certificate it was opened with has expired; new connections use the new
// certificates.
func TestAutomaticRenewalKeepsConnections(t *testing.T) {
	t.Parallel()
	st, ca := newTestCA(t, 3*time.Second)
	mgr := newTestNode(t, ca, RoleManager)
	wrk := newTestNode(t, ca, RoleWorker)
	srv := startServer(t, mgr, ca, st)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	conn := dial(t, wrk, srv.addr)
	first, err := callEcho(ctx, conn, methodAny)
	if err != nil {
		t.Fatal(err)
	}
	origWorker, origManager := wrk.Leaf(), mgr.Leaf()

	wRenewed, mRenewed := make(chan Identity, 16), make(chan Identity, 16)
	opts := func(ch chan Identity) RenewerOptions {
		return RenewerOptions{RetryMin: 100 * time.Millisecond, Logger: testutil.DiscardLogger(), OnRenew: func(id Identity) { ch <- id }}
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = NewRenewer(wrk, NewCAClient(conn), opts(wRenewed)).Run(rctx) }()
	go func() { defer wg.Done(); _ = NewRenewer(mgr, ca.LocalIssuer(mgr), opts(mRenewed)).Run(rctx) }()
	defer func() { stop(); wg.Wait() }()

	workerRenewals, managerRenewals := 0, 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for workerRenewals < 2 || managerRenewals < 1 || !time.Now().After(origWorker.NotAfter.Add(500*time.Millisecond)) {
		select {
		case <-wRenewed:
			workerRenewals++
		case <-mRenewed:
			managerRenewals++
		case <-tick.C:
			r, err := callEcho(ctx, conn, methodAny)
			if err != nil {
				t.Fatalf("open connection failed during renewals: %v", err)
			}
			if r.Peer != first.Peer || r.Serial != first.Serial {
				t.Fatalf("connection was re-established: %+v, first %+v", r, first)
			}
		case <-ctx.Done():
			t.Fatalf("timed out: %d worker and %d manager renewals", workerRenewals, managerRenewals)
		}
	}
	if wrk.Leaf().SerialNumber.Cmp(origWorker.SerialNumber) == 0 || mgr.Leaf().SerialNumber.Cmp(origManager.SerialNumber) == 0 {
		t.Fatal("certificates were not replaced")
	}
	if !time.Now().After(origWorker.NotAfter) || !time.Now().After(origManager.NotAfter) {
		t.Fatal("test should run past the original certificates' expiry")
	}
	// The original connection still works, on its original handshake.
	r, err := callEcho(ctx, conn, methodAny)
	if err != nil || r.Peer != first.Peer || r.Serial != first.Serial {
		t.Fatalf("open connection after expiry of its certificates: %+v %v", r, err)
	}
	// A new connection presents the current certificate.
	r2, err := callEcho(ctx, dial(t, wrk, srv.addr), methodAny)
	if err != nil || r2.Serial != wrk.Identity().Serial || r2.Peer == first.Peer {
		t.Fatalf("new connection: %+v %v (current serial %s)", r2, err, wrk.Identity().Serial)
	}
	t.Logf("%d worker and %d manager renewals; original connection %s kept", workerRenewals, managerRenewals, first.Peer)
}
