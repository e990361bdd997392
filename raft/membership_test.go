package raft

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

func smallSnapshots(c *Config) {
	c.SnapshotInterval = 40
	c.SnapshotCatchUpEntries = 5
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func voters(n *Node) []uint64 {
	var out []uint64
	for _, m := range n.Members() {
		if !m.Learner {
			out = append(out, m.ID)
		}
	}
	return out
}

// A follower that was down while the log was compacted catches up by
// snapshot, and a member restarted from a data dir with a snapshot
// replays the log after it.
func TestSnapshotCatchUpAndReplay(t *testing.T) {
	for _, kind := range []transportKind{memNet, grpcNet} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, kind, 3, smallSnapshots)
			lead := c.leader(c.ids, 10*time.Second)
			lag := without(c.ids, lead)[0]
			c.kill(lag)
			var idx uint64
			for i := 0; i < 150; i++ {
				idx = c.mustPut(lead, fmt.Sprintf("k%d", i), fmt.Sprint(i))
			}
			first, _ := c.node(lead).storage.FirstIndex()
			if first <= 2 {
				t.Fatalf("log not compacted: first index %d", first)
			}
			c.start(lag, nil)
			c.converged(c.ids, idx, 20*time.Second)
			snap, _ := c.node(lag).storage.Snapshot()
			if snap.GetMetadata().GetIndex() == 0 {
				t.Fatal("lagging member caught up without a snapshot")
			}
			// Restart everyone: FSM from the snapshot, then the log after it.
			for _, id := range c.ids {
				c.kill(id)
			}
			for _, id := range c.ids {
				c.start(id, nil)
			}
			c.converged(c.ids, idx, 20*time.Second)
			if n := len(c.fsm(lag).writes()); n != 150 {
				t.Fatalf("after restart member %x holds %d writes, want 150", lag, n)
			}
		})
	}
}

// Add a fourth member after the log was compacted: it joins as a learner,
// catches up by snapshot, and is promoted to voter.
func TestAddMember(t *testing.T) {
	for _, kind := range []transportKind{memNet, grpcNet} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, kind, 3, smallSnapshots)
			lead := c.leader(c.ids, 10*time.Second)
			for i := 0; i < 100; i++ {
				c.mustPut(lead, fmt.Sprintf("k%d", i), fmt.Sprint(i))
			}
			const newID = 4
			c.ids = append(c.ids, newID)
			c.addrs[newID] = "mem-4"
			if kind == grpcNet {
				tr, err := c.newGRPC("127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				c.grpcTrs[newID] = tr
				c.addrs[newID] = tr.Addr()
			}
			var join []Peer
			for _, id := range c.ids[:3] {
				join = append(join, Peer{ID: id, Addr: c.addrs[id]})
			}
			// Empty, no peers: waits to be contacted.
			if _, err := c.startErr(newID, nil, func(cfg *Config) { cfg.Join = join }); err != nil {
				t.Fatal(err)
			}
			if err := c.node(lead).AddMember(ctxT(t, 20*time.Second), newID, c.addrs[newID]); err != nil {
				t.Fatalf("add member: %v", err)
			}
			if v := voters(c.node(lead)); !slices.Contains(v, newID) || len(v) != 4 {
				t.Fatalf("voters after add: %v", v)
			}
			idx := c.mustPut(newID, "from-new-member", "1")
			c.converged(c.ids, idx, 10*time.Second)
			snap, _ := c.node(newID).storage.Snapshot()
			if snap.GetMetadata().GetIndex() == 0 {
				t.Fatal("new member caught up without a snapshot although the log was compacted")
			}
			if err := c.node(lead).AddMember(ctxT(t, 5*time.Second), newID, c.addrs[newID]); !errors.Is(err, ErrMemberExists) {
				t.Fatalf("adding an existing member: %v", err)
			}
			// On a follower: refused with the leader's ID.
			f := without(c.ids, lead)[0]
			var nl *NotLeaderError
			if err := c.node(f).AddMember(ctxT(t, 5*time.Second), 9, "x"); !errors.As(err, &nl) || nl.Leader != lead {
				t.Fatalf("add on a follower: %v", err)
			}
		})
	}
}

// Two members added at once: the second configuration change waits for the
// first instead of becoming the empty entry etcd raft substitutes for a
// change proposed while another is pending (and waiting for it forever).
func TestConcurrentAddMembers(t *testing.T) {
	c := newCluster(t, memNet, 3, nil)
	lead := c.leader(c.ids, 10*time.Second)
	var join []Peer
	for _, id := range c.ids {
		join = append(join, Peer{ID: id, Addr: c.addrs[id]})
	}
	added := []uint64{4, 5}
	for _, id := range added {
		c.ids = append(c.ids, id)
		c.addrs[id] = fmt.Sprintf("mem-%d", id)
		if _, err := c.startErr(id, nil, func(cfg *Config) { cfg.Join = join }); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, len(added))
	for _, id := range added {
		go func() { errs <- c.node(lead).AddMember(ctxT(t, 20*time.Second), id, c.addrs[id]) }()
	}
	for range added {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent add: %v", err)
		}
	}
	if v := voters(c.node(lead)); len(v) != 5 {
		t.Fatalf("voters after two concurrent adds: %v", v)
	}
}

