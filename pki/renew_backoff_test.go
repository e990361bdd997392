package pki

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// nextNear returns the deadline of the next wait the renewer starts that
// ends within the hour, skipping its scheduled renewal (hours away).
func nextNear(t *testing.T, clock *fakeClock) time.Time {
	t.Helper()
	for {
		select {
		case at := <-clock.added:
			if at.Sub(clock.Now()) < time.Hour {
				return at
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the renewer started no short wait")
		}
	}
}

// A caller that asks for a renewal again as soon as one completes (a node
// waiting for a role the CA will not issue yet) gets renewals spaced 1 s,
// 2 s, 4 s... up to a minute apart, not a hot loop of writes to the CA; a
// renewal that brings something new (the role) resets the spacing.
func TestRenewerBacksOffRenewalsThatBringNothingNew(t *testing.T) {
	st, ca := newTestCA(t, 10*time.Hour)
	node := newTestNode(t, ca, RoleWorker)
	clock := newFakeClock(time.Now())
	renewed := make(chan Identity, 1)
	var r *Renewer
	r = NewRenewer(node, ca.LocalIssuer(node), RenewerOptions{
		Clock: clock, Jitter: func() float64 { return 0.5 }, Logger: testutil.DiscardLogger(),
		RetryMin: time.Second, RetryMax: time.Minute,
		OnRenew: func(id Identity) {
			renewed <- id
			r.RenewNow()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	wait := func() Identity {
		t.Helper()
		select {
		case id := <-renewed:
			return id
		case <-time.After(10 * time.Second):
			t.Fatal("no renewal")
			return Identity{}
		}
	}

	r.RenewNow()
	wait() // asked for after a quiet time: at once
	last := clock.Now()
	for _, gap := range []time.Duration{1, 2, 4, 8, 16, 32, 60, 60} {
		gap *= time.Second
		at := nextNear(t, clock)
		if got := at.Sub(last); got != gap {
			t.Fatalf("next renewal asked for %v after the last, want %v", got, gap)
		}
		clock.Set(at)
		wait()
		last = at
	}

	// The CA now wants the node to be a manager: the next renewal brings
	// the new role, and the one asked for after it goes at once.
	st.SetRole(node.Identity().NodeID, RoleManager)
	clock.Set(nextNear(t, clock))
	if id := wait(); id.Role != RoleManager {
		t.Fatalf("renewed as %s, want %s", id.Role, RoleManager)
	}
	if id := wait(); id.Role != RoleManager {
		t.Fatalf("renewed as %s", id.Role)
	}
	// And that one brought nothing new: the spacing starts again.
	last = clock.Now()
	if at := nextNear(t, clock); at.Sub(last) != time.Second {
		t.Fatalf("after an unproductive renewal the next waits %v, want 1s", at.Sub(last))
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

// failingIssuer refuses every request, counting them; each request also
// asks for a renewal again (a heartbeat's, arriving meanwhile).
type failingIssuer struct {
	calls atomic.Int32
	kick  func()
}

func (f *failingIssuer) IssueNodeCertificate(context.Context, *IssueRequest) (*IssueResponse, error) {
	f.calls.Add(1)
	f.kick()
	return nil, errors.New("test: CA unreachable")
}

// Failed renewals are retried after 1 s, 2 s, 4 s...: asking for a renewal
// meanwhile does not cut the backoff short (the retry is that renewal).
func TestRenewerRetriesBackOffThroughRenewNow(t *testing.T) {
	_, ca := newTestCA(t, 10*time.Hour)
	node := newTestNode(t, ca, RoleWorker)
	clock := newFakeClock(time.Now())
	iss := &failingIssuer{}
	var r *Renewer
	iss.kick = func() { r.RenewNow() }
	r = NewRenewer(node, iss, RenewerOptions{
		Clock: clock, Jitter: func() float64 { return 0.5 }, Logger: testutil.DiscardLogger(),
		RetryMin: time.Second, RetryMax: time.Minute,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	r.RenewNow()
	last := clock.Now()
	for i, backoff := range []time.Duration{1, 2, 4, 8, 16, 32, 60, 60} {
		backoff *= time.Second
		at := nextNear(t, clock)
		if got := at.Sub(last); got != backoff {
			t.Fatalf("retry %d after %v, want %v", i+1, got, backoff)
		}
		if got := iss.calls.Load(); got != int32(i+1) {
			t.Fatalf("%d attempts before retry %d, want %d", got, i+1, i+1)
		}
		// A renewal was asked for during the attempt: the backoff stands
		// (were it cut short, the next attempt would run at once and its
		// wait start from the clock not yet moved).
		clock.Set(at)
		last = at
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}
