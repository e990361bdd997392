package raft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

var clusterShapes = []struct {
	kind transportKind
	size int
}{{memNet, 3}, {memNet, 5}, {grpcNet, 3}, {grpcNet, 5}}

func forEachShape(t *testing.T, f func(t *testing.T, kind transportKind, size int)) {
	for _, s := range clusterShapes {
		t.Run(fmt.Sprintf("%s/%d", s.kind, s.size), func(t *testing.T) {
			t.Parallel()
			f(t, s.kind, s.size)
		})
	}
}

// Elect a leader, replicate writes proposed on the leader and on
// followers (forwarded), and see every member apply the same history.
func TestClusterElectReplicate(t *testing.T) {
	forEachShape(t, func(t *testing.T, kind transportKind, size int) {
		c := newCluster(t, kind, size, nil)
		lead := c.leader(c.ids, 10*time.Second)
		var last uint64
		for i := 0; i < 20; i++ {
			id := c.ids[i%size] // leader and followers alike
			idx := c.mustPut(id, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
			if idx <= last {
				t.Fatalf("index %d after %d", idx, last)
			}
			last = idx
			// Propose returns after the local apply.
			if v, _ := c.fsm(id).get(fmt.Sprintf("k%d", i)); v != fmt.Sprintf("v%d", i) {
				t.Fatalf("member %x returned before applying: got %q", id, v)
			}
		}
		c.converged(c.ids, last, 10*time.Second)
		if got := c.fsm(lead).len(); got != 20 {
			t.Fatalf("leader holds %d keys, want 20", got)
		}
		// The FSM's error reaches the proposer, on leader and follower.
		for _, id := range []uint64{lead, c.ids[0], c.ids[1]} {
			idx, err := c.put(id, "x", "refuse-me")
			if !errors.Is(err, errKVRefused) || idx == 0 {
				t.Fatalf("propose on %x: got (%d, %v), want the FSM's error with the index", id, idx, err)
			}
		}
	})
}

// Kill the leader: the others elect a new one and keep committing; the old
// leader comes back from disk and catches up.
func TestClusterLeaderFailover(t *testing.T) {
	forEachShape(t, func(t *testing.T, kind transportKind, size int) {
		c := newCluster(t, kind, size, nil)
		lead := c.leader(c.ids, 10*time.Second)
		c.mustPut(lead, "before", "1")
		c.kill(lead)
		rest := without(c.ids, lead)
		lead2 := c.leader(rest, 10*time.Second)
		if lead2 == lead {
			t.Fatal("dead member still leads")
		}
		idx := c.mustPut(rest[0], "after", "2")
		c.start(lead, nil)
		c.converged(c.ids, idx, 10*time.Second)
		if v, _ := c.fsm(lead).get("after"); v != "2" {
			t.Fatalf("restarted member did not catch up: %q", v)
		}
	})
}

// Cut the leader off with a minority: it steps down (CheckQuorum), its
// pending proposals fail fast instead of waiting out their deadline, the
// majority elects a leader and commits; after healing, nothing the old
// leader accepted is committed, and nothing is committed twice.
func TestClusterPartitionedLeaderStepsDown(t *testing.T) {
	forEachShape(t, func(t *testing.T, kind transportKind, size int) {
		c := newCluster(t, kind, size, nil)
		lead := c.leader(c.ids, 10*time.Second)
		c.mustPut(lead, "base", "0")
		minority := []uint64{lead}
		if size == 5 {
			minority = append(minority, without(c.ids, lead)[0])
		}
		majority := without(c.ids, minority...)
		c.partition(minority, majority)

		const pending = 10
		var wg sync.WaitGroup
		errs := make([]error, pending)
		took := make([]time.Duration, pending)
		for i := 0; i < pending; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				start := time.Now()
				_, errs[i] = c.node(lead).Propose(ctx, kvOp(fmt.Sprintf("minority%d", i), "lost"))
				took[i] = time.Since(start)
			}(i)
		}
		lead2 := c.leader(majority, 15*time.Second)
		idx := c.mustPut(lead2, "majority", "1")
		wg.Wait()
		for i, err := range errs {
			if err == nil {
				t.Fatalf("proposal %d on the cut-off leader succeeded", i)
			}
			if !errors.Is(err, ErrLostLeadership) && !errors.Is(err, ErrNotLeader) {
				t.Fatalf("proposal %d failed with %v, want ErrLostLeadership", i, err)
			}
			if took[i] > 10*time.Second {
				t.Fatalf("proposal %d took %v to fail: not fast", i, took[i])
			}
		}
		testutil.Eventually(t, 10*time.Second, "the old leader to step down", func() bool { return !c.node(lead).IsLeader() })

		c.heal()
		c.converged(c.ids, idx, 15*time.Second)
		seen := map[string]int{}
		for _, w := range c.fsm(lead).writes() {
			seen[w.key+"="+w.value]++
			if w.value == "lost" {
				t.Fatalf("a proposal that failed on the deposed leader committed: %+v", w)
			}
		}
		for k, n := range seen {
			if n > 1 {
				t.Fatalf("%s committed %d times", k, n)
			}
		}
	})
}

// Stop every member and start them all again from their data dirs: the
// state is intact and the cluster keeps working.
func TestClusterRestartAllFromDisk(t *testing.T) {
	forEachShape(t, func(t *testing.T, kind transportKind, size int) {
		c := newCluster(t, kind, size, nil)
		lead := c.leader(c.ids, 10*time.Second)
		var idx uint64
		for i := 0; i < 30; i++ {
			idx = c.mustPut(lead, fmt.Sprintf("k%d", i), fmt.Sprint(i))
		}
		c.converged(c.ids, idx, 10*time.Second)
		want := c.fsm(lead).writes()
		c.restartAll()
		for _, id := range c.ids {
			testutil.Eventually(t, 10*time.Second, "replay", func() bool { return c.node(id).AppliedIndex() >= idx })
			got := c.fsm(id).writes()
			if len(got) < len(want) {
				t.Fatalf("member %x replayed %d writes, want %d", id, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("member %x write %d: %+v, want %+v", id, i, got[i], want[i])
				}
			}
		}
		lead = c.leader(c.ids, 10*time.Second)
		idx = c.mustPut(lead, "after-restart", "yes")
		c.converged(c.ids, idx, 10*time.Second)
	})
}
