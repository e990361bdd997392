package raft

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// mappedKB returns how many KiB of the process's mappings of path are
// resident (/proc/self/smaps).
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			kb += n
		}
	}
	return kb
}

// TestCompactReleasesMappedPages: compacting 10 MiB of log reads its
// pages through bbolt's mapping of raft.db; they must not stay resident in
// the process afterwards.
func TestCompactReleasesMappedPages(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenDiskStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	payload := strings.Repeat("x", 64<<10)
	for i := uint64(1); i <= 160; i += 16 {
		var ents []*raftpb.Entry
		for j := i; j < i+16; j++ {
			ents = append(ents, entry(j, 1, payload))
		}
		if err := s.Save(hardState(1, 1, i+15), ents, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(160); err != nil {
		t.Fatal(err)
	}
	path, _ := filepath.EvalSymlinks(filepath.Join(dir, "raft.db"))
	if kb := mappedKB(t, path); kb > 1024 {
		t.Fatalf("%d KiB of raft.db resident after compacting 10 MiB of log, want at most 1 MiB", kb)
	}
	if first, _ := s.FirstIndex(); first != 161 {
		t.Fatalf("first index %d after compacting to 160", first)
	}
}
