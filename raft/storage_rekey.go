package raft

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OpenEncryptedDiskStorage opens (creating it if needed) the data
// directory dir as OpenDiskStorage does, sealing what it writes with
// enc.Key and opening what it reads with enc.Key or enc.Old. Anything
// found in plaintext (a data dir written without a key) or under an old
// key is rewritten under enc.Key before it returns, so that once it has
// returned the old keys are no longer needed. A directory whose data no
// given key opens is refused with ErrKey, and nothing in it is changed.
func OpenEncryptedDiskStorage(dir string, enc Encryption) (*DiskStorage, error) {
	return openDiskStorage(dir, slog.Default(), enc)
}

// Rekeyed reports whether opening the storage rewrote data that was in
// plaintext or under an old key.
func (s *DiskStorage) Rekeyed() bool { return s.rekeyed }

// recoverRewrite finishes or undoes a log rewrite a crash interrupted. A
// rewrite writes the whole log to wal.tmp, synced, then renames wal to
// wal.old and wal.tmp to wal, then deletes wal.old: wal.old without wal
// means the new log in wal.tmp is complete; wal.tmp beside wal is an
// unfinished rewrite (or an unfinished migration from format 1, which
// starts over from raft.db and never gets here).
func (s *DiskStorage) recoverRewrite() error {
	cur, tmp, old := s.walDir(), s.walDir()+".tmp", s.walDir()+".old"
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	switch {
	case exists(old) && !exists(cur) && exists(tmp):
		if err := os.Rename(tmp, cur); err != nil {
			return fmt.Errorf("raft: complete the log rewrite in %s: %w", s.dir, err)
		}
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("raft: complete the log rewrite in %s: %w", s.dir, err)
		}
		return os.RemoveAll(old)
	case exists(old) && !exists(cur):
		// Renamed away with no new log: put it back.
		return os.Rename(old, cur)
	case exists(old):
		return os.RemoveAll(old)
	case exists(tmp):
		return os.RemoveAll(tmp)
	}
	return nil
}

// rewriteLog writes what st holds as a new log under s.enc.Key (or in
// plaintext without one) and puts it in place of the current one (see
// recoverRewrite for the order and what a crash leaves).
func (s *DiskStorage) rewriteLog(st *walState) error {
	tmp, old := s.walDir()+".tmp", s.walDir()+".old"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("raft: rewrite log: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("raft: rewrite log: %w", err)
	}
	w := &wal{seal: s.enc.Key}
	var recs []byte
	var err error
	if st.snap != nil {
		if recs, err = w.record(recs, walRecSnapshot, st.snap, nil); err != nil {
			return fmt.Errorf("raft: rewrite log: %w", err)
		}
	}
	if recs, err = w.records(recs, st.hs, st.ents); err != nil {
		return err
	}
	if st.compactTo > 0 {
		if recs, err = w.record(recs, walRecCompact, nil, binary.BigEndian.AppendUint64(nil, st.compactTo)); err != nil {
			return fmt.Errorf("raft: rewrite log: %w", err)
		}
	}
	if err := writeSegment(tmp, 1, recs); err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("raft: rewrite log: %w", err)
	}
	if err := os.Rename(s.walDir(), old); err != nil {
		return fmt.Errorf("raft: rewrite log: %w", err)
	}
	if err := os.Rename(tmp, s.walDir()); err != nil {
		return fmt.Errorf("raft: rewrite log: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("raft: rewrite log: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("raft: rewrite log: %w", err)
	}
	return nil
}

// rekeySnapshots rewrites every snapshot file that is in plaintext or
// under an old key under s.enc.Key, each through a synced temporary file
// renamed into place (a crash leaves the old file or the new one, both
// readable with the keys given).
func (s *DiskStorage) rekeySnapshots() (bool, error) {
	dir := filepath.Join(s.dir, "snap")
	names, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("raft: snapshot files: %w", err)
	}
	enc := s.encryption()
	any := false
	for _, e := range names {
		var term, index uint64
		if n := e.Name(); filepath.Ext(n) != ".snap" {
			continue
		} else if _, err := fmt.Sscanf(n, "%016x-%016x.snap", &term, &index); err != nil {
			continue
		}
		done, err := s.rekeySnapshot(filepath.Join(dir, e.Name()), enc)
		if err != nil {
			return any, err
		}
		any = any || done
	}
	return any, nil
}

