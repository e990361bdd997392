package pki

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/apiary-io/apiary/internal/backoff"
)

// Clock is the time source of a Renewer; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RenewalTime is when a certificate valid from notBefore to notAfter is
// renewed: at a random point between 50% and 80% of its life (jitter in
// [0,1) picks the point). Randomness spreads the renewals of nodes that
// joined together, so the CA never sees a thundering herd; the second half
// leaves the certificate long in use; stopping at 80% leaves the last fifth
// for retries while a CA is unreachable.
func RenewalTime(notBefore, notAfter time.Time, jitter float64) time.Time {
	life := notAfter.Sub(notBefore)
	return notBefore.Add(time.Duration(float64(life) * (0.5 + 0.3*jitter)))
}

// RenewerOptions tune a Renewer.
type RenewerOptions struct {
	Clock Clock
	// Jitter returns values in [0,1); default math/rand/v2.
	Jitter func() float64
	// RetryMin and RetryMax bound the backoff between failed attempts,
	// and between renewals asked for (RenewNow) that brought nothing new
	// (default 1 s and 1 min).
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	// OnRenew, if set, is called after each successful renewal.
	OnRenew func(Identity)
}

// Renewer keeps a node's certificate fresh: it renews at RenewalTime, and
// whenever RenewNow is called (the swarm package calls it when the cluster
// starts or finishes a root rotation, or changes the node's role).
//
// Every renewal is a write to the cluster's store, so retries back off: a
// failed attempt is tried again after a delay that doubles from RetryMin
// to RetryMax (RenewNow does not cut it short: the retry is the renewal it
// asks for), and a renewal asked for right after one that brought nothing
// new (same role, issuer and trust bundle: the CA will not issue what the
// caller waits for yet) waits as long, doubling in the same way, until one
// brings something new. A caller that asks in a loop costs the CA one
// renewal a minute, not fifty a second.
type Renewer struct {
	node   *NodeIdentity
	issuer CertificateIssuer
	opts   RenewerOptions
	kick   chan struct{}
}

// NewRenewer returns a renewer of node's certificate through issuer.
func NewRenewer(node *NodeIdentity, issuer CertificateIssuer, opts RenewerOptions) *Renewer {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(time.Minute, opts.RetryMin)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Renewer{node: node, issuer: issuer, opts: opts, kick: make(chan struct{}, 1)}
}

// RenewNow asks for a renewal as soon as possible; it does not block.
func (r *Renewer) RenewNow() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run renews until ctx ends (returning ctx.Err()) or the CA says this node
// may no longer have a certificate (removed, or not allowed).
func (r *Renewer) Run(ctx context.Context) error {
	renewed := false
	var last time.Time    // when the last renewal succeeded
	var gap time.Duration // spacing of asked-for renewals after one that brought nothing new
	for {
		leaf := r.node.Leaf()
		at := RenewalTime(leaf.NotBefore, leaf.NotAfter, r.opts.Jitter())
		wait := max(at.Sub(r.opts.Clock.Now()), 0)
		if renewed {
			// A certificate just issued is due again already only if this
			// node's clock is far ahead of the CA's: do not renew in a hot
			// loop then. (At start, an overdue certificate renews at once.)
			wait = max(wait, r.opts.RetryMin)
		}
		r.opts.Logger.Debug("pki: next certificate renewal", "node", r.node.Identity().NodeID, "at", at, "expires", leaf.NotAfter)
		kicked := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.kick:
			kicked = true
		case <-r.opts.Clock.After(wait):
		}
		if d := last.Add(gap).Sub(r.opts.Clock.Now()); kicked && gap > 0 && d > 0 {
			r.opts.Logger.Debug("pki: renewal asked for again: backing off", "node", r.node.Identity().NodeID, "in", d)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-r.opts.Clock.After(d):
			}
		}
		before := r.issued()
		if err := r.renew(ctx); err != nil {
			return err
		}
		renewed, last = true, r.opts.Clock.Now()
		switch {
		case r.issued() != before:
			gap = 0
		case kicked:
			gap = min(max(2*gap, r.opts.RetryMin), r.opts.RetryMax)
		}
	}
}

// issued is what a renewal may change that its asker waits for: the
// role, the issuing key and the trust bundle.
func (r *Renewer) issued() issuedAs {
	id := r.node.Identity()
	return issuedAs{role: id.Role, issuer: id.IssuerKeyID, bundle: string(r.node.TrustBundle())}
}

type issuedAs struct {
	role           Role
	issuer, bundle string
}

// renew tries until it succeeds, ctx ends, or the error is permanent.
func (r *Renewer) renew(ctx context.Context) error {
	retry := backoff.New(backoff.Config{Base: r.opts.RetryMin, Max: r.opts.RetryMax})
	for {
		err := r.node.Renew(ctx, r.issuer)
		if err == nil {
			id := r.node.Identity()
			r.opts.Logger.Info("pki: renewed node certificate", "node", id.NodeID, "role", id.Role, "expires", id.NotAfter)
			if r.opts.OnRenew != nil {
				r.opts.OnRenew(id)
			}
			return nil
		}
		if errors.Is(err, ErrNodeRemoved) || errors.Is(err, ErrPermissionDenied) {
			r.opts.Logger.Error("pki: certificate renewal refused for good", "node", r.node.Identity().NodeID, "err", err)
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := retry.Next()
		r.opts.Logger.Warn("pki: certificate renewal failed; retrying", "node", r.node.Identity().NodeID, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.opts.Clock.After(wait):
		}
	}
}
