package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func ent(owner, key string, epoch, version uint64, value string, deleted bool) *wireEntry {
	return &wireEntry{network: "n", table: "t", owner: owner, key: key, epoch: epoch, version: version,
		value: []byte(value), deleted: deleted}
}

// Every order of arrival of the same writes ends in the same state.
func TestAnyOrderOfArrivalConverges(t *testing.T) {
	writes := []*wireEntry{
		ent("a", "k1", 1, 1, "v1", false),
		ent("a", "k1", 1, 2, "v2", false),
		ent("a", "k2", 1, 3, "x", false),
		ent("a", "k2", 1, 4, "", true),
		ent("b", "k1", 7, 1, "b1", false),
		ent("b", "k1", 7, 2, "b2", false),
		ent("a", "k3", 1, 5, "y", false),
	}
	want := []Entry{
		{Network: "n", Table: "t", Owner: "a", Key: "k1", Value: []byte("v2"), Version: 2},
		{Network: "n", Table: "t", Owner: "a", Key: "k3", Value: []byte("y"), Version: 5},
		{Network: "n", Table: "t", Owner: "b", Key: "k1", Value: []byte("b2"), Version: 2},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		st := newState()
		order := r.Perm(len(writes))
		for _, j := range order {
			// Each arrives once or twice (gossip duplicates).
			for range 1 + r.IntN(2) {
				if _, _, err := st.apply(writes[j], time.Now(), time.Hour); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := st.entries("", ""); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("run %d, order %v: got %v, want %v", i, order, got, want)
		}
	}
}

func TestATombstoneKeepsALateCopyOutUntilReaped(t *testing.T) {
	st := newState()
	now := time.Now()
	st.apply(ent("a", "k", 1, 2, "", true), now, time.Minute)
	if _, changed, _ := st.apply(ent("a", "k", 1, 1, "old", false), now, time.Minute); changed {
		t.Error("an older copy replaced the tombstone")
	}
	if n := st.reap(now.Add(59 * time.Second)); n != 0 {
		t.Errorf("reaped %d before the reap time", n)
	}
	if n := st.reap(now.Add(time.Minute)); n != 1 {
		t.Errorf("reaped %d at the reap time, want 1", n)
	}
	if st.total != 0 || len(st.tables) != 0 || len(st.networks) != 0 {
		t.Errorf("state not empty after reaping: %d records, %d tables, %d networks", st.total, len(st.tables), len(st.networks))
	}
}

func TestANewEpochReplacesTheOwnersPreviousRun(t *testing.T) {
	st := newState()
	st.apply(ent("a", "k1", 1, 10, "old run", false), time.Now(), time.Hour)
	st.apply(ent("a", "k2", 1, 11, "old run", false), time.Now(), time.Hour)
	evs, _, _ := st.apply(ent("a", "k1", 2, 1, "new run", false), time.Now(), time.Hour)
	if len(evs) != 3 || evs[2].Kind != EventCreate {
		t.Errorf("events %v, want two deletes of the old run then a create", evs)
	}
	if _, changed, _ := st.apply(ent("a", "k2", 1, 12, "late", false), time.Now(), time.Hour); changed {
		t.Error("an entry of the previous run was accepted after the new one")
	}
	got := st.entries("", "")
	if len(got) != 1 || !bytes.Equal(got[0].Value, []byte("new run")) {
		t.Errorf("entries %v, want only the new run's", got)
	}
}

func TestStateBounds(t *testing.T) {
	st := newState()
	for i := range MaxEntriesPerNode {
		if _, _, err := st.apply(ent("a", fmt.Sprint(i), 1, uint64(i+1), "v", false), time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := st.apply(ent("a", "one more", 1, 1<<20, "v", false), time.Now(), time.Hour)
	if !errors.Is(err, ErrOverLimit) {
		t.Errorf("entry %d of one node: %v, want ErrOverLimit", MaxEntriesPerNode+1, err)
	}
	st = newState()
	for i := range MaxTablesPerNetwork {
		e := ent("a", "k", 1, uint64(i+1), "v", false)
		e.table = fmt.Sprint("t", i)
		if _, _, err := st.apply(e, time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	e := ent("a", "k", 1, 100, "v", false)
	e.table = "one more"
	if _, _, err := st.apply(e, time.Now(), time.Hour); !errors.Is(err, ErrOverLimit) {
		t.Errorf("table %d of one network: %v, want ErrOverLimit", MaxTablesPerNetwork+1, err)
	}
}

func TestWireRoundTripAndBounds(t *testing.T) {
	e := ent("node-a", "task", 5, 6, "10.0.0.1:80", true)
	e.sig = bytes.Repeat([]byte{7}, 70)
	e.certFP[0] = 9
	got, err := decodeEntryMsg(encodeEntryMsg(e)[1:])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.signedBytes(), e.signedBytes()) || !bytes.Equal(got.sig, e.sig) {
		t.Errorf("round trip changed the entry: %+v", got)
	}
	e.reapIn = 1500 * time.Millisecond
	bt, err := decodeBatch(encodeBatch(&batch{certs: []certChain{{owner: "node-a", der: [][]byte{{1, 2, 3}}}}, entries: []*wireEntry{e}})[1:])
	if err != nil {
		t.Fatal(err)
	}
	if len(bt.certs) != 1 || len(bt.entries) != 1 || bt.entries[0].reapIn != e.reapIn {
		t.Errorf("batch round trip: %+v", bt)
	}
	// A value length over the bound is refused before it is read.
	msg := encodeEntryMsg(ent("a", "k", 1, 1, "v", false))[1:]
	i := bytes.Index(msg, []byte{0, 1, 'v'})
	msg[i], msg[i+1] = 0xff, 0xff
	if _, err := decodeEntryMsg(msg); !errors.Is(err, errMalformed) {
		t.Errorf("oversized value length: %v, want errMalformed", err)
	}
}

// The largest entry fits in one gossip packet (see the bounds' comment).
func TestTheLargestEntryFitsInAGossipPacket(t *testing.T) {
	long := func(n int) string { return string(bytes.Repeat([]byte{'x'}, n)) }
	e := &wireEntry{network: long(MaxNameLen), table: long(MaxNameLen), owner: long(MaxNameLen), key: long(MaxKeyLen),
		value: make([]byte, MaxValueSize), sig: make([]byte, MaxSignatureSize)}
	if n := len(encodeEntryMsg(e)); n > maxCertBroadcast {
		t.Errorf("largest entry message is %d bytes, more than the %d a packet carries", n, maxCertBroadcast)
	}
	// And the largest push/pull state leaves MaxEntries' comment's room
	// for certificate chains under memberlist's limit.
	e.reapIn = time.Hour
	record := len(encodeBatch(&batch{entries: []*wireEntry{e}})) - len(encodeBatch(&batch{}))
	if n := MaxEntries*record + maxStateFloors*(record-4); n > MaxBatchBytes-1_400_000 {
		t.Errorf("largest state is %d bytes of records and floors: less than 1.4 MB of the %d left for certificates", n, MaxBatchBytes)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeEntryMsg(ent("a", "k", 1, 1, "v", false)))
	f.Add(encodeBatch(&batch{certs: []certChain{{owner: "a", der: [][]byte{{1}}}}}))
	f.Add(encodeRequest(request{from: "a", flags: 3}))
	f.Add(encodeReply("a", &batch{entries: []*wireEntry{ent("a", "k", 1, 2, "v", false)}, floors: []*wireEntry{ent("a", "j", 1, 3, "", true)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		switch b[0] {
		case msgEntry:
			_, _ = decodeEntryMsg(b[1:])
		case msgBatch:
			_, _ = decodeBatch(b[1:])
		case msgRequest:
			_, _ = decodeRequest(b[1:])
		case msgReply:
			_, _, _ = decodeReply(b[1:])
		}
	})
}