// rekeySnapshot rewrites the snapshot file at path under enc.Key if it is
// in plaintext or under one of enc.Old. A file deleted meanwhile (pruned:
// Rekey runs beside the raft loop) is not brought back.
func (s *DiskStorage) rekeySnapshot(path string, enc Encryption) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("raft: snapshot file: %w", err)
	}
	defer f.Close()
	o := &opener{enc: enc}
	if s.keyKnown {
		o.opened = 1
	}
	r, err := openSnapshotReader(bufio.NewReaderSize(f, 1<<20), o, path)
	if err != nil {
		return false, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if _, err := br.Peek(1); err != nil && !errors.Is(err, io.EOF) {
		return false, err // the first chunk tells which key sealed it
	}
	if !o.stale {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return false, fmt.Errorf("raft: rewrite snapshot file: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	var dst io.Writer = bw
	var sw *sealWriter
	if enc.Key != nil {
		sw = newSealWriter(bw, enc.Key)
		dst = sw
	}
	_, err = io.Copy(dst, br)
	if err == nil && sw != nil {
		err = sw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Under mu: pruneSnapshots deletes files under it, and a file it
		// deleted must stay deleted.
		s.mu.Lock()
		if _, serr := os.Stat(path); serr == nil {
			err = os.Rename(tmp.Name(), path)
		}
		s.mu.Unlock()
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return false, fmt.Errorf("raft: rewrite snapshot file %s: %w", path, err)
	}
	return true, nil
}

// openSnapshotFile opens a snapshot file for reading its plaintext.
func (s *DiskStorage) openSnapshotFile(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := openSnapshotReader(bufio.NewReaderSize(f, 1<<20), s.snapOpener(), path)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("raft: read snapshot file %s: %w", path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, nil
}

// snapOpener is the opener of a snapshot file: one the log's records
// confirmed the keys of counts as having opened a message already.
func (s *DiskStorage) snapOpener() *opener {
	o := &opener{enc: s.encryption()}
	if s.keyKnown {
		o.opened = 1
	}
	return o
}

// rewriteBolt copies raft.db's keys into a fresh file that replaces it.
// Deleting the first format's log from raft.db leaves its pages in the
// file's free list, in plaintext: a data dir sealed on migration must not
// keep them.
func (s *DiskStorage) rewriteBolt() error {
	path := s.dbPath()
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("raft: rewrite %s: %w", path, err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("raft: rewrite %s: %w", path, err)
	}
	err = bolt.Compact(dst, s.db, 0)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("raft: rewrite %s: %w", path, err)
	}
	// The old file is unlinked; reopen the new one.
	s.db.Close()
	db, _, err := openBolt(path)
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

// encryption returns the keys the storage seals and opens with now.
func (s *DiskStorage) encryption() Encryption {
	s.encMu.Lock()
	defer s.encMu.Unlock()
	return s.enc
}

func (s *DiskStorage) setEncryption(enc Encryption) {
	s.encMu.Lock()
	s.enc = enc
	s.encMu.Unlock()
}

// Rekey rotates the storage's key while it is in use: from when it is
// called, everything is written under key; it returns once the log and
// every snapshot file have been rewritten under key, so that the keys the
// storage had before open nothing it holds. The log (bounded by the
// snapshot interval) is rewritten as opening the directory rewrites it,
// through wal.tmp and a rename (recoverRewrite), holding the storage's
// lock: raft's writes wait for it. Snapshot files are rewritten one at a
// time beside raft's writes, each through a temporary file renamed into
// place; a snapshot file being written under the old key as Rekey starts
// is rewritten when it is committed (resealSink).
//
// Crash safety is the caller's: until Rekey has returned, the directory
// may hold data under the old key and the new one, and must be opened with
// both (Encryption.Old), which finishes the rewrite. An error leaves the
// storage writing under key, with the old key still accepted for reading;
// a failed log rewrite leaves the storage unusable (its log closed), as a
// failed write would.
func (s *DiskStorage) Rekey(key Cipher) error {
	if key == nil {
		return errors.New("raft: rekey: no key given (a storage is never rekeyed to plaintext)")
	}
	s.rekeyMu.Lock()
	defer s.rekeyMu.Unlock()
	cur := s.encryption()
	enc := Encryption{Key: key, Old: cur.keys()}
	if err := s.rekeyLog(enc); err != nil {
		return err
	}
	if _, err := s.rekeySnapshots(); err != nil {
		return err
	}
	s.setEncryption(Encryption{Key: key})
	s.log.Info("raft data dir rewritten under a new key", "dir", s.dir)
	return nil
}

// rekeyLog switches the storage to enc and rewrites its log under enc.Key,
// holding mu.
func (s *DiskStorage) rekeyLog(enc Encryption) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wal == nil || s.wal.f == nil {
		return errors.New("raft: rekey: the storage is closed")
	}
	s.setEncryption(enc)
	s.wal.close()
	w, st, err := openWAL(s.walDir(), s.log, enc)
	if err == nil {
		w.close()
		err = s.rewriteLog(st)
	}
	// Whether or not the rewrite went through, the log in place opens
	// with enc (a failure before its rename leaves the old one).
	w2, _, oerr := openWAL(s.walDir(), s.log, enc)
	if oerr != nil {
		s.wal = nil
		return fmt.Errorf("raft: rekey: reopen the log: %w", errors.Join(err, oerr))
	}
	s.wal = w2
	if err != nil {
		return fmt.Errorf("raft: rekey: %w", err)
	}
	return nil
}

// resealSink rewrites a snapshot file a sink sealed under key if the
// storage has been rekeyed since (a Rekey that listed the snapshot files
// before this one was committed).
func (s *DiskStorage) resealSink(path string, key Cipher) error {
	enc := s.encryption()
	if key == nil || enc.Key == key {
		return nil
	}
	enc.Old = append(enc.Old[:len(enc.Old):len(enc.Old)], key)
	_, err := s.rekeySnapshot(path, enc)
	return err
}

// RotateEncryptionKey rekeys the node's storage (DiskStorage.Rekey) while
// it runs; a storage that keeps nothing at rest (MemoryStorage) has nothing
// to rewrite.
func (n *Node) RotateEncryptionKey(key Cipher) error {
	r, ok := n.storage.(interface{ Rekey(Cipher) error })
	if !ok {
		return nil
	}
	return r.Rekey(key)
}
