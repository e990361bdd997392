package raft

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/internal/testutil"
)

// A 100 MiB state reaches a follower that fell behind as a snapshot
// streamed in 1 MiB chunks over gRPC. The receiving servers accept no
// message above 16 MiB, so the snapshot cannot have travelled as one.
func TestLargeSnapshotInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MiB through raft: about 20-30 s under -race")
	}
	const (
		values = 25
		size   = 4 << 20
	)
	c := newCluster(t, grpcNet, 3, func(cfg *Config) {
		// Production timing: 4 MiB entries under the race detector take a
		// while to marshal and fsync.
		cfg.TickInterval = 100 * time.Millisecond
		cfg.ElectionTick = 20
		cfg.SnapshotInterval = 10
		cfg.SnapshotCatchUpEntries = 2
	}, grpc.MaxRecvMsgSize(16<<20))
	lead := c.leader(c.ids, 10*time.Second)
	lag := without(c.ids, lead)[0]
	c.kill(lag)
	start := time.Now()
	var idx uint64
	live := without(c.ids, lag)
	for i := 0; i < values; i++ {
		// On a loaded machine a leader can lose an election here; the
		// write is then retried (same key and value, so it is harmless if
		// the first try committed after all).
		for try := 0; ; try++ {
			l := c.leader(live, 30*time.Second)
			var err error
			idx, err = c.put(l, fmt.Sprintf("big%02d", i), strings.Repeat(string(rune('a'+i)), size))
			if err == nil {
				break
			}
			if try == 5 {
				t.Fatalf("write %d: %v", i, err)
			}
		}
	}
	lead = c.leader(live, 30*time.Second)
	t.Logf("wrote %d MiB in %v", values*size>>20, time.Since(start))
	first, _ := c.node(lead).storage.FirstIndex()
	if first <= 2 {
		t.Fatalf("log not compacted (first index %d)", first)
	}
	start = time.Now()
	c.start(lag, nil)
	testutil.Eventually(t, 120*time.Second, "the lagging member to install the snapshot", func() bool {
		return c.node(lag).AppliedIndex() >= idx
	})
	t.Logf("snapshot installed and applied in %v", time.Since(start))
	snap, _ := c.node(lag).storage.Snapshot()
	if snap.GetMetadata().GetIndex() == 0 {
		t.Fatal("caught up without a snapshot")
	}
	ref, _ := decodeSnapRef(snap.GetData())
	if ref.size < values*size {
		t.Fatalf("snapshot of %d bytes, want >= %d", ref.size, values*size)
	}
	for i := 0; i < values; i++ {
		v, _ := c.fsm(lag).get(fmt.Sprintf("big%02d", i))
		if len(v) != size || v[0] != byte('a'+i) || v[size-1] != byte('a'+i) {
			t.Fatalf("value %d: %d bytes", i, len(v))
		}
	}
}
