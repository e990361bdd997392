package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// walLog is what writeBatches wrote: the entries in order, and the size
// of the only segment before the first Save (ends[0]) and after each.
type walLog struct {
	ents []*raftpb.Entry
	ends []int64
	per  int
}

// writeBatches writes n Saves of per entries each, every one with a hard
// state committing the entries of the Save before it, to a new data dir.
func writeBatches(t testing.TB, dir string, n, per int) walLog {
	t.Helper()
	s, err := openTestStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Small steps of preallocation: the tests copy these dirs many times.
	s.wal.prealloc = 4096
	l := walLog{per: per, ends: []int64{s.wal.size}}
	for b := 0; b < n; b++ {
		var ents []*raftpb.Entry
		for j := 0; j < per; j++ {
			i := uint64(b*per + j + 1)
			ents = append(ents, entry(i, 1, fmt.Sprintf("entry-%04d-%s", i, strings.Repeat("x", int(i%7)))))
		}
		if err := s.Save(hardState(1, 1, uint64(b*per)), ents, nil, true); err != nil {
			t.Fatal(err)
		}
		l.ents = append(l.ents, ents...)
		l.ends = append(l.ends, s.wal.size)
	}
	return l
}

// copyDir copies a data dir (raft.db, wal/, snap/) to a new one.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// loadedLog returns the log and hard state the storage holds.
func loadedLog(t testing.TB, s *DiskStorage) ([]*raftpb.Entry, *raftpb.HardState) {
	t.Helper()
	fi, _ := s.FirstIndex()
	li, _ := s.LastIndex()
	var got []*raftpb.Entry
	if fi <= li {
		var err error
		if got, err = s.Entries(fi, li+1, 1<<62); err != nil {
			t.Fatal(err)
		}
	}
	hs, _, _ := s.InitialState()
	return got, hs
}

// openedState opens dir and returns its log, hard state and snapshot
// index.
func openedState(t testing.TB, dir string) ([]*raftpb.Entry, *raftpb.HardState, uint64) {
	t.Helper()
	s, err := openTestStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, hs := loadedLog(t, s)
	sn, _ := s.Snapshot()
	return got, hs, sn.GetMetadata().GetIndex()
}

// samePrefix fails unless got is written's first len(got) entries.
func samePrefix(t testing.TB, what string, got, written []*raftpb.Entry) {
	t.Helper()
	if len(got) > len(written) {
		t.Fatalf("%s: %d entries loaded, only %d written", what, len(got), len(written))
	}
	for i, e := range got {
		w := written[i]
		if e.GetIndex() != w.GetIndex() || e.GetTerm() != w.GetTerm() || !bytes.Equal(e.GetData(), w.GetData()) {
			t.Fatalf("%s: entry %d is not the one written (%v)", what, w.GetIndex(), e)
		}
	}
}

// A crash cuts the log's last write short at any byte: the log opens,
// holds every entry of every Save that returned before the cut (those were
// acknowledged) and nothing that was not written, and takes new writes
// after it that survive the next open.
func TestWALTornTail(t *testing.T) { plainAndSealed(t, testWALTornTail) }

