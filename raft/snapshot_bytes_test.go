package raft

import (
	"fmt"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// logBytes returns the bytes of the entries a member's storage still holds
// and how many entries that is.
func logBytes(t *testing.T, n *Node) (bytes, entries uint64) {
	t.Helper()
	first, err := n.storage.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := n.storage.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if last < first {
		return 0, 0
	}
	ents, err := n.storage.Entries(first, last+1, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		bytes += uint64(len(e.GetData()))
	}
	return bytes, uint64(len(ents))
}

// TestSnapshotByBytes: large entries are snapshotted by their bytes long
// before SnapshotInterval entries, and the catch-up entries kept are
// bounded by bytes too, so the log a member holds stays within
// SnapshotBytes plus SnapshotCatchUpBytes.
func TestSnapshotByBytes(t *testing.T) {
	const value = 100 << 10
	c := newCluster(t, memNet, 1, func(cfg *Config) {
		cfg.SnapshotInterval = 1 << 30 // never by count
		cfg.SnapshotBytes = 1 << 20
		cfg.SnapshotCatchUpEntries = 500
		cfg.SnapshotCatchUpBytes = 256 << 10
		cfg.SnapshotQuiet = time.Hour // not by quiet either
	})
	id := c.leader(c.ids, 10*time.Second)
	var most uint64
	for i := range 40 {
		c.mustPut(id, fmt.Sprintf("k%02d", i), strings.Repeat("v", value))
		if b, _ := logBytes(t, c.node(id)); b > most {
			most = b
		}
	}
	snap, err := c.node(id).storage.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if snap.GetMetadata().GetIndex() < 10 {
		t.Fatalf("snapshot at %d after 40 entries of 4 MB with SnapshotBytes 1 MiB", snap.GetMetadata().GetIndex())
	}
	if limit := uint64(1<<20 + 256<<10 + 2*value); most > limit {
		t.Fatalf("the log held up to %d bytes, want at most %d", most, limit)
	}
	if v, _ := c.fsm(id).get("k39"); len(v) != value {
		t.Fatalf("last write holds %d bytes", len(v))
	}
}

// forcedGCs counts the garbage collections the program asked for
// (debug.FreeOSMemory makes one).
func forcedGCs() uint64 {
	m := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}

// TestSnapshotWhenQuiet: after a burst of writes larger than
// SnapshotCatchUpBytes, a quiet log is snapshotted and compacted down to
// its catch-up bytes, though neither the count nor the bytes bound was
// reached, and the freed memory is returned to the system.
func TestSnapshotWhenQuiet(t *testing.T) {
	const value = 100 << 10
	c := newCluster(t, memNet, 1, func(cfg *Config) {
		cfg.SnapshotInterval = 1 << 30
		cfg.SnapshotBytes = 1 << 30
		cfg.SnapshotCatchUpBytes = 150 << 10
		cfg.SnapshotQuiet = 200 * time.Millisecond
	})
	id := c.leader(c.ids, 10*time.Second)
	gcs := forcedGCs()
	var last uint64
	for i := range 10 {
		last = c.mustPut(id, fmt.Sprintf("k%d", i), strings.Repeat("v", value))
	}
	// The snapshot is recorded before the log is compacted: wait for both.
	testutil.Eventually(t, 30*time.Second, "a snapshot once the log is quiet, and the log compacted to 150 KiB", func() bool {
		snap, err := c.node(id).storage.Snapshot()
		b, _ := logBytes(t, c.node(id))
		return err == nil && snap.GetMetadata().GetIndex() >= last && b <= 150<<10
	})
	testutil.Eventually(t, 30*time.Second, "the freed memory returned (a forced garbage collection)", func() bool {
		return forcedGCs() > gcs
	})
	if v, _ := c.fsm(id).get("k9"); len(v) != value {
		t.Fatalf("last write holds %d bytes", len(v))
	}
}
