package dispatcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// withClusterPeriod returns a store holding the cluster object, whose spec
// fixes the heartbeat period (zero: adaptive).
func withClusterPeriod(t *testing.T, period time.Duration) *store.MemoryStore {
	t.Helper()
	s := store.NewMemoryStore(nil)
	t.Cleanup(s.Close)
	spec := api.DefaultClusterSpec()
	spec.Dispatcher.HeartbeatPeriod = period
	if err := s.Update(func(tx store.Tx) error { return tx.CreateCluster(&api.Cluster{ID: "c", Spec: spec}) }); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAdaptiveHeartbeatPeriod checks design §9: 1 s while the cluster is
// small, then growing so the leader takes at most ~2,000 heartbeats per
// second; the cluster spec's period overrides it.
func TestAdaptiveHeartbeatPeriod(t *testing.T) {
	tests := []struct {
		fixed    time.Duration
		sessions int
		want     time.Duration
	}{
		{0, 0, time.Second},
		{0, 1, time.Second},
		{0, 1999, time.Second},
		{0, 2000, time.Second},
		{0, 2001, time.Second + 500*time.Microsecond},
		{0, 3000, 1500 * time.Millisecond},
		{0, 4000, 2 * time.Second},
		{0, 20000, 10 * time.Second},
		{250 * time.Millisecond, 0, 250 * time.Millisecond},
		{250 * time.Millisecond, 20000, 250 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("fixed=%v/sessions=%d", tc.fixed, tc.sessions), func(t *testing.T) {
			d := New(withClusterPeriod(t, tc.fixed), Config{})
			d.sessions = map[string]*nodeSession{}
			for i := range tc.sessions {
				id := fmt.Sprint(i)
				d.sessions[id] = &nodeSession{id: id, nodeID: id, done: make(chan struct{})}
			}
			if got := d.period(); got != tc.want {
				t.Errorf("period = %v, want %v", got, tc.want)
			}
			if got, want := d.grace(), tc.want*time.Duration(DefaultConfig().GraceMultiplier); got != want {
				t.Errorf("grace = %v, want %v", got, want)
			}
			if tc.fixed == 0 && tc.sessions > 0 {
				// Whatever the size, the load stays at or under the bound.
				if rate := float64(tc.sessions) / d.period().Seconds(); rate > maxHeartbeatsPerSecond+1e-6 {
					t.Errorf("%d sessions at %v make %.0f heartbeats/s, over %d", tc.sessions, d.period(), rate, maxHeartbeatsPerSecond)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	d := New(store.NewMemoryStore(nil), Config{})
	if d.cfg.GraceMultiplier != 3 {
		t.Errorf("grace multiplier = %d, want 3", d.cfg.GraceMultiplier)
	}
	if d.cfg.StatusBatchWindow <= 0 {
		t.Errorf("status batch window = %v, want > 0", d.cfg.StatusBatchWindow)
	}
	if got := d.period(); got != time.Second {
		t.Errorf("heartbeat period without a cluster object = %v, want 1s (adaptive)", got)
	}
}
