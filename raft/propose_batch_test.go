package raft

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/apiary-io/apiary/internal/testutil"
)

// appendCounter counts the append messages with entries a member sends
// to each other member.
type appendCounter struct {
	Transport
	mu   sync.Mutex
	sent map[uint64]int
}

func (a *appendCounter) Send(msgs []*raftpb.Message) {
	a.mu.Lock()
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgApp && len(m.GetEntries()) > 0 {
			a.sent[m.GetTo()]++
		}
	}
	a.mu.Unlock()
	a.Transport.Send(msgs)
}

func (a *appendCounter) count(to uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent[to]
}

// Proposals queued while the raft loop is busy go to raft as one
// message, so the leader sends each follower one append for all of them,
// not one per proposal (and gets one acknowledgement back); every one of
// them still commits and is answered with its own index.
func TestQueuedProposalsShareOneAppend(t *testing.T) {
	c := newCluster(t, memNet, 3, nil)
	c.leader(c.ids, 10*time.Second)
	counters := map[uint64]*appendCounter{}
	for _, id := range c.ids {
		c.kill(id)
	}
	for _, id := range c.ids {
		if _, err := c.startErr(id, nil, func(cfg *Config) {
			counters[id] = &appendCounter{Transport: cfg.Transport, sent: map[uint64]int{}}
			cfg.Transport = counters[id]
		}); err != nil {
			t.Fatal(err)
		}
	}
	lead := c.leader(c.ids, 10*time.Second)
	c.mustPut(lead, "warm", "up") // every follower in StateReplicate
	n := c.node(lead)

	// Hold the leader's loop while the proposals queue up.
	release, held := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	releaseLoop := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseLoop() // before the cluster stops, should the test fail
	n.ctrlC <- func() {
		close(held)
		<-release
	}
	<-held
	const proposals = 100
	before := map[uint64]int{}
	for _, id := range c.ids {
		before[id] = counters[lead].count(id)
	}
	indexes := make([]uint64, proposals)
	errs := make([]error, proposals)
	var wg sync.WaitGroup
	var queued atomic.Int32
	for i := range proposals {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			queued.Add(1)
			indexes[i], errs[i] = n.Propose(ctx, kvOp(fmt.Sprintf("k%d", i), "v"))
		})
	}
	testutil.Eventually(t, 10*time.Second, "every proposal queued for the loop", func() bool {
		return queued.Load() == proposals && len(n.propC) == proposals
	})
	releaseLoop()
	wg.Wait()

	seen := map[uint64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		if seen[indexes[i]] {
			t.Fatalf("proposal %d: index %d answered twice", i, indexes[i])
		}
		seen[indexes[i]] = true
	}
	for _, id := range c.ids {
		if id == lead {
			continue
		}
		// One append carries the batch; a second may follow for an entry
		// raft adds itself. One per proposal would be 100.
		if sent := counters[lead].count(id) - before[id]; sent > 3 {
			t.Errorf("leader sent follower %x %d appends for %d queued proposals, want one or two", id, sent, proposals)
		}
	}
	c.converged(c.ids, indexes[0], 10*time.Second)
}

// A leader whose last batch held gatherMin proposals or more waits
// (ProposalWait) for as many before stepping the next, and every
// proposal still commits; a lone proposer's batches hold one, so it never
// waits, however long ProposalWait is.
func TestLeaderGathersProposalsOnlyUnderLoad(t *testing.T) {
	c := newCluster(t, memNet, 3, func(cfg *Config) { cfg.ProposalWait = cfg.TickInterval })
	lead := c.leader(c.ids, 10*time.Second)
	n := c.node(lead)
	for i := range 20 {
		c.mustPut(lead, fmt.Sprintf("lone-%d", i), "v")
	}
	if g := n.gathers.Load(); g != 0 {
		t.Fatalf("a lone proposer made the leader wait %d times", g)
	}

	// Queue a batch of 8 while the loop is held: the next proposal, alone,
	// finds a last batch of 8 and is gathered.
	release, held := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	releaseLoop := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseLoop()
	n.ctrlC <- func() {
		close(held)
		<-release
	}
	<-held
	var wg sync.WaitGroup
	errs := make([]error, 9)
	indexes := make([]uint64, 9)
	propose := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		indexes[i], errs[i] = n.Propose(ctx, kvOp(fmt.Sprintf("batch-%d", i), "v"))
	}
	for i := range 8 {
		wg.Go(func() { propose(i) })
	}
	testutil.Eventually(t, 10*time.Second, "8 proposals queued", func() bool { return len(n.propC) == 8 })
	releaseLoop()
	wg.Wait()
	propose(8)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
	}
	if g := n.gathers.Load(); g == 0 {
		t.Fatal("after a batch of 8, a proposal was stepped without waiting for others")
	}
	c.converged(c.ids, indexes[8], 10*time.Second)
	for _, id := range c.ids {
		for i := range 9 {
			if v, ok := c.fsm(id).get(fmt.Sprintf("batch-%d", i)); !ok || v != "v" {
				t.Fatalf("member %x: batch-%d = %q, %v", id, i, v, ok)
			}
		}
	}
}