func testWALTornTail(t *testing.T) {
	dir := t.TempDir()
	l := writeBatches(t, dir, 12, 3)
	seg := filepath.Join("wal", walName(1))
	total := l.ends[len(l.ends)-1]
	// Every byte of the last two Saves, and both sides of every boundary.
	cuts := map[int64]bool{}
	for at := l.ends[len(l.ends)-3]; at <= total; at++ {
		cuts[at] = true
	}
	for _, e := range l.ends {
		cuts[e-1], cuts[e], cuts[e+1] = true, true, true
	}
	cuts[0], cuts[3] = true, true
	for at := range cuts {
		if at < 0 || at > total {
			continue
		}
		d := copyDir(t, dir)
		if err := os.Truncate(filepath.Join(d, seg), at); err != nil {
			t.Fatal(err)
		}
		s, err := openTestStorage(d)
		if err != nil {
			t.Fatalf("cut at %d: %v", at, err)
		}
		s.wal.prealloc = 4096 // as writeBatches: a megabyte of zeros per cut is slow
		whole := 0
		for whole+1 < len(l.ends) && l.ends[whole+1] <= at {
			whole++
		}
		got, hs := loadedLog(t, s)
		samePrefix(t, fmt.Sprintf("cut at %d", at), got, l.ents)
		if len(got) < whole*l.per {
			t.Fatalf("cut at %d: %d entries loaded, the %d Saves before the cut wrote %d", at, len(got), whole, whole*l.per)
		}
		if whole > 0 && hs.GetCommit() < uint64((whole-1)*l.per) {
			t.Fatalf("cut at %d: commit %d, the last whole Save said %d", at, hs.GetCommit(), (whole-1)*l.per)
		}
		// The log goes on after the cut, and the next open agrees.
		next := entry(uint64(len(got)+1), 2, "after the cut")
		if err := s.Save(hardState(2, 1, uint64(len(got))), []*raftpb.Entry{next}, nil, true); err != nil {
			t.Fatalf("cut at %d: write after reopening: %v", at, err)
		}
		s.Close()
		s, err = openTestStorage(d)
		if err != nil {
			t.Fatalf("cut at %d, written again: %v", at, err)
		}
		again, _ := loadedLog(t, s)
		s.Close()
		samePrefix(t, fmt.Sprintf("cut at %d, written again", at), again, append(slices.Clone(got), next))
		if len(again) != len(got)+1 {
			t.Fatalf("cut at %d: %d entries after writing one more to %d", at, len(again), len(got))
		}
	}
}

// What a crash can leave after the last whole record (the preallocated
// zeros, random bytes, half a record, followed by zeros or not) is not
// replayed, and the log goes on after the last whole record.
func TestWALGarbageTail(t *testing.T) { plainAndSealed(t, testWALGarbageTail) }

func testWALGarbageTail(t *testing.T) {
	dir := t.TempDir()
	l := writeBatches(t, dir, 6, 2)
	seg := filepath.Join("wal", walName(1))
	orig, err := os.ReadFile(filepath.Join(dir, seg))
	if err != nil {
		t.Fatal(err)
	}
	orig = orig[:l.ends[len(l.ends)-1]] // the records, without the zeros after them
	rnd := make([]byte, 3000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	lastSave := orig[l.ends[len(l.ends)-2]:]
	lastRecord := lastSave[:walHdr+int(binary.BigEndian.Uint32(lastSave))]
	for name, tail := range map[string][]byte{
		"zeros":                     make([]byte, 4096),
		"random":                    rnd,
		"half a record":             lastRecord[:len(lastRecord)/2],
		"half a record, then zeros": append(slices.Clone(lastRecord[:len(lastRecord)/2]), make([]byte, 4096)...),
		"a length alone":            {0, 0, 0, 40},
	} {
		t.Run(name, func(t *testing.T) {
			d := copyDir(t, dir)
			if err := os.WriteFile(filepath.Join(d, seg), append(slices.Clone(orig), tail...), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := openTestStorage(d)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := loadedLog(t, s)
			samePrefix(t, name, got, l.ents)
			if len(got) != len(l.ents) {
				t.Fatalf("%d entries, want %d", len(got), len(l.ents))
			}
			b, _ := os.ReadFile(filepath.Join(d, seg))
			if len(b) < len(orig) || !bytes.Equal(b[:len(orig)], orig) || bytes.Count(b[len(orig):], []byte{0}) != len(b)-len(orig) {
				t.Fatalf("segment after opening: %d bytes, want the %d written and nothing but zeros after them", len(b), len(orig))
			}
			if name == "zeros" && len(b) != len(orig)+4096 {
				t.Fatalf("preallocated zeros cut off: %d bytes, want %d", len(b), len(orig)+4096)
			}
			// The next write goes right after the last whole record.
			next := entry(uint64(len(got)+1), 2, "after the tail")
			if err := s.Save(hardState(2, 1, 0), []*raftpb.Entry{next}, nil, true); err != nil {
				t.Fatal(err)
			}
			s.Close()
			again, _, _ := openedState(t, d)
			samePrefix(t, name+", written again", again, append(slices.Clone(l.ents), next))
			if len(again) != len(l.ents)+1 {
				t.Fatalf("%d entries after one more, want %d", len(again), len(l.ents)+1)
			}
		})
	}
}

// Damage to a record that was written whole (intact records follow it) is
// refused, wherever in the record it is: it is not a torn write, and
// cutting the log there would drop entries that were acknowledged.
func TestWALDamageIsRefused(t *testing.T) { plainAndSealed(t, testWALDamageIsRefused) }

func testWALDamageIsRefused(t *testing.T) {
	dir := t.TempDir()
	l := writeBatches(t, dir, 8, 3)
	seg := filepath.Join("wal", walName(1))
	for at := l.ends[3]; at < l.ends[4]; at++ {
		d := copyDir(t, dir)
		flip(t, filepath.Join(d, seg), int(at))
		s, err := openTestStorage(d)
		if err == nil {
			got, _ := loadedLog(t, s)
			s.Close()
			t.Fatalf("byte %d flipped: opened, with %d entries", at, len(got))
		}
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), walName(1)) {
			t.Fatalf("byte %d flipped: %v, want ErrCorrupt naming the segment", at, err)
		}
	}
}

