package raft

import (
	"testing"
	"time"
)

// A member stopped before its first Ready (raft's bootstrap entries still
// in memory) restarts from its data dir: its last hard state is never
// recorded past the log on disk, and with nothing on disk it bootstraps
// again. Before, it recorded commit index 1 over an empty log and refused
// to open ("entries lost").
func TestStoppedBeforeFirstReadyRestarts(t *testing.T) {
	for range 10 {
		c := newCluster(t, memNet, 1, nil)
		id := c.ids[0]
		c.kill(id)
		if _, err := c.startErr(id, []Peer{{ID: id, Addr: c.addrs[id]}}, nil); err != nil {
			t.Fatal(err)
		}
		idx := c.mustPut(c.leader(c.ids, 10*time.Second), "k", "v")
		c.converged(c.ids, idx, 10*time.Second)
		c.stopAll()
	}
}
