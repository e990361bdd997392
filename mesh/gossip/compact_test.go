package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// heldOf returns how many live entries and tombstones of owner m holds.
func (m *Member) heldOf(owner string) (live, tombs int, floor uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.st.owners[owner]; o != nil {
		return o.live, o.tombs, o.floor
	}
	return 0, 0, 0
}

// signedCopy returns the signed entry m holds for one of its keys, as a
// late copy of it would arrive.
func (m *Member) signedCopy(t *testing.T, network, table, key string) *wireEntry {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.st.get(entryID{network, table, m.cfg.NodeID, key})
	if r == nil {
		t.Fatalf("%s holds no %s/%s/%s", m.cfg.NodeID, network, table, key)
	}
	c := *r.e
	return &c
}

func setTombCap(ms []*Member, n int) {
	for _, m := range ms {
		m.mu.Lock()
		m.st.tombCap = n
		m.mu.Unlock()
	}
}

// A node running short-lived tasks creates and deletes an entry per task
// for as long as it lives: its Puts never fail for tombstones, and what it
// holds stays within the bounds, however many it deleted.
func TestAChurningNodeNeverRunsOutOfEntries(t *testing.T) {
	ca := newTestCA(t, "root")
	m := startMember(t, testConfig(t, ca, "node-0"))
	const churn = 20000
	for i := range 10 {
		if err := m.Put("app", "endpoints", fmt.Sprintf("long-%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range churn {
		key := fmt.Sprintf("task-%d", i)
		if err := m.Put("app", "endpoints", key, []byte("10.0.0.1:80")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if err := m.Delete("app", "endpoints", key); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
		if live, tombs, _ := m.heldOf("node-0"); live > 11 || tombs > ownTombstones {
			t.Fatalf("after %d deletions: %d live entries and %d tombstones held, want at most 11 and %d", i+1, live, tombs, ownTombstones)
		}
	}
	live, tombs, floor := m.heldOf("node-0")
	t.Logf("after %d deletions: %d live, %d tombstones, floor %d", churn, live, tombs, floor)
	if got := len(m.Entries("", "")); got != 10 {
		t.Errorf("%d entries, want the 10 long-lived ones", got)
	}
	for i := range 10 {
		if _, ok := m.Get("app", "endpoints", "node-0", fmt.Sprintf("long-%d", i)); !ok {
			t.Errorf("long-lived entry %d is gone", i)
		}
	}
}

// Members that receive a churning node's entries hold no more of its
// tombstones than the bound; a late copy of an entry it deleted and
// compacted away does not come back, on the members that saw the
// compaction nor on one that joins after it (push/pull carries the
// floor); and its long-lived entries, re-published under the floor, stay.
func TestCompactedEntriesDoNotComeBack(t *testing.T) {
	ca := newTestCA(t, "root")
	cfgFor := func(i int) Config { return testConfig(t, ca, fmt.Sprintf("node-%d", i)) }
	ms := startCluster(t, 3, cfgFor)
	const tombCap, churn = 32, 600
	setTombCap(ms, tombCap)
	owner := ms[0]
	logs := watchAll(ms[1:])
	want := expected{}
	want.put(t, owner, "app", "endpoints", "long", []byte("stays"))
	want.put(t, ms[1], "app", "endpoints", "other", []byte("x"))
	waitTables(t, ms, want.entries(), convergeTimeout)
	var late []*wireEntry // signed copies of entries deleted since
	for i := range churn {
		key := fmt.Sprintf("task-%d", i)
		if err := owner.Put("app", "endpoints", key, []byte("10.0.0.1:80")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if i%100 == 0 {
			late = append(late, owner.signedCopy(t, "app", "endpoints", key))
		}
		if err := owner.Delete("app", "endpoints", key); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
		for _, m := range ms {
			if _, tombs, _ := m.heldOf(owner.NodeID()); tombs > tombCap {
				t.Fatalf("after %d deletions %s holds %d tombstones of the owner, more than %d", i+1, m.NodeID(), tombs, tombCap)
			}
		}
	}
	waitTables(t, ms, want.entries(), convergeTimeout)
	_, _, floor := owner.heldOf(owner.NodeID())
	if floor == 0 {
		t.Fatal("the owner never compacted")
	}
	// Every member learns the floor: from the owner's next entries, or
	// push/pull.
	joiner := startMember(t, cfgFor(3))
	if _, err := joiner.Join([]string{ms[1].Addr()}); err != nil {
		t.Fatal(err)
	}
	ms = append(ms, joiner)
	setTombCap(ms[3:], tombCap)
	waitTables(t, ms, want.entries(), convergeTimeout)
	testutil.EventuallyWhy(t, convergeTimeout, "every member to know the owner's floor", func() (bool, string) {
		for _, m := range ms[1:] {
			if _, _, f := m.heldOf(owner.NodeID()); f < floor {
				return false, fmt.Sprintf("%s's floor is %d, the owner's %d", m.NodeID(), f, floor)
			}
		}
		return true, ""
	})
	for _, m := range ms[1:] {
		for _, e := range late {
			if e.version > floor {
				t.Fatalf("entry %s version %d is above the floor %d: not compacted", e.key, e.version, floor)
			}
			(*delegate)(m).NotifyMsg(encodeEntryMsg(e))
			(*delegate)(m).MergeRemoteState(encodeBatch(&batch{entries: []*wireEntry{e}}), false)
		}
		if _, tombs, _ := m.heldOf(owner.NodeID()); tombs > tombCap {
			t.Errorf("%s holds %d tombstones of the owner, more than %d", m.NodeID(), tombs, tombCap)
		}
		if s := m.Stats(); s.OverLimit != 0 || s.Dropped() != 0 {
			t.Errorf("%s dropped entries of an honest owner: %+v", m.NodeID(), s)
		}
	}
	// The late copies are refused as they arrive, so the tables are as
	// the owner left them. Its long-lived entry reaches every member
	// re-published above the floor, and none saw it deleted on the way.
	testutil.EventuallyWhy(t, convergeTimeout, "the long-lived entry re-published everywhere", func() (bool, string) {
		for _, m := range ms {
			if e, ok := m.Get("app", "endpoints", owner.NodeID(), "long"); !ok || e.Version <= floor {
				return false, fmt.Sprintf("%s holds it at version %d (%v), the floor is %d", m.NodeID(), e.Version, ok, floor)
			}
		}
		return true, ""
	})
	for id, l := range logs {
		if l.has(func(ev Event) bool { return ev.Kind == EventDelete && ev.Entry.Key == "long" }) {
			t.Errorf("%s saw the long-lived entry deleted", id)
		}
	}
	for _, m := range ms {
		if got := m.Entries("", ""); !sameEntries(got, want.entries()) {
			t.Errorf("%s holds %s, want %s after late copies", m.NodeID(), fmtEntries(got), fmtEntries(want.entries()))
		}
	}
}

// A member that missed an entry's deletion, and holds it live below its
// owner's floor once the tombstone is compacted everywhere, asks the owner
// for its entries and drops it.
func TestAMissedDeletionIsDroppedBelowTheFloor(t *testing.T) {
	ca := newTestCA(t, "root")
	ms := startCluster(t, 2, func(i int) Config { return testConfig(t, ca, fmt.Sprintf("node-%d", i)) })
	setTombCap(ms, 32)
	owner, other := ms[0], ms[1]
	if err := owner.Put("app", "endpoints", "zombie", []byte("deleted")); err != nil {
		t.Fatal(err)
	}
	zombie := owner.signedCopy(t, "app", "endpoints", "zombie")
	if err := owner.Delete("app", "endpoints", "zombie"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		key := fmt.Sprint("task-", i)
		if err := owner.Put("app", "endpoints", key, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := owner.Delete("app", "endpoints", key); err != nil {
			t.Fatal(err)
		}
	}
	_, _, floor := owner.heldOf(owner.NodeID())
	testutil.EventuallyWhy(t, convergeTimeout, "the other member to know the floor", func() (bool, string) {
		_, _, f := other.heldOf(owner.NodeID())
		return f >= floor && f > zombie.version, fmt.Sprintf("floor %d, owner's %d, zombie version %d", f, floor, zombie.version)
	})
	// As if the other member had missed the deletion: it holds the entry
	// live, below the floor, where no copy can replace or delete it.
	l := &eventLog{}
	defer other.Watch("", "", l.add)()
	other.mu.Lock()
	o := other.st.owners[owner.NodeID()]
	if _, err := other.st.store(o, zombie, time.Now(), time.Hour); err != nil {
		other.mu.Unlock()
		t.Fatal(err)
	}
	o.staleAt = time.Now()
	other.mu.Unlock()
	testutil.Eventually(t, convergeTimeout, "the zombie entry dropped", func() bool {
		_, ok := other.Get("app", "endpoints", owner.NodeID(), "zombie")
		return !ok
	})
	testutil.Eventually(t, convergeTimeout, "its delete event", func() bool {
		return l.has(func(ev Event) bool { return ev.Kind == EventDelete && ev.Entry.Key == "zombie" })
	})
}

func fmtEntries(es []Entry) string {
	s := ""
	for _, e := range es {
		s += fmt.Sprintf("[%s/%s/%s/%s=%q v%d]", e.Network, e.Table, e.Owner, e.Key, e.Value, e.Version)
	}
	return s
}

// The state's side of floors, with no network: a floor drops the
// tombstones below it at once and a live record below it (one whose
// deletion was missed) after staleGrace; entries below it are refused, and
// a proof raises it without being stored.
func TestAFloorDropsWhatItCovers(t *testing.T) {
	st := newState()
	now := time.Now()
	for _, e := range []*wireEntry{
		ent("a", "deleted", 1, 2, "", true),
		ent("a", "missed", 1, 3, "zombie", false), // its deletion (5) never arrives
		ent("a", "kept", 1, 7, "v", false),
	} {
		if _, _, err := st.apply(e, now, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	proof := ent("a", "gone", 1, 9, "", true)
	proof.floor = 6
	if evs, err := st.takeFloor(proof, now); err != nil || len(evs) != 0 {
		t.Fatalf("takeFloor: %v, %v", evs, err)
	}
	if st.get(proof.id()) != nil {
		t.Error("a proof was stored")
	}
	o := st.owners["a"]
	if o.floor != 6 || o.tombs != 0 || o.live != 2 {
		t.Errorf("after the floor: floor %d, %d tombstones, %d live; want 6, 0, 2", o.floor, o.tombs, o.live)
	}
	if st.wants(ent("a", "deleted", 1, 1, "late", false)) || st.wants(ent("a", "new", 1, 6, "late", false)) {
		t.Error("an entry at or below the floor is wanted")
	}
	if !st.wants(ent("a", "new", 1, 10, "v", false)) || !st.wants(ent("a", "x", 2, 1, "next epoch", false)) {
		t.Error("an entry above the floor, or of a newer epoch, is refused")
	}
	if got := st.stale(now.Add(staleGrace-time.Millisecond), ""); len(got) != 0 {
		t.Errorf("owners %v to ask before the grace", got)
	}
	if got := st.stale(now.Add(staleGrace), ""); len(got) != 1 || got[0] != "a" {
		t.Errorf("owners %v to ask after the grace, want [a]", got)
	}
	evs := st.sweep("a")
	if len(evs) != 1 || evs[0].Kind != EventDelete || evs[0].Entry.Key != "missed" {
		t.Errorf("sweep: %v, want the delete of the missed entry", evs)
	}
	if got := st.entries("", ""); len(got) != 1 || got[0].Key != "kept" || st.total != 1 {
		t.Errorf("entries %v (%d records), want only kept", got, st.total)
	}
}

// A re-published entry replaces the old version without a delete, and
// once all are re-published there is no one to ask.
func TestARepublishedEntryDoesNotFlap(t *testing.T) {
	st := newState()
	now := time.Now()
	st.apply(ent("a", "long", 1, 1, "v", false), now, time.Hour)
	st.apply(ent("a", "other", 1, 2, "v", false), now, time.Hour)
	again := ent("a", "long", 1, 5, "v", false)
	again.floor = 4
	evs, _, _ := st.apply(again, now, time.Hour)
	if len(evs) != 1 || evs[0].Kind != EventUpdate {
		t.Errorf("events %v, want one update", evs)
	}
	other := ent("a", "other", 1, 6, "v", false)
	other.floor = 4
	st.apply(other, now.Add(staleGrace/2), time.Hour)
	if got := st.stale(now.Add(staleGrace), ""); len(got) != 0 {
		t.Errorf("owners %v to ask, though every entry was re-published", got)
	}
}

// A member holds at most tombCap tombstones of one owner: more are dropped.
func TestTombstonesPerOwnerAreBounded(t *testing.T) {
	st := newState()
	st.tombCap = 4
	for i := range 6 {
		_, _, err := st.apply(ent("a", fmt.Sprint(i), 1, uint64(i+1), "", true), time.Now(), time.Hour)
		if (err != nil) != (i >= 4) {
			t.Errorf("tombstone %d: %v", i, err)
		}
	}
	if o := st.owners["a"]; o.tombs != 4 || st.total != 4 {
		t.Errorf("%d tombstones, %d records held, want 4", o.tombs, st.total)
	}
}

// The MemoryHub keeps no tombstones (no late copy can arrive), so a node
// churning there never runs out of entries either.
func TestAChurningMemoryNodeNeverRunsOutOfEntries(t *testing.T) {
	n, err := NewMemoryHub().Join("node-a")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20000 {
		key := fmt.Sprintf("task-%d", i)
		if err := n.Put("app", "endpoints", key, []byte("x")); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if err := n.Delete("app", "endpoints", key); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	if st := n.hub.st; st.total != 0 || len(st.owners["node-a"].entries) != 0 {
		t.Errorf("%d records held after every entry was deleted", st.total)
	}
}
