package gossip

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// convergeTimeout bounds how long a change may take to reach every member
// in these tests: gossip takes well under a second, but on a loaded 2-core
// machine under -race a lost packet waits for the next push/pull (3-6 s
// here), and a starved member may be falsely declared dead and come back.
const convergeTimeout = 60 * time.Second

func TestFiftyMembersConvergeAcrossAKeyRotation(t *testing.T) {
	ca := newTestCA(t, "root")
	start := time.Now()
	ms := startCluster(t, 50, func(i int) Config { return testConfig(t, ca, fmt.Sprintf("node-%02d", i)) })
	t.Logf("cluster formed in %v", time.Since(start))
	want := expected{}
	for i, m := range ms {
		want.put(t, m, "app", "endpoints", "task-a", []byte(fmt.Sprintf("10.0.0.%d:80", i)))
		want.put(t, m, "db", "endpoints", "task-b", []byte(fmt.Sprintf("10.0.1.%d:3306", i)))
	}
	waitTables(t, ms, want.entries(), convergeTimeout)
	t.Logf("first tables in %v", time.Since(start))

	oldKey, newKey := testKey(1), testKey(2)
	// Rotation step 1: the new key is accepted everywhere before anyone
	// sends with it.
	for _, m := range ms {
		if err := m.SetKeys(oldKey, newKey); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range ms[:10] {
		want.put(t, m, "app", "endpoints", "task-a", []byte(fmt.Sprintf("10.0.2.%d:80", i)))
	}
	// Step 2, the overlap: half the members send with the new key while
	// the others still send with the old one, and changes keep flowing.
	for _, m := range ms {
		if err := m.SetKeys(newKey, oldKey); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms[10:20] {
		want.del(t, m, "db", "endpoints", "task-b")
	}
	waitTables(t, ms, want.entries(), convergeTimeout)
	t.Logf("overlap tables in %v", time.Since(start))
	// Step 3: the old key is dropped.
	for _, m := range ms {
		if err := m.SetKeys(newKey); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range ms[20:30] {
		want.put(t, m, "web", "endpoints", "task-c", []byte(fmt.Sprintf("10.0.3.%d:8080", i)))
		want.del(t, m, "app", "endpoints", "task-a")
	}
	waitTables(t, ms, want.entries(), convergeTimeout)
	waitMembers(t, ms, convergeTimeout)
	for _, m := range ms {
		if s := m.Stats(); s.Dropped() != 0 || s.Malformed != 0 {
			t.Errorf("%s dropped entries among honest members: %+v", m.NodeID(), s)
		}
	}
}

func TestAMemberWithAStaleKeyIsRefused(t *testing.T) {
	ca := newTestCA(t, "root")
	cfgFor := func(i int) Config { return testConfig(t, ca, fmt.Sprintf("node-%d", i)) }
	ms := startCluster(t, 3, cfgFor)
	for _, keys := range [][][]byte{{testKey(1), testKey(2)}, {testKey(2), testKey(1)}, {testKey(2)}} {
		for _, m := range ms {
			if err := m.SetKeys(keys[0], keys[1:]...); err != nil {
				t.Fatal(err)
			}
		}
	}
	stale := startMember(t, cfgFor(3)) // still on key 1, now dropped everywhere
	if err := stale.Put("app", "endpoints", "task", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Join([]string{ms[0].Addr()}); err == nil {
		t.Fatal("a member with a stale key joined")
	}
	for _, m := range ms {
		if got := m.Members(); len(got) != 2 {
			t.Errorf("%s sees %v, want only the two other current members", m.NodeID(), got)
		}
		if _, ok := m.Get("app", "endpoints", "node-3", "task"); ok {
			t.Errorf("%s holds an entry of the stale member", m.NodeID())
		}
	}
	if got := stale.Members(); len(got) != 0 {
		t.Errorf("the stale member sees %v", got)
	}
}

// A node removed from the cluster is left out of the next key rotation:
// the others stop understanding it, declare it dead, and drop its entries.
func TestRotatingAMemberOutRemovesItsEntries(t *testing.T) {
	ca := newTestCA(t, "root")
	ms := startCluster(t, 4, func(i int) Config { return fastFailureConfig(testConfig(t, ca, fmt.Sprintf("node-%d", i))) })
	removed, rest := ms[3], ms[:3]
	logs := watchAll(rest)
	want := expected{}
	for _, m := range ms {
		want.put(t, m, "app", "endpoints", "task", []byte(m.NodeID()))
	}
	waitTables(t, ms, want.entries(), convergeTimeout)
	delete(want, entryID{"app", "endpoints", removed.NodeID(), "task"})
	for _, keys := range [][][]byte{{testKey(1), testKey(2)}, {testKey(2), testKey(1)}, {testKey(2)}} {
		for _, m := range rest {
			if err := m.SetKeys(keys[0], keys[1:]...); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitTables(t, rest, want.entries(), convergeTimeout)
	waitNodeDown(t, logs, removed.NodeID())
}

// fastFailureConfig is cfg with the default failure detection (probe every
// 200 ms, suspicion 0.8 s once confirmed, 4.8 s otherwise, at these sizes),
// for the tests of node death: they run it under -race on a shared machine,
// where a false death of a live member fails TestAKilledNodesEntriesLeaveEveryTable.
func fastFailureConfig(cfg Config) Config {
	d := DefaultConfig()
	cfg.ProbeInterval, cfg.ProbeTimeout = d.ProbeInterval, d.ProbeTimeout
	cfg.SuspicionMult, cfg.SuspicionMaxTimeoutMult = d.SuspicionMult, d.SuspicionMaxTimeoutMult
	return cfg
}

// deathTimeout bounds detection plus the longest suspicion of
// fastFailureConfig, with ample slack for a loaded machine.
const deathTimeout = 30 * time.Second

func watchAll(ms []*Member) map[string]*eventLog {
	logs := map[string]*eventLog{}
	for _, m := range ms {
		l := &eventLog{}
		logs[m.NodeID()] = l
		stop := m.Watch("", "", l.add)
		_ = stop // stopped by Close
	}
	return logs
}

func waitNodeDown(t *testing.T, logs map[string]*eventLog, node string) {
	t.Helper()
	testutil.EventuallyWhy(t, deathTimeout, node+" reported down everywhere", func() (bool, string) {
		for id, l := range logs {
			if !l.has(func(ev Event) bool { return ev.Kind == EventNodeDown && ev.Entry.Owner == node }) {
				return false, id + " has not seen it"
			}
		}
		return true, ""
	})
}

func TestAKilledNodesEntriesLeaveEveryTable(t *testing.T) {
	ca := newTestCA(t, "root")
	ms := startCluster(t, 5, func(i int) Config { return fastFailureConfig(testConfig(t, ca, fmt.Sprintf("node-%d", i))) })
	victim, rest := ms[4], ms[:4]
	want := expected{}
	for _, m := range ms {
		want.put(t, m, "app", "endpoints", "task-1", []byte(m.NodeID()))
		want.put(t, m, "app", "endpoints", "task-2", []byte(m.NodeID()))
	}
	waitTables(t, ms, want.entries(), convergeTimeout)
	logs := watchAll(rest)

	if err := victim.Close(); err != nil { // no leave message: others must detect it
		t.Fatal(err)
	}
	for k := range want {
		if k.owner == victim.NodeID() {
			delete(want, k)
		}
	}
	waitTables(t, rest, want.entries(), deathTimeout)
	waitNodeDown(t, logs, victim.NodeID())
	for id, l := range logs {
		var deleted []string
		for _, ev := range l.list() {
			if ev.Kind == EventDelete && ev.Entry.Owner == victim.NodeID() {
				deleted = append(deleted, ev.Entry.Key)
			}
			if ev.Kind == EventNodeDown && len(deleted) != 2 {
				t.Errorf("%s saw node-down after %d delete events, want both entries deleted first", id, len(deleted))
			}
		}
	}
}

func TestALeavingNodesEntriesLeaveEveryTable(t *testing.T) {
	ca := newTestCA(t, "root")
	ms := startCluster(t, 3, func(i int) Config { return testConfig(t, ca, fmt.Sprintf("node-%d", i)) })
	leaver, rest := ms[2], ms[:2]
	want := expected{}
	for _, m := range ms {
		want.put(t, m, "app", "endpoints", "task", []byte(m.NodeID()))
	}
	waitTables(t, ms, want.entries(), convergeTimeout)
	logs := watchAll(rest)
	if err := leaver.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	delete(want, entryID{"app", "endpoints", leaver.NodeID(), "task"})
	waitTables(t, rest, want.entries(), convergeTimeout)
	waitNodeDown(t, logs, leaver.NodeID())
}

func TestWatchSeesCreateUpdateDelete(t *testing.T) {
	ca := newTestCA(t, "root")
	ms := startCluster(t, 2, func(i int) Config { return testConfig(t, ca, fmt.Sprintf("node-%d", i)) })
	l := &eventLog{}
	stop := ms[1].Watch("app", "endpoints", l.add)
	defer stop()
	if err := ms[0].Put("other", "endpoints", "x", []byte("filtered out")); err != nil {
		t.Fatal(err)
	}
	// Each step waits for the previous one to arrive: gossip sends only
	// the newest version of an entry it has not sent yet, so quick
	// successive writes may reach others as their last one only.
	steps := []struct {
		do   func() error
		want string
	}{
		{func() error { return ms[0].Put("app", "endpoints", "task", []byte("v1")) }, "create v1"},
		{func() error { return ms[0].Put("app", "endpoints", "task", []byte("v2")) }, "update v2"},
		{func() error { return ms[0].Delete("app", "endpoints", "task") }, "delete v2"},
	}
	var want []string
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		want = append(want, s.want)
		testutil.EventuallyWhy(t, convergeTimeout, s.want, func() (bool, string) {
			var got []string
			for _, ev := range l.list() {
				got = append(got, ev.Kind.String()+" "+string(ev.Entry.Value))
			}
			return strings.Join(got, ",") == strings.Join(want, ","), strings.Join(got, ",")
		})
	}
}

// An entry of the largest size, names and key reaches another member by
// gossip alone, in one UDP packet: push/pull, which would carry it over
// TCP, does not run after the join.
func TestTheLargestEntryGoesByGossip(t *testing.T) {
	ca := newTestCA(t, "root")
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	ids := []string{long("a", MaxNameLen-1) + "0", long("a", MaxNameLen-1) + "1"}
	ms := startCluster(t, 2, func(i int) Config {
		cfg := testConfig(t, ca, ids[i])
		cfg.PushPullInterval = time.Hour
		return cfg
	})
	network, table, key := long("n", MaxNameLen), long("t", MaxNameLen), long("k", MaxKeyLen)
	value := []byte(long("v", MaxValueSize))
	if err := ms[0].Put(network, table, key, value); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, convergeTimeout, "the largest entry to arrive", func() (bool, string) {
		e, ok := ms[1].Get(network, table, ids[0], key)
		return ok && string(e.Value) == string(value), fmt.Sprintf("%+v", ms[1].Stats())
	})
}
