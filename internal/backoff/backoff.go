// Package backoff spaces out the attempts of a retry loop: each failure in
// a row waits Multiplier times longer than the one before, up to Max, with
// optional jitter so that many nodes failing together do not retry
// together.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Config says how the waits grow.
type Config struct {
	// Base is the first wait (before jitter).
	Base time.Duration
	// Max bounds every wait; less than Base means Base.
	Max time.Duration
	// Multiplier is how much longer each wait is than the one before; 0
	// means 2, and below 1 means 1 (waits that never grow).
	Multiplier float64
	// Jitter, in [0, 1], draws each wait uniformly from [w·(1−Jitter), w]
	// instead of waiting w: 0 waits exactly w, 1 anything up to w. Values
	// outside [0, 1] are clamped.
	Jitter float64
	// Rand, if set, returns a number in [0, n) for the jitter (tests make
	// it deterministic); nil means math/rand/v2's Int64N.
	Rand func(n int64) int64
}

// Backoff is the wait before each next attempt of a retry loop. It is not
// safe for concurrent use: a loop owns its Backoff.
type Backoff struct {
	cfg  Config
	next time.Duration // the next wait before jitter
}

// New returns a Backoff whose first wait is cfg.Base.
func New(cfg Config) *Backoff {
	cfg.Base = max(cfg.Base, 0)
	cfg.Max = max(cfg.Max, cfg.Base)
	switch {
	case cfg.Multiplier == 0:
		cfg.Multiplier = 2
	case !(cfg.Multiplier >= 1): // NaN is not >= 1 either
		cfg.Multiplier = 1
	}
	if !(cfg.Jitter > 0) { // NaN too
		cfg.Jitter = 0
	}
	cfg.Jitter = min(cfg.Jitter, 1)
	if cfg.Rand == nil {
		cfg.Rand = rand.Int64N
	}
	b := &Backoff{cfg: cfg}
	b.Reset()
	return b
}

// Next returns the wait before the next attempt, and grows the one after.
func (b *Backoff) Next() time.Duration {
	w := b.next
	// Grown in float64 and compared before converting back: a product
	// past Max may be past what a Duration holds.
	if grown := float64(w) * b.cfg.Multiplier; grown < float64(b.cfg.Max) {
		b.next = time.Duration(grown)
	} else {
		b.next = b.cfg.Max
	}
	if b.cfg.Jitter == 0 {
		return w
	}
	span := int64(float64(w) * b.cfg.Jitter)
	return w - time.Duration(b.cfg.Rand(span+1))
}

// Reset makes the next wait Base again, after a success.
func (b *Backoff) Reset() { b.next = b.cfg.Base }
