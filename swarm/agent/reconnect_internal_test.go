package agent

import (
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/backoff"
)

// TestReconnectBackoff: with the jitter drawn at either end, the first
// attempt after a session ends waits between d/20 and d/10, later ones
// between d/2 and d, and a session that lived starts quick again.
func TestReconnectBackoff(t *testing.T) {
	const d = 2 * time.Second
	for _, c := range []struct {
		name string
		draw func(n int64) int64
		want []time.Duration
	}{
		{"longest", func(int64) int64 { return 0 }, []time.Duration{d / 10, d, d, d}},
		{"shortest", func(n int64) int64 { return n - 1 }, []time.Duration{d / 20, d / 2, d / 2, d / 2}},
	} {
		cfg := reconnectBackoff(d)
		cfg.Rand = c.draw
		b := backoff.New(cfg)
		for i, want := range c.want {
			if got := b.Next(); got != want {
				t.Errorf("%s: wait %d is %v, want %v", c.name, i+1, got, want)
			}
		}
		b.Reset()
		if got := b.Next(); got != c.want[0] {
			t.Errorf("%s: after a session that lived the wait is %v, want %v", c.name, got, c.want[0])
		}
	}
}