// Remove a follower: it learns it was removed and stops, cannot start
// again under its ID, and its ID cannot be added back.
func TestRemoveMember(t *testing.T) {
	c := newCluster(t, memNet, 3, nil)
	lead := c.leader(c.ids, 10*time.Second)
	victim := without(c.ids, lead)[0]
	c.mustPut(lead, "a", "1")
	if err := c.node(lead).RemoveMember(ctxT(t, 10*time.Second), victim); err != nil {
		t.Fatal(err)
	}
	n := c.node(victim)
	select {
	case <-n.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("removed member did not stop")
	}
	if !errors.Is(n.Err(), ErrRemoved) {
		t.Fatalf("removed member stopped with %v", n.Err())
	}
	c.kill(victim)
	if _, err := c.startErr(victim, nil, nil); !errors.Is(err, ErrRemoved) {
		t.Fatalf("restart of a removed member: %v", err)
	}
	if err := c.node(lead).AddMember(ctxT(t, 5*time.Second), victim, "mem-x"); !errors.Is(err, ErrRemoved) {
		t.Fatalf("re-adding a removed ID: %v", err)
	}
	rest := without(c.ids, victim)
	if v := voters(c.node(lead)); !slices.Equal(v, rest) {
		t.Fatalf("voters %v, want %v", v, rest)
	}
	idx := c.mustPut(lead, "b", "2")
	c.converged(rest, idx, 10*time.Second)
}

// A member removed while it was down does not know it; when it comes back
// with its old data, the others refuse its messages and tell it, and it
// stops for good.
func TestRemovedIDRefused(t *testing.T) {
	for _, kind := range []transportKind{memNet, grpcNet} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, kind, 3, nil)
			lead := c.leader(c.ids, 10*time.Second)
			victim := without(c.ids, lead)[0]
			c.kill(victim)
			if err := c.node(lead).RemoveMember(ctxT(t, 10*time.Second), victim); err != nil {
				t.Fatal(err)
			}
			n := c.start(victim, nil)
			select {
			case <-n.Done():
			case <-time.After(15 * time.Second):
				t.Fatal("removed member came back and was not refused")
			}
			if !errors.Is(n.Err(), ErrRemoved) {
				t.Fatalf("stopped with %v, want ErrRemoved", n.Err())
			}
			c.kill(victim)
			if _, err := c.startErr(victim, nil, nil); !errors.Is(err, ErrRemoved) {
				t.Fatalf("second restart: %v", err)
			}
			rest := without(c.ids, victim)
			idx := c.mustPut(lead, "still", "works")
			c.converged(rest, idx, 10*time.Second)
		})
	}
}

// Removals that would lose quorum are refused, saying so.
func TestRemoveRefusedWhenQuorumWouldBeLost(t *testing.T) {
	c := newCluster(t, memNet, 3, nil)
	lead := c.leader(c.ids, 10*time.Second)
	f := without(c.ids, lead)
	c.kill(f[0])
	ln := c.node(lead)
	testutil.Eventually(t, 10*time.Second, "the leader to see the dead member as unreachable", func() bool {
		v, err := ln.view(context.Background(), 0)
		return err == nil && ln.reachable(v, []uint64{f[0]}) == 0
	})
	// CheckRemove foresees the refusal, and the removal itself refuses.
	if err := c.node(lead).CheckRemove(ctxT(t, 5*time.Second), f[1]); !errors.Is(err, ErrQuorumLoss) {
		t.Fatalf("check before removing a live follower with another one down: %v", err)
	}
	if err := c.node(lead).CheckRemove(ctxT(t, 5*time.Second), f[0]); err != nil {
		t.Fatalf("check before removing the dead one: %v", err)
	}
	err := c.node(lead).RemoveMember(ctxT(t, 5*time.Second), f[1])
	if !errors.Is(err, ErrQuorumLoss) || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("removing a live follower with another one down: %v", err)
	}
	t.Logf("refusal: %v", err)
	// Removing the dead one is fine: two live voters remain.
	if err := c.node(lead).RemoveMember(ctxT(t, 10*time.Second), f[0]); err != nil {
		t.Fatal(err)
	}

	// The last member cannot be removed.
	one := newCluster(t, memNet, 1, nil)
	l := one.leader(one.ids, 10*time.Second)
	err = one.node(l).RemoveMember(ctxT(t, 5*time.Second), l)
	if !errors.Is(err, ErrQuorumLoss) || !strings.Contains(err.Error(), "last voter") {
		t.Fatalf("removing the last member: %v", err)
	}
}

