package raft

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

func entry(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term), Type: raftpb.EntryNormal.Enum(), Data: []byte(data)}
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
}

func writeLog(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := OpenDiskStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ents []*raftpb.Entry
	for i := 1; i <= n; i++ {
		ents = append(ents, entry(uint64(i), 1, fmt.Sprintf("PAYLOAD-MARKER-%04d", i)))
	}
	if err := s.Save(hardState(1, 1, uint64(n)), ents, nil, true); err != nil {
		t.Fatal(err)
	}
}

func TestDiskStorageRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDiskStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Bind(7); err != nil {
		t.Fatal(err)
	}
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 20; i++ {
		ents = append(ents, entry(i, 1, fmt.Sprint(i)))
	}
	if err := s.Save(hardState(1, 1, 15), ents, nil, true); err != nil {
		t.Fatal(err)
	}
	// A new leader overwrites the uncommitted suffix.
	if err := s.Save(hardState(2, 0, 15), []*raftpb.Entry{entry(17, 2, "x"), entry(18, 2, "y")}, nil, true); err != nil {
		t.Fatal(err)
	}
	// A snapshot at 15 and a compaction keeping a few entries.
	sink, _ := s.NewSnapshotSink(15, 1)
	sink.Write([]byte("state"))
	size, crc, err := sink.Commit()
	if err != nil {
		t.Fatal(err)
	}
	cs := &raftpb.ConfState{Voters: []uint64{7}}
	if err := s.CreateSnapshot(15, cs, snapRef{size, crc}.encode()); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(12); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = OpenDiskStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Bind(8); err == nil {
		t.Fatal("data dir accepted another member ID")
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 13 || last != 18 {
		t.Fatalf("log [%d, %d], want [13, 18]", first, last)
	}
	got, err := s.Entries(13, 19, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var data []string
	for _, e := range got {
		data = append(data, string(e.GetData()))
	}
	if strings.Join(data, ",") != "13,14,15,16,x,y" {
		t.Fatalf("entries %v", data)
	}
	if term, _ := s.Term(12); term != 1 {
		t.Fatalf("term of the compaction point: %d", term)
	}
	hs, gotCS, _ := s.InitialState()
	if hs.GetTerm() != 2 || hs.GetCommit() != 15 || len(gotCS.GetVoters()) != 1 {
		t.Fatalf("state %v %v", hs, gotCS)
	}
	snap, _ := s.Snapshot()
	if snap.GetMetadata().GetIndex() != 15 {
		t.Fatalf("snapshot %v", snap.GetMetadata())
	}
	rc, err := s.OpenSnapshot(15, 1)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(rc)
	rc.Close()
	if b.String() != "state" {
		t.Fatalf("snapshot data %q", b.String())
	}
}

func flip(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Damage in the log, in bbolt's own pages, or in a snapshot file is
// reported on open, clearly, instead of being replayed.
func TestDiskStorageDetectsCorruption(t *testing.T) {
	t.Run("entry bytes", func(t *testing.T) {
		dir := t.TempDir()
		writeLog(t, dir, 50)
		path := filepath.Join(dir, "wal", walName(1))
		b, _ := os.ReadFile(path)
		at := bytes.Index(b, []byte("PAYLOAD-MARKER-0025"))
		if at < 0 {
			t.Fatal("marker not found")
		}
		flip(t, path, at+16)
		_, err := OpenDiskStorage(dir)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), walName(1)) || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("got %v, want a checksum error naming the segment", err)
		}
		t.Log(err)
	})
	t.Run("bbolt pages", func(t *testing.T) {
		// Flip a byte in every page header in turn: each must give an
		// error or, if bbolt never reads that page, a clean open; never a
		// panic or a silently different log.
		dir := t.TempDir()
		writeLog(t, dir, 200)
		path := filepath.Join(dir, "raft.db")
		orig, _ := os.ReadFile(path)
		const page = 4096
		detected := 0
		for off := 0; off < len(orig); off += page {
			for _, d := range []int{8, 10, 16, 20} { // flags, count, overflow, ...
				os.WriteFile(path, orig, 0o600)
				flip(t, path, off+d)
				s, err := OpenDiskStorage(dir)
				if testing.Verbose() {
					t.Logf("page %d byte %d: %v", off/page, d, err)
				}
				if err != nil {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("page %d byte %d: error without ErrCorrupt: %v", off/page, d, err)
					}
					detected++
					continue
				}
				last, _ := s.LastIndex()
				ents, eerr := s.Entries(1, last+1, 1<<30)
				s.Close()
				if last != 200 || eerr != nil || len(ents) != 200 {
					t.Fatalf("page %d byte %d: opened a different log (last %d, %v)", off/page, d, last, eerr)
				}
			}
		}
		if detected == 0 {
			t.Fatal("no damaged page was detected")
		}
		t.Logf("%d of %d page flips detected (the rest hit unused bytes)", detected, 4*(len(orig)/page))
	})
	t.Run("truncated file", func(t *testing.T) {
		dir := t.TempDir()
		writeLog(t, dir, 50)
		path := filepath.Join(dir, "raft.db")
		b, _ := os.ReadFile(path)
		os.WriteFile(path, b[:len(b)/3], 0o600)
		if _, err := OpenDiskStorage(dir); err == nil {
			t.Fatal("opened a truncated file")
		} else {
			t.Log(err)
		}
	})
	t.Run("snapshot file", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := OpenDiskStorage(dir)
		s.Save(hardState(1, 1, 3), []*raftpb.Entry{entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")}, nil, true)
		sink, _ := s.NewSnapshotSink(3, 1)
		sink.Write(bytes.Repeat([]byte("snapshot data "), 1000))
		size, crc, _ := sink.Commit()
		s.CreateSnapshot(3, &raftpb.ConfState{Voters: []uint64{1}}, snapRef{size, crc}.encode())
		s.Close()
		sp := filepath.Join(dir, "snap", fmt.Sprintf("%016x-%016x.snap", 1, 3))
		flip(t, sp, 5000)
		_, err := OpenDiskStorage(dir)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "snapshot file") {
			t.Fatalf("got %v, want a damaged snapshot file error", err)
		}
		t.Log(err)
		os.Remove(sp)
		if _, err := OpenDiskStorage(dir); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("missing snapshot file: %v", err)
		}
	})
}

// A node refuses to start on a damaged data dir and says why.
func TestNodeRefusesCorruptDataDir(t *testing.T) {
	c := newCluster(t, memNet, 3, smallSnapshots)
	lead := c.leader(c.ids, 10*time.Second)
	for i := 0; i < 60; i++ {
		c.mustPut(lead, fmt.Sprintf("k%d", i), "PAYLOAD-MARKER")
	}
	victim := without(c.ids, lead)[0]
	c.kill(victim)
	dir := filepath.Join(c.base, fmt.Sprintf("m%d", victim))
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "*.snap"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot file")
	}
	for _, sp := range snaps {
		flip(t, sp, 20)
	}
	_, err := c.startErr(victim, nil, nil)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("start on a damaged snapshot: %v", err)
	}
	t.Log(err)
}
