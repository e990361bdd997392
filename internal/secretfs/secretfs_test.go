//go:build unix

package secretfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Files are written with their modes under a directory of the asked mode,
// subdirectories included; writing again replaces them; Remove leaves
// nothing, mounted or not. Wanting a tmpfs gives one, or says why not.
func TestWriteAndRemove(t *testing.T) {
	for _, onDisk := range []bool{true, false} {
		d := Dir{Path: filepath.Join(t.TempDir(), "s"), Mode: 0o750, UID: -1, GID: -1, OnDisk: onDisk}
		files := []File{{Name: "a", Data: []byte("one"), UID: -1, GID: -1, Mode: 0o400}, {Name: "x/y/b", Data: []byte("two"), UID: -1, GID: -1, Mode: 0o444}}
		notMounted, err := d.Write(files)
		if err != nil {
			t.Fatal(err)
		}
		if onDisk && (notMounted != nil || Mounted(d.Path)) || !onDisk && (notMounted == nil) == !Mounted(d.Path) {
			t.Fatalf("onDisk %v: mounted %v, reason %v", onDisk, Mounted(d.Path), notMounted)
		}
		for path, want := range map[string]os.FileMode{"": os.ModeDir | 0o750, "x": os.ModeDir | 0o750, "x/y": os.ModeDir | 0o750, "a": 0o400, "x/y/b": 0o444} {
			if fi, err := os.Stat(filepath.Join(d.Path, path)); err != nil || fi.Mode() != want {
				t.Errorf("%q: %v %v, want %v", path, fi.Mode(), err, want)
			}
		}
		files[0].Data = []byte("three")
		if _, err := d.Write(files[:1]); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(d.Path, "a")); err != nil || string(b) != "three" {
			t.Errorf("rewritten: %q %v", b, err)
		}
		if _, err := d.Write([]File{{Name: "../out", UID: -1, GID: -1}}); err == nil {
			t.Error("a target outside the directory was written")
		}
		if err := Remove(d.Path); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(d.Path); !errors.Is(err, os.ErrNotExist) || Mounted(d.Path) {
			t.Errorf("after Remove: %v", err)
		}
	}
	if err := Remove(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("Remove of nothing: %v", err)
	}
}

// A file written again is replaced whole: readers polling it while it is
// rewritten over and over read the old content or the new one, complete,
// never a part of either nor a missing file. (A task's secrets are
// written once, into a directory of its own, and a secret update starts
// new tasks; this holds wherever a file is written again all the same.)
func TestRewriteIsAtomic(t *testing.T) {
	for _, onDisk := range []bool{true, false} {
		d := Dir{Path: filepath.Join(t.TempDir(), "s"), Mode: 0o700, UID: -1, GID: -1, OnDisk: onDisk}
		t.Cleanup(func() { Remove(d.Path) }) // unmounted after a failure too
		// Small enough that the tmpfs, sized for the files at the first
		// write, holds a copy being written and the old ones readers
		// still have open (an unlinked file lives until closed).
		const size = 16 << 10
		versions := [][]byte{bytes.Repeat([]byte("a"), size), bytes.Repeat([]byte("b"), size/2)}
		write := func(v int) {
			if _, err := d.Write([]File{{Name: "tls/key", Data: versions[v], UID: -1, GID: -1, Mode: 0o400}}); err != nil {
				t.Fatal(err)
			}
		}
		write(0)
		const readers = 3
		var seen [readers][2]atomic.Bool
		var bad atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					b, err := os.ReadFile(filepath.Join(d.Path, "tls/key"))
					switch {
					case err != nil:
						bad.Store(err.Error())
					case bytes.Equal(b, versions[0]):
						seen[r][0].Store(true)
					case bytes.Equal(b, versions[1]):
						seen[r][1].Store(true)
					default:
						bad.Store(fmt.Sprintf("read %d bytes, neither version whole", len(b)))
					}
				}
			}()
		}
		everyReaderSawBoth := func() bool {
			for r := range readers {
				if !seen[r][0].Load() || !seen[r][1].Load() {
					return false
				}
			}
			return true
		}
		deadline := time.Now().Add(30 * time.Second)
		writes := 0
		for ; (writes < 200 || !everyReaderSawBoth()) && time.Now().Before(deadline); writes++ {
			write(writes % 2)
		}
		close(stop)
		wg.Wait()
		if msg := bad.Load(); msg != nil {
			t.Fatalf("onDisk %v: a reader saw: %v", onDisk, msg)
		}
		if !everyReaderSawBoth() {
			t.Fatalf("onDisk %v: after %d writes not every reader read both versions", onDisk, writes)
		}
		if err := Remove(d.Path); err != nil {
			t.Fatal(err)
		}
	}
}
