package raft

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// The count-based snapshot waits for a log of the last snapshot's bytes: small writes over a large state do not rewrite it every
// SnapshotInterval entries, also after a restart (the size is read back
// from the stored snapshot), and enough bytes of log do.
func TestCountSnapshotWaitsForALogOfTheState(t *testing.T) {
	c := newCluster(t, memNet, 1, func(cfg *Config) {
		cfg.SnapshotInterval = 5
		cfg.SnapshotBytes = 1 << 30
		cfg.SnapshotCatchUpBytes = 1 << 30 // no snapshot when quiet
		cfg.SnapshotCatchUpEntries = 1
	})
	id := c.leader(c.ids, 10*time.Second)
	snapIndex := func() uint64 {
		snap, _ := c.node(id).storage.Snapshot()
		return snap.GetMetadata().GetIndex()
	}
	c.mustPut(id, "big", strings.Repeat("x", 100<<10))
	for i := range 5 {
		c.mustPut(id, fmt.Sprintf("a%d", i), "1")
	}
	testutil.Eventually(t, 10*time.Second, "the first snapshot (no size known yet)", func() bool { return snapIndex() > 0 })
	first := snapIndex()
	small := func(prefix string) {
		for i := range 20 {
			c.mustPut(id, fmt.Sprintf("%s%d", prefix, i), "1")
		}
		if got := snapIndex(); got != first {
			t.Fatalf("a snapshot at %d after 20 small writes over a 100 KiB state (the last at %d)", got, first)
		}
	}
	small("b")
	c.restart(id)
	id = c.leader(c.ids, 10*time.Second)
	small("c")
	// The kv test FSM's snapshot holds the big value and its history
	// (~200 KiB): a log of 150 KiB is not enough, one of 250 KiB is.
	c.mustPut(id, "medium", strings.Repeat("y", 150<<10))
	c.mustPut(id, "d", "1")
	if got := snapIndex(); got != first {
		t.Fatalf("a snapshot at %d once the log held ~150 KiB over a ~200 KiB state", got)
	}
	c.mustPut(id, "large", strings.Repeat("z", 100<<10))
	c.mustPut(id, "e", "1")
	testutil.Eventually(t, 10*time.Second, "a snapshot once the log holds as many bytes as the state", func() bool { return snapIndex() > first })
}