func TestTransferLeadership(t *testing.T) {
	c := newCluster(t, memNet, 3, nil)
	lead := c.leader(c.ids, 10*time.Second)
	to := without(c.ids, lead)[1]
	if err := c.node(lead).TransferLeadership(ctxT(t, 10*time.Second), to); err != nil {
		t.Fatal(err)
	}
	if got := c.leader(c.ids, 10*time.Second); got != to {
		t.Fatalf("leader is %x, want %x", got, to)
	}
	idx := c.mustPut(lead, "after-transfer", "1") // forwarded by the old leader
	c.converged(c.ids, idx, 10*time.Second)
	var nl *NotLeaderError
	if err := c.node(lead).TransferLeadership(ctxT(t, 5*time.Second), lead); !errors.As(err, &nl) {
		t.Fatalf("transfer on a follower: %v", err)
	}
}

// Removing the leader hands leadership over first; the old leader stops.
func TestRemoveLeaderTransfersFirst(t *testing.T) {
	c := newCluster(t, memNet, 3, nil)
	lead := c.leader(c.ids, 10*time.Second)
	c.mustPut(lead, "a", "1")
	if err := c.node(lead).RemoveMember(ctxT(t, 15*time.Second), lead); err != nil {
		t.Fatal(err)
	}
	n := c.node(lead)
	select {
	case <-n.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("removed leader did not stop")
	}
	c.kill(lead)
	rest := without(c.ids, lead)
	l2 := c.leader(rest, 10*time.Second)
	idx := c.mustPut(l2, "b", "2")
	c.converged(rest, idx, 10*time.Second)
	if v := voters(c.node(l2)); !slices.Equal(v, rest) {
		t.Fatalf("voters %v, want %v", v, rest)
	}
}

// Demoting the leader transfers leadership first; the demoted member keeps
// replicating as a learner.
func TestDemoteLeader(t *testing.T) {
	c := newCluster(t, memNet, 3, nil)
	lead := c.leader(c.ids, 10*time.Second)
	if err := c.node(lead).DemoteMember(ctxT(t, 15*time.Second), lead); err != nil {
		t.Fatal(err)
	}
	rest := without(c.ids, lead)
	l2 := c.leader(rest, 10*time.Second)
	if v := voters(c.node(l2)); !slices.Equal(v, rest) {
		t.Fatalf("voters %v, want %v", v, rest)
	}
	idx := c.mustPut(l2, "b", "2")
	c.converged(c.ids, idx, 10*time.Second)
}

// ForceNewCluster: from one survivor's data, a one-member cluster with
// every committed write; the old members' IDs are refused.
func TestForceNewCluster(t *testing.T) {
	c := newCluster(t, memNet, 3, smallSnapshots)
	lead := c.leader(c.ids, 10*time.Second)
	var idx uint64
	for i := 0; i < 60; i++ {
		idx = c.mustPut(c.ids[i%3], fmt.Sprintf("k%d", i), fmt.Sprint(i))
	}
	c.converged(c.ids, idx, 10*time.Second)
	want := c.fsm(lead).writes()
	for _, id := range c.ids {
		c.kill(id)
	}
	survivor := c.ids[2]
	n, err := c.startErr(survivor, nil, func(cfg *Config) { cfg.ForceNewCluster = true })
	if err != nil {
		t.Fatal(err)
	}
	if got := c.leader([]uint64{survivor}, 10*time.Second); got != survivor {
		t.Fatalf("leader %x", got)
	}
	if ms := n.Members(); len(ms) != 1 || ms[0].ID != survivor {
		t.Fatalf("members after force: %+v", ms)
	}
	got := c.fsm(survivor).writes()
	if !slices.Equal(got[:len(want)], want) {
		t.Fatalf("committed writes lost: have %d, want %d", len(got), len(want))
	}
	idx = c.mustPut(survivor, "after-force", "1")
	// Restart normally: the new configuration is durable.
	c.kill(survivor)
	c.start(survivor, nil)
	c.leader([]uint64{survivor}, 10*time.Second)
	testutil.Eventually(t, 5*time.Second, "replay", func() bool { return c.node(survivor).AppliedIndex() >= idx })
	if v, _ := c.fsm(survivor).get("after-force"); v != "1" {
		t.Fatal("write after force lost on restart")
	}
	// An old member coming back is refused.
	old := c.start(c.ids[0], nil)
	select {
	case <-old.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("old member was not refused")
	}
	if !errors.Is(old.Err(), ErrRemoved) {
		t.Fatalf("old member stopped with %v", old.Err())
	}
	_ = filepath.Join
}
