package raft

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// slowSnapshots is a Snapshotter whose snapshots are taken at once and
// written only once release is closed.
type slowSnapshots struct {
	*kvFSM
	started chan struct{}
	release chan struct{}
}

func (f *slowSnapshots) Snapshot() (func(io.Writer) error, error) {
	select {
	case f.started <- struct{}{}:
	default:
	}
	return func(w io.Writer) error {
		<-f.release
		return f.Save(w)
	}, nil
}

// A Snapshotter's snapshot is written in the background: while one is
// being written, entries go on committing and applying, and the snapshot
// lands, and the log is compacted, once it is written.
func TestSnapshotWrittenInTheBackground(t *testing.T) {
	c := newCluster(t, memNet, 1, func(cfg *Config) {
		cfg.SnapshotInterval = 5
		cfg.SnapshotCatchUpEntries = 1
	})
	id := c.ids[0]
	c.leader(c.ids, 10*time.Second)
	c.kill(id)
	fsm := &slowSnapshots{started: make(chan struct{}, 1), release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(fsm.release) }) }
	// Before the cluster stops (cleanups run last first): a node waits
	// for its snapshot writer when it stops.
	t.Cleanup(release)
	if _, err := c.startErr(id, nil, func(cfg *Config) {
		fsm.kvFSM = cfg.FSM.(*kvFSM)
		cfg.FSM = fsm
	}); err != nil {
		t.Fatal(err)
	}
	c.leader(c.ids, 10*time.Second)
	for i := 0; i < 6; i++ {
		c.mustPut(id, fmt.Sprintf("a%d", i), "x")
	}
	select {
	case <-fsm.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot was started after 6 entries with SnapshotInterval 5")
	}
	snap, _ := c.node(id).storage.Snapshot()
	before := snap.GetMetadata().GetIndex()
	// The snapshot is held; writes do not wait for it.
	var last uint64
	for i := 0; i < 20; i++ {
		last = c.mustPut(id, fmt.Sprintf("b%d", i), "y")
	}
	// (A proposal is answered as its entry is applied, a moment before
	// the applied index moves.)
	testutil.Eventually(t, 10*time.Second, "every write applied while the snapshot is being written", func() bool {
		return c.node(id).AppliedIndex() >= last
	})
	if snap, _ := c.node(id).storage.Snapshot(); snap.GetMetadata().GetIndex() != before {
		t.Fatalf("a snapshot at %d landed before it was written", snap.GetMetadata().GetIndex())
	}
	release()
	testutil.Eventually(t, 10*time.Second, "the snapshot to land and the log to be compacted", func() bool {
		snap, _ := c.node(id).storage.Snapshot()
		first, _ := c.node(id).storage.FirstIndex()
		return snap.GetMetadata().GetIndex() > before && first > 2
	})
}
