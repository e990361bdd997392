package backoff_test

import (
	"math"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/backoff"
)

// waits returns the first n waits of b.
func waits(b *backoff.Backoff, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = b.Next()
	}
	return out
}

func equal(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSequences(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name string
		cfg  backoff.Config
		want []time.Duration
	}{
		{"doubling to a cap", backoff.Config{Base: time.Second, Max: time.Minute},
			[]time.Duration{1e9, 2e9, 4e9, 8e9, 16e9, 32e9, 60e9, 60e9}},
		{"multiplier 1.6", backoff.Config{Base: 100 * ms, Max: time.Second, Multiplier: 1.6},
			[]time.Duration{100 * ms, 160 * ms, 256 * ms, 409600 * time.Microsecond, 655360 * time.Microsecond, time.Second, time.Second}},
		{"max below base is base", backoff.Config{Base: time.Second, Max: time.Millisecond},
			[]time.Duration{1e9, 1e9, 1e9}},
		{"multiplier below 1 is 1", backoff.Config{Base: time.Second, Max: time.Minute, Multiplier: 0.5},
			[]time.Duration{1e9, 1e9, 1e9}},
		{"NaN multiplier is 1", backoff.Config{Base: time.Second, Max: time.Minute, Multiplier: math.NaN()},
			[]time.Duration{1e9, 1e9}},
		{"zero base stays zero", backoff.Config{Max: time.Minute}, []time.Duration{0, 0, 0}},
		{"negative base is zero", backoff.Config{Base: -time.Second, Max: time.Minute}, []time.Duration{0, 0}},
	} {
		b := backoff.New(c.cfg)
		if got := waits(b, len(c.want)); !equal(got, c.want) {
			t.Errorf("%s: waits %v, want %v", c.name, got, c.want)
		}
		b.Reset()
		if got := b.Next(); got != c.want[0] {
			t.Errorf("%s: after Reset waits %v, want %v", c.name, got, c.want[0])
		}
	}
}

// TestNoOverflow: a Max as long as a Duration holds is reached, not
// wrapped past into negative waits.
func TestNoOverflow(t *testing.T) {
	b := backoff.New(backoff.Config{Base: time.Second, Max: math.MaxInt64, Multiplier: 1000})
	last := time.Duration(0)
	for i := range 20 {
		w := b.Next()
		if w < last {
			t.Fatalf("wait %d is %v, after %v", i, w, last)
		}
		last = w
	}
	if last != math.MaxInt64 {
		t.Fatalf("last wait %v, want the Max", last)
	}
}

// TestJitterBounds: with the draw at either end of its range, a wait is
// the nominal one or (1−Jitter) of it; the draw asked for spans exactly
// that range.
func TestJitterBounds(t *testing.T) {
	var asked []int64
	for _, c := range []struct {
		jitter float64
		draw   func(n int64) int64
		want   []time.Duration
	}{
		{0.5, func(int64) int64 { return 0 }, []time.Duration{200, 2000, 2000}},
		{0.5, func(n int64) int64 { asked = append(asked, n); return n - 1 }, []time.Duration{100, 1000, 1000}},
		{1, func(n int64) int64 { return n - 1 }, []time.Duration{0, 0, 0}},
		{2, func(n int64) int64 { return n - 1 }, []time.Duration{0, 0, 0}}, // clamped to 1
		{-1, func(int64) int64 { panic("no jitter: no draw") }, []time.Duration{200, 2000, 2000}},
		{math.NaN(), func(int64) int64 { panic("no jitter: no draw") }, []time.Duration{200, 2000, 2000}},
	} {
		b := backoff.New(backoff.Config{Base: 200, Max: 2000, Multiplier: 10, Jitter: c.jitter, Rand: c.draw})
		if got := waits(b, len(c.want)); !equal(got, c.want) {
			t.Errorf("jitter %v: waits %v, want %v", c.jitter, got, c.want)
		}
	}
	if want := []int64{101, 1001, 1001}; len(asked) != 3 || asked[0] != want[0] || asked[1] != want[1] || asked[2] != want[2] {
		t.Errorf("draws asked for [0, n) with n = %v, want %v", asked, want)
	}
}

// TestJitterRandom: with the real source, every wait falls in its range
// and the range is used, not one end of it.
func TestJitterRandom(t *testing.T) {
	b := backoff.New(backoff.Config{Base: time.Second, Max: time.Second, Jitter: 0.5})
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for range 1000 {
		w := b.Next()
		if w < 500*time.Millisecond || w > time.Second {
			t.Fatalf("wait %v outside [500ms, 1s]", w)
		}
		lo, hi = min(lo, w), max(hi, w)
	}
	if hi-lo < 400*time.Millisecond {
		t.Errorf("1000 waits spread over only [%v, %v]", lo, hi)
	}
}
