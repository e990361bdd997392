package raft

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
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

// TestMigrationReleasesMappedPages: migrating a first-format data dir
// reads its 10 MiB of log through bbolt's mapping of raft.db; those pages
// must not stay resident in the process afterwards.
func TestMigrationReleasesMappedPages(t *testing.T) {
	dir := t.TempDir()
	payload := strings.Repeat("x", 64<<10)
	writeRaftDB(t, filepath.Join(dir, "raft.db"), func(meta, log *bolt.Bucket) error {
		if err := meta.Put(keyVersion, []byte{diskFormatBolt}); err != nil {
			return err
		}
		if err := meta.Put(keyHardState, frame(mustMarshal(t, hardState(1, 1, 160)))); err != nil {
			return err
		}
		for i := uint64(1); i <= 160; i++ {
			if err := log.Put(key(i), frame(mustMarshal(t, entry(i, 1, payload)))); err != nil {
				return err
			}
		}
		return nil
	})
	s, err := OpenDiskStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	path, _ := filepath.EvalSymlinks(filepath.Join(dir, "raft.db"))
	if kb := mappedKB(t, path); kb > 1024 {
		t.Fatalf("%d KiB of raft.db resident after migrating 10 MiB of log, want at most 1 MiB", kb)
	}
	if last, _ := s.LastIndex(); last != 160 {
		t.Fatalf("last index %d after migrating 160 entries", last)
	}
}