// snapshotAt records a snapshot at index in s, with its data file.
func snapshotAt(t *testing.T, s *DiskStorage, index uint64) {
	t.Helper()
	term, err := s.Term(index)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := s.NewSnapshotSink(index, term)
	if err != nil {
		t.Fatal(err)
	}
	sink.Write([]byte(fmt.Sprintf("state at %d", index)))
	size, crc, err := sink.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSnapshot(index, &raftpb.ConfState{Voters: []uint64{1}}, snapRef{size, crc}.encode()); err != nil {
		t.Fatal(err)
	}
}

func segmentFiles(t *testing.T, dir string) []uint64 {
	t.Helper()
	seqs, err := listSegments(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// A log over many segments reads back whole; compaction deletes the
// segments behind it and a reopened log starts where the compacted one
// did; a missing segment, or damage in any segment but the last, is
// refused.
func TestWALSegments(t *testing.T) { plainAndSealed(t, testWALSegments) }

func testWALSegments(t *testing.T) {
	dir := t.TempDir()
	s, err := openTestStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.wal.segBytes = 1024
	var written []*raftpb.Entry
	for i := uint64(1); i <= 200; i += 4 {
		var ents []*raftpb.Entry
		for j := i; j < i+4; j++ {
			ents = append(ents, entry(j, 1, fmt.Sprintf("%d:%s", j, strings.Repeat("y", 40))))
		}
		if err := s.Save(hardState(1, 1, i-1), ents, nil, true); err != nil {
			t.Fatal(err)
		}
		written = append(written, ents...)
	}
	// A Ready that moves only the commit index, written without a sync.
	if err := s.Save(hardState(1, 1, 200), nil, nil, false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := len(segmentFiles(t, dir)); n < 8 {
		t.Fatalf("%d segments, want many", n)
	}
	s, err = openTestStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, hs := loadedLog(t, s)
	samePrefix(t, "reopened", got, written)
	if len(got) != 200 || hs.GetCommit() != 200 || hs.GetTerm() != 1 || hs.GetVote() != 1 {
		t.Fatalf("%d entries, hard state %v", len(got), hs)
	}
	before := len(segmentFiles(t, dir))
	snapshotAt(t, s, 150)
	if err := s.Compact(140); err != nil {
		t.Fatal(err)
	}
	after := segmentFiles(t, dir)
	if len(after) >= before {
		t.Fatalf("%d segments after compacting, %d before", len(after), before)
	}
	s.Close()
	s, err = openTestStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, hs = loadedLog(t, s)
	s.Close()
	if first := got[0].GetIndex(); first != 141 || len(got) != 60 || hs.GetCommit() != 200 {
		t.Fatalf("log [%d, %d] (%d entries) commit %d after compacting to 140, want [141, 200]", first, got[len(got)-1].GetIndex(), len(got), hs.GetCommit())
	}
	samePrefix(t, "compacted", got, written[140:])

	t.Run("missing segment", func(t *testing.T) {
		d := copyDir(t, dir)
		os.Remove(filepath.Join(d, "wal", walName(after[1])))
		if _, err := openTestStorage(d); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cut segment before the last", func(t *testing.T) {
		d := copyDir(t, dir)
		p := filepath.Join(d, "wal", walName(after[len(after)-2]))
		b, _ := os.ReadFile(p)
		os.WriteFile(p, b[:len(b)-3], 0o600)
		if _, err := openTestStorage(d); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not the last segment") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("renamed segment", func(t *testing.T) {
		d := copyDir(t, dir)
		last := after[len(after)-1]
		os.Rename(filepath.Join(d, "wal", walName(last)), filepath.Join(d, "wal", walName(last+1)))
		os.Rename(filepath.Join(d, "wal", walName(last-1)), filepath.Join(d, "wal", walName(last)))
		if _, err := openTestStorage(d); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("log removed", func(t *testing.T) {
		d := copyDir(t, dir)
		os.RemoveAll(filepath.Join(d, "wal"))
		if _, err := openTestStorage(d); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v", err)
		}
	})
}

// A snapshot installed from the leader replaces the log: the segments
// before it go, and a crash after the log has it but before raft.db does
// is completed on open.
func TestWALInstallSnapshot(t *testing.T) { plainAndSealed(t, testWALInstallSnapshot) }

func testWALInstallSnapshot(t *testing.T) {
	dir := t.TempDir()
	writeBatches(t, dir, 10, 5)
	s, err := openTestStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.wal.segBytes = 256
	if err := s.Save(hardState(1, 1, 50), []*raftpb.Entry{entry(51, 1, "a")}, nil, true); err != nil {
		t.Fatal(err)
	}
	sink, _ := s.NewSnapshotSink(500, 3)
	sink.Write([]byte("leader's state"))
	size, crc, err := sink.Commit()
	if err != nil {
		t.Fatal(err)
	}
	snap := &raftpb.Snapshot{Data: snapRef{size, crc}.encode(), Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(500)), Term: new(uint64(3)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}}}
	crashed := copyDir(t, dir) // before the install, for the crash below
	if err := s.Save(hardState(3, 2, 500), []*raftpb.Entry{entry(501, 3, "b")}, snap, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if seqs := segmentFiles(t, dir); len(seqs) != 1 {
		t.Fatalf("segments %v after installing a snapshot, want only the new one", seqs)
	}
	check := func(d string) {
		t.Helper()
		got, hs, si := openedState(t, d)
		if si != 500 || len(got) != 1 || got[0].GetIndex() != 501 || hs.GetTerm() != 3 || hs.GetCommit() != 500 {
			t.Fatalf("snapshot %d, log %v, hard state %v", si, got, hs)
		}
	}
	check(dir)

	// The crash: the log has the snapshot, raft.db does not.
	s, err = openTestStorage(crashed)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	err = s.wal.installSnapshot(snap, hardState(3, 2, 500), []*raftpb.Entry{entry(501, 3, "b")})
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	check(crashed)
	// raft.db has it now: the log's segment can go.
	s, _ = openTestStorage(crashed)
	_, snapInDB, _, err := s.readBolt(false)
	s.Close()
	if err != nil || snapInDB.GetMetadata().GetIndex() != 500 {
		t.Fatalf("raft.db's snapshot: %v %v", snapInDB.GetMetadata(), err)
	}
}

// A data dir of the first format (the log in raft.db) is migrated on
// open, also when an earlier migration was cut short, leaving its
// unfinished log behind.
func TestMigrateFormat1Storage(t *testing.T) { plainAndSealed(t, testMigrateFormat1Storage) }

func testMigrateFormat1Storage(t *testing.T) {
	src := filepath.Join("testdata", "format1", "m1")
	ents, hs, si := openedState(t, copyDir(t, src))
	if len(ents) == 0 || si == 0 || hs.GetCommit() == 0 {
		t.Fatalf("fixture: %d entries, snapshot %d, hard state %v", len(ents), si, hs)
	}
	for name, leftover := range map[string]func(d string){
		"clean": func(string) {},
		"unfinished log": func(d string) {
			os.MkdirAll(filepath.Join(d, "wal"), 0o700)
			os.WriteFile(filepath.Join(d, "wal", walName(1)), []byte("half a migration"), 0o600)
		},
		"unfinished temporary log": func(d string) {
			os.MkdirAll(filepath.Join(d, "wal.tmp"), 0o700)
			os.WriteFile(filepath.Join(d, "wal.tmp", walName(1)), []byte("half a migration"), 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := copyDir(t, src)
			leftover(d)
			for open := 0; open < 2; open++ {
				got, ghs, gsi := openedState(t, d)
				samePrefix(t, name, got, ents)
				if len(got) != len(ents) || ghs.GetCommit() != hs.GetCommit() || ghs.GetTerm() != hs.GetTerm() || gsi != si {
					t.Fatalf("open %d: %d entries (want %d), hard state %v (want %v), snapshot %d (want %d)",
						open, len(got), len(ents), ghs, hs, gsi, si)
				}
			}
			if _, err := os.Stat(filepath.Join(d, "wal.tmp")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("wal.tmp left behind: %v", err)
			}
		})
	}
}

// newClusterFromFixture starts the members of a cluster whose data dirs
// were written by an earlier version (testdata/format1: three members on
// the in-memory network, 90 keys, snapshots every 40 entries).
func newClusterFromFixture(t *testing.T, fixture string) *cluster {
	t.Helper()
	c := &cluster{
		t: t, kind: memNet, net: NewNetwork(), base: copyDir(t, fixture), tune: smallSnapshots,
		nodes: map[uint64]*Node{}, fsms: map[uint64]*kvFSM{}, addrs: map[uint64]string{},
		grpcTrs: map[uint64]*GRPCTransport{}, cut: map[[2]uint64]bool{},
	}
	for id := uint64(1); id <= 3; id++ {
		c.ids = append(c.ids, id)
		c.addrs[id] = fmt.Sprintf("mem-%d", id)
	}
	for _, id := range c.ids {
		c.start(id, nil)
	}
	t.Cleanup(c.stopAll)
	return c
}

// A cluster whose data dirs were written in the first format starts on
// them with every write they held, goes on, and restarts on the migrated
// dirs.
func TestMigrateFormat1Cluster(t *testing.T) {
	c := newClusterFromFixture(t, filepath.Join("testdata", "format1"))
	lead := c.leader(c.ids, 20*time.Second)
	idx := c.mustPut(lead, "after", "migration")
	c.converged(c.ids, idx, 20*time.Second)
	for _, id := range c.ids {
		for i := 0; i < 90; i++ {
			if v, ok := c.fsm(id).get(fmt.Sprintf("k%02d", i)); !ok || v != fmt.Sprintf("v%02d", i) {
				t.Fatalf("member %d: k%02d = %q, %v", id, i, v, ok)
			}
		}
		if _, err := os.Stat(filepath.Join(c.base, fmt.Sprintf("m%d", id), "wal", walName(1))); err != nil {
			t.Fatalf("member %d not migrated: %v", id, err)
		}
	}
	for i := 0; i < 50; i++ {
		idx = c.mustPut(lead, fmt.Sprintf("n%02d", i), "x")
	}
	c.restartAll()
	lead = c.leader(c.ids, 20*time.Second)
	idx = c.mustPut(lead, "after", "restart")
	c.converged(c.ids, idx, 20*time.Second)
	if got := c.fsm(lead).len(); got != 90+50+1 {
		t.Fatalf("%d keys after the restart, want %d", got, 90+50+1)
	}
}

// Members restarted from their files (a log over many segments,
// snapshots, compactions) come back with the same state and go on.
func TestRestartFromWAL(t *testing.T) { plainAndSealed(t, testRestartFromWAL) }

func testRestartFromWAL(t *testing.T) {
	var mu sync.Mutex
	open := map[string]*DiskStorage{}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range open {
			s.Close()
		}
	})
	maxSegs := 0
	c := newCluster(t, memNet, 3, func(cfg *Config) {
		smallSnapshots(cfg)
		mu.Lock()
		defer mu.Unlock()
		// The member was stopped: close what it used before reopening.
		if s := open[cfg.DataDir]; s != nil {
			s.Close()
		}
		s, err := openTestStorage(cfg.DataDir)
		if err != nil {
			t.Fatalf("reopen %s: %v", cfg.DataDir, err)
		}
		s.wal.segBytes = 2048
		open[cfg.DataDir] = s
		cfg.Storage = s
	})
	lead := c.leader(c.ids, 20*time.Second)
	value := strings.Repeat("v", 200)
	var idx uint64
	for i := 0; i < 150; i++ {
		idx = c.mustPut(lead, fmt.Sprintf("k%03d", i), value)
		if i%10 == 0 {
			maxSegs = max(maxSegs, len(segmentFiles(t, filepath.Join(c.base, fmt.Sprintf("m%d", lead)))))
		}
	}
	c.converged(c.ids, idx, 20*time.Second)
	before := c.fsm(lead).writes()
	c.restartAll()
	lead = c.leader(c.ids, 20*time.Second)
	c.converged(c.ids, idx, 20*time.Second)
	for _, id := range c.ids {
		if got := c.fsm(id).writes(); !slices.Equal(got, before) {
			t.Fatalf("member %d restarted with %d writes, had %d", id, len(got), len(before))
		}
	}
	idx = c.mustPut(lead, "after", "restart")
	c.converged(c.ids, idx, 20*time.Second)
	if maxSegs < 3 {
		t.Fatalf("the leader's log had at most %d segments: the test did not cross segments", maxSegs)
	}
	for _, id := range c.ids {
		// Compaction behind the snapshots keeps a few segments, not all.
		if n := len(segmentFiles(t, filepath.Join(c.base, fmt.Sprintf("m%d", id)))); n > 20 {
			t.Fatalf("member %d keeps %d segments", id, n)
		}
	}
}

// FuzzWAL damages a written log (cuts bytes off its end, flips bits in one
// byte, appends bytes) and opens it. It must fail with ErrCorrupt or load
// the entries written, in order, at least those of every Save that ended
// before the first damaged byte (nothing acknowledged is lost); never
// panic, never change an entry.
func FuzzWAL(f *testing.F) { fuzzWAL(f, Encryption{}) }

// FuzzWALSealed is FuzzWAL on a log sealed with a key.
func FuzzWALSealed(f *testing.F) { fuzzWAL(f, Encryption{Key: fuzzKey}) }

func fuzzWAL(f *testing.F, enc Encryption) {
	testEnc = enc
	defer func() { testEnc = Encryption{} }()
	f.Add(uint32(0), byte(0), uint32(0), []byte(nil))
	f.Add(uint32(100), byte(1), uint32(0), []byte(nil))
	f.Add(uint32(0), byte(0), uint32(50), []byte{0, 0, 0, 0})
	f.Add(uint32(7), byte(0x80), uint32(3), []byte{0, 0, 0, 9, 1, 2, 3, 4, 2, 1})
	f.Add(uint32(1<<31), byte(0xff), uint32(20), []byte("garbage"))
	tmpl := f.TempDir()
	l := writeBatches(f, tmpl, 6, 2)
	seg := filepath.Join("wal", walName(1))
	orig, err := os.ReadFile(filepath.Join(tmpl, seg))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, flipAt uint32, mask byte, cutFromEnd uint32, tail []byte) {
		b := slices.Clone(orig)
		b = b[:len(b)-int(cutFromEnd%uint32(len(b)+1))]
		damaged := len(b)
		if mask != 0 && len(b) > 0 {
			p := int(flipAt % uint32(len(b)))
			b[p] ^= mask
			damaged = min(damaged, p)
		}
		b = append(b, tail...)
		d := copyDir(t, tmpl)
		if err := os.WriteFile(filepath.Join(d, seg), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := openDiskStorage(d, slog.Default(), enc)
		if err != nil {
			// Appended bytes that frame a sealed record no key opens,
			// after a cut that left no record, are ErrKey.
			if !errors.Is(err, ErrCorrupt) && (enc.Key == nil || !errors.Is(err, ErrKey)) {
				t.Fatalf("%v is not ErrCorrupt", err)
			}
			return
		}
		got, _ := loadedLog(t, s)
		s.Close()
		whole := 0
		for whole+1 < len(l.ends) && l.ends[whole+1] <= int64(damaged) {
			whole++
		}
		if len(got) < whole*l.per {
			t.Fatalf("%d entries loaded; the %d Saves before byte %d wrote %d", len(got), whole, damaged, whole*l.per)
		}
		// Only appended bytes that are whole records can add entries.
		samePrefix(t, "loaded", got[:min(len(got), len(l.ents))], l.ents)
	})
}
