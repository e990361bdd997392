//go:build unix

package secretfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
