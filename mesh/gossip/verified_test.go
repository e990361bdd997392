package gossip

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/memberlist"
)

// A node declared dead and back (a false suspicion) has all its entries
// dropped and fetched again: the copies come back identical, and are
// taken without their signatures or the Admit hook checked a second time.
func TestEntriesCheckedOnceAcrossAFalseDeath(t *testing.T) {
	ca := newTestCA(t, "root")
	var admits atomic.Int64
	ms := startCluster(t, 2, func(i int) Config {
		cfg := testConfig(t, ca, fmt.Sprintf("node-%d", i))
		cfg.Admit = func(owner, network, table, key string, value []byte) error {
			admits.Add(1)
			return nil
		}
		return cfg
	})
	a, b := ms[0], ms[1]
	want := expected{}
	for i := range 20 {
		want.put(t, a, "app", "endpoints", fmt.Sprintf("task-%d", i), []byte("backend"))
	}
	waitTables(t, ms, want.entries(), convergeTimeout)
	checked, admitted := b.Stats().SignaturesChecked, admits.Load()
	if checked < 20 || admitted < 20 {
		t.Fatalf("b checked %d signatures and admitted %d entries, want at least 20 of each", checked, admitted)
	}

	// b declares a dead and sees it back, as memberlist would tell it.
	b.mu.Lock()
	node := *b.alive[a.NodeID()]
	b.mu.Unlock()
	(*events)(b).NotifyLeave(&memberlist.Node{Name: a.NodeID()})
	if n := len(entriesOf(b, a.NodeID())); n != 0 {
		t.Fatalf("b holds %d of a's entries after a was declared dead, want none", n)
	}
	(*events)(b).NotifyJoin(&node)
	waitTables(t, ms, want.entries(), convergeTimeout)
	if got := b.Stats().SignaturesChecked; got != checked {
		t.Errorf("b checked %d signatures after a came back, want none more than the %d before", got-checked, checked)
	}
	if got := admits.Load(); got != admitted {
		t.Errorf("Admit ran %d more times after a came back, want none", got-admitted)
	}

	// A changed entry is a new one: checked.
	want.put(t, a, "app", "endpoints", "task-0", []byte("moved"))
	waitTables(t, ms, want.entries(), convergeTimeout)
	if got := b.Stats().SignaturesChecked; got <= checked {
		t.Errorf("b took a changed entry without checking its signature (%d checks, %d before)", got, checked)
	}
}

// The cache stays within its bound and keeps what each key passed.
func TestVerifiedCacheBound(t *testing.T) {
	var c verifiedCache
	for i := range maxVerified + 100 {
		c.add(verifiedKey([]byte(fmt.Sprint(i)), nil), signatureChecked)
	}
	if n := len(c.seen); n != maxVerified {
		t.Errorf("cache holds %d keys, want the bound %d", n, maxVerified)
	}
	k := verifiedKey([]byte("x"), []byte("sig"))
	c.add(k, signatureChecked)
	c.add(k, admitted)
	if got := c.get(k); got != signatureChecked|admitted {
		t.Errorf("key verified as %b, want both", got)
	}
	if got := c.get(verifiedKey([]byte("x"), []byte("sig2"))); got != 0 {
		t.Errorf("another signature over the same bytes hit the cache (%b)", got)
	}
}

func entriesOf(m *Member, owner string) []Entry {
	var out []Entry
	m.Walk("app", "endpoints", func(e Entry) bool {
		if e.Owner == owner {
			out = append(out, e)
		}
		return true
	})
	return out
}
