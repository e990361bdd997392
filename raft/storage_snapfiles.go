package raft

// Snapshot files (snap/): where one is written (a temporary file synced
// and renamed into place), checked against the reference raft holds, read,
// and pruned.

import (
	"bufio"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func (s *DiskStorage) snapPath(index, term uint64) string {
	return filepath.Join(s.dir, "snap", fmt.Sprintf("%016x-%016x.snap", term, index))
}

func (s *DiskStorage) verifySnapshotFile(index, term uint64, data []byte) error {
	ref, err := decodeSnapRef(data)
	if err != nil {
		return fmt.Errorf("raft: snapshot %d metadata: %w", index, err)
	}
	path := s.snapPath(index, term)
	f, err := s.openSnapshotFile(path)
	if errors.Is(err, ErrKey) {
		return err
	}
	if err != nil {
		return fmt.Errorf("raft: snapshot file for index %d: %v: %w", index, err, ErrCorrupt)
	}
	defer f.Close()
	h := newCRC()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("raft: read snapshot file %s: %w", path, err)
	}
	if uint64(n) != ref.size || h.Sum32() != ref.crc {
		return fmt.Errorf("raft: snapshot file %s is damaged (%d bytes, crc %08x; expected %d bytes, crc %08x): %w",
			path, n, h.Sum32(), ref.size, ref.crc, ErrCorrupt)
	}
	return nil
}

// pruneSnapshots removes snapshot files older than the one before the
// current snapshot (that one may still be streaming to a follower) and
// leftover temporary files. Files newer than the current snapshot are
// received snapshots raft has not installed yet and stay.
func (s *DiskStorage) pruneSnapshots() {
	cur, _ := s.mem.Snapshot()
	ci := cur.GetMetadata().GetIndex()
	names, err := os.ReadDir(filepath.Join(s.dir, "snap"))
	if err != nil {
		return
	}
	type file struct {
		name  string
		index uint64
	}
	var files []file
	for _, e := range names {
		n := e.Name()
		if strings.Contains(n, ".tmp") {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				os.Remove(filepath.Join(s.dir, "snap", n))
			}
			continue
		}
		var term, index uint64
		if _, err := fmt.Sscanf(n, "%016x-%016x.snap", &term, &index); err != nil {
			continue
		}
		files = append(files, file{n, index})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].index > files[j].index })
	kept := 0
	for _, f := range files {
		if f.index >= ci {
			continue
		}
		kept++
		if kept > 1 {
			os.Remove(filepath.Join(s.dir, "snap", f.name))
		}
	}
}

type diskSink struct {
	s     *DiskStorage
	f     *os.File
	w     *bufio.Writer
	sw    *sealWriter // between the caller and w when the storage has a key
	key   Cipher      // what sw seals with: a Rekey meanwhile reseals the file (resealSink)
	crc   hash.Hash32
	n     uint64
	final string
	done  bool
}

// NewSnapshotSink implements Storage: data goes to a temporary file that
// Commit syncs and renames into place.
func (s *DiskStorage) NewSnapshotSink(index, term uint64) (SnapshotSink, error) {
	final := s.snapPath(index, term)
	f, err := os.CreateTemp(filepath.Dir(final), filepath.Base(final)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("raft: create snapshot file: %w", err)
	}
	d := &diskSink{s: s, f: f, w: bufio.NewWriterSize(f, 1<<20), crc: newCRC(), final: final, key: s.encryption().Key}
	if d.key != nil {
		d.sw = newSealWriter(d.w, d.key)
	}
	return d, nil
}

func (d *diskSink) Write(p []byte) (int, error) {
	d.crc.Write(p)
	d.n += uint64(len(p))
	var w io.Writer = d.w
	if d.sw != nil {
		w = d.sw
	}
	n, err := w.Write(p)
	if err != nil {
		return n, fmt.Errorf("raft: write snapshot file: %w", err)
	}
	return n, nil
}

func (d *diskSink) Commit() (uint64, uint32, error) {
	if d.done {
		return 0, 0, errors.New("raft: snapshot sink already closed")
	}
	d.done = true
	var err error
	if d.sw != nil {
		err = d.sw.Close()
	}
	if err == nil {
		err = d.w.Flush()
	}
	if err == nil {
		err = d.f.Sync()
	}
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(d.f.Name(), d.final)
	}
	if err == nil {
		err = syncDir(filepath.Dir(d.final))
	}
	if err == nil {
		err = d.s.resealSink(d.final, d.key)
	}
	if err != nil {
		os.Remove(d.f.Name())
		return 0, 0, fmt.Errorf("raft: commit snapshot file %s: %w", d.final, err)
	}
	return d.n, d.crc.Sum32(), nil
}

func (d *diskSink) Abort() {
	if d.done {
		return
	}
	d.done = true
	d.f.Close()
	os.Remove(d.f.Name())
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// OpenSnapshot implements Storage.
func (s *DiskStorage) OpenSnapshot(index, term uint64) (io.ReadCloser, error) {
	f, err := s.openSnapshotFile(s.snapPath(index, term))
	if err != nil {
		return nil, fmt.Errorf("raft: open snapshot %d (term %d): %w", index, term, err)
	}
	return f, nil
}
