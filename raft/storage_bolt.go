package raft

// raft.db, the bbolt file that holds what changes rarely (the format, the
// member ID, the snapshot's metadata, the removal mark): opening and
// checking it before bbolt reads it, its framed and checksummed values, and
// the migration of a data dir of the first format, whose log and hard
// state were kept there too.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// openBolt opens raft.db and returns the format it records: 0 for a new
// file.
func openBolt(path string) (db *bolt.DB, version int, err error) {
	if err := checkBoltFile(path); err != nil {
		return nil, 0, err
	}
	// bbolt trusts its pages: a damaged page can make it panic, or read
	// outside the mapped file (a fault), instead of returning an error. A
	// library must not take the program down for a bad file, so both
	// become ErrCorrupt. SetPanicOnFault turns a fault on the mapping into
	// a panic on this goroutine; bbolt's own checks that run on other
	// goroutines (Tx.Check, the free page scan of NoFreelistSync) are not
	// used for that reason.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	// If bolt.Open panics, the file it opened (and locked) is closed here.
	var file *os.File
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			} else if file != nil {
				file.Close()
			}
			db, err = nil, fmt.Errorf("raft: open %s: bbolt file is damaged (%v): %w", path, r, ErrCorrupt)
			version = 0
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      time.Second,
		FreelistType: bolt.FreelistMapType,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, mode)
			file = f
			return f, err
		},
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, 0, fmt.Errorf("raft: open %s: locked by another process: %w", path, err)
		}
		return nil, 0, fmt.Errorf("raft: open %s: %v: %w", path, err, ErrCorrupt)
	}
	err = db.View(func(tx *bolt.Tx) error {
		m, e := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
		if m == nil {
			c := tx.Cursor()
			if k, _ := c.First(); k != nil {
				return fmt.Errorf("no raft buckets but other keys (%q): %w", k, ErrCorrupt)
			}
			return nil
		}
		v := m.Get(keyVersion)
		switch {
		case len(v) == 1 && v[0] == diskFormatBolt && e != nil:
			version = diskFormatBolt
		case len(v) == 1 && v[0] == diskFormat && e == nil:
			version = diskFormat
		case len(v) == 1 && v[0] == diskFormatBolt:
			return fmt.Errorf("the log bucket is missing: %w", ErrCorrupt)
		default:
			return fmt.Errorf("unknown storage format %v (this version reads formats %d and %d): %w", v, diskFormatBolt, diskFormat, ErrCorrupt)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("raft: open %s: %w", path, err)
	}
	return db, version, nil
}

// checkBoltFile reads bbolt's two meta pages before bbolt maps the file:
// at least one must be intact, and the file must be as long as the valid
// meta page says. A truncated file would otherwise make bbolt read past
// the end of its mapping, which kills the process.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raft: open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("raft: open %s: %w", path, err)
	}
	if info.Size() == 0 {
		return nil // a new file bbolt will initialise
	}
	const (
		pageHdr   = 16
		metaSize  = 64
		boltMagic = 0xED0CDAED
	)
	type meta struct {
		pageSize             uint32
		freelist, pgid, txid uint64
	}
	read := func(off int64) (meta, bool) {
		b := make([]byte, pageHdr+metaSize)
		if _, err := f.ReadAt(b, off); err != nil {
			return meta{}, false
		}
		m := b[pageHdr:]
		le := binary.LittleEndian
		if le.Uint32(m[0:]) != boltMagic {
			return meta{}, false
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != le.Uint64(m[56:]) {
			return meta{}, false
		}
		return meta{pageSize: le.Uint32(m[8:]), freelist: le.Uint64(m[32:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
	}
	m0, ok0 := read(0)
	ps := int64(os.Getpagesize())
	if ok0 {
		ps = int64(m0.pageSize)
	}
	m1, ok1 := read(ps)
	// bbolt alone would fall back to the other meta page, silently rolling
	// back to the transaction before: for raft that can un-persist a vote
	// or an acknowledged entry. Refuse instead.
	if !ok0 || !ok1 {
		bad := 0
		if ok0 {
			bad = 1
		}
		if !ok0 && !ok1 {
			return fmt.Errorf("raft: open %s: both bbolt meta pages are damaged: %w", path, ErrCorrupt)
		}
		return fmt.Errorf("raft: open %s: bbolt meta page %d is damaged (torn write or bit rot); "+
			"using the other one would roll back durable raft state: %w", path, bad, ErrCorrupt)
	}
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	if need := int64(m.pgid) * int64(m.pageSize); info.Size() < need {
		return fmt.Errorf("raft: open %s: file is truncated (%d bytes, bbolt needs %d): %w", path, info.Size(), need, ErrCorrupt)
	}
	// bbolt reads the free list while opening, where its panic on a bad
	// page cannot be recovered cleanly (the half-opened database keeps
	// the file mapped and locked): check that page first.
	if m.freelist != ^uint64(0) {
		if err := checkFreelist(f, m.freelist, m.pgid, int64(m.pageSize)); err != nil {
			return fmt.Errorf("raft: open %s: free list page %d: %v: %w", path, m.freelist, err, ErrCorrupt)
		}
	}
	return nil
}

func checkFreelist(f *os.File, id, highWater uint64, pageSize int64) error {
	const freelistFlag = 0x10
	if id < 2 || id >= highWater {
		return fmt.Errorf("page id out of range (high water %d)", highWater)
	}
	hdr := make([]byte, 16)
	if _, err := f.ReadAt(hdr, int64(id)*pageSize); err != nil {
		return err
	}
	le := binary.LittleEndian
	if got := le.Uint64(hdr[0:]); got != id {
		return fmt.Errorf("header says page %d", got)
	}
	if flags := le.Uint16(hdr[8:]); flags != freelistFlag {
		return fmt.Errorf("not a free list page (flags %#x)", flags)
	}
	count := uint64(le.Uint16(hdr[10:]))
	overflow := uint64(le.Uint32(hdr[12:]))
	if id+overflow >= highWater {
		return fmt.Errorf("overflow %d runs past the end", overflow)
	}
	space := uint64((1+overflow)*uint64(pageSize)) - 16
	off := int64(id)*pageSize + 16
	if count == 0xFFFF {
		b := make([]byte, 8)
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		count = le.Uint64(b)
		off += 8
		space -= 8
	}
	if count*8 > space {
		return fmt.Errorf("%d ids do not fit in %d pages", count, 1+overflow)
	}
	ids := make([]byte, count*8)
	if _, err := f.ReadAt(ids, off); err != nil {
		return err
	}
	for i := uint64(0); i < count; i++ {
		if p := le.Uint64(ids[i*8:]); p < 2 || p >= highWater {
			return fmt.Errorf("free page id %d out of range", p)
		}
	}
	return nil
}

// frame prefixes v with its CRC-32C.
func frame(v []byte) []byte {
	b := make([]byte, 4+len(v))
	binary.BigEndian.PutUint32(b, crc32c(v))
	copy(b[4:], v)
	return b
}

func unframe(b []byte, what string) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%s: %d bytes is too short: %w", what, len(b), ErrCorrupt)
	}
	if got, want := crc32c(b[4:]), binary.BigEndian.Uint32(b); got != want {
		return nil, fmt.Errorf("%s: checksum mismatch (stored %08x, computed %08x): %w", what, want, got, ErrCorrupt)
	}
	return b[4:], nil
}

func crc32c(b []byte) uint32 {
	h := newCRC()
	h.Write(b)
	return h.Sum32()
}

func key(i uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], i)
	return b[:]
}

func (s *DiskStorage) dbPath() string { return filepath.Join(s.dir, "raft.db") }

// readBolt reads what raft.db holds: the member ID, the removed marker
// and the snapshot metadata, and with format 1 the hard state and the log.
func (s *DiskStorage) readBolt(format1 bool) (hs *raftpb.HardState, snap *raftpb.Snapshot, ents []*raftpb.Entry, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("raft: read %s: bbolt file is damaged (%v): %w", s.dbPath(), r, ErrCorrupt)
		}
	}()
	snap = &raftpb.Snapshot{}
	err = s.db.View(func(tx *bolt.Tx) error {
		// Reading every key below walks every page of the tree, on this
		// goroutine, where a damaged page's panic is recovered.
		m := tx.Bucket(bucketMeta)
		if m == nil || format1 && tx.Bucket(bucketEntries) == nil {
			return fmt.Errorf("buckets missing: %w", ErrCorrupt)
		}
		if v := m.Get(keyID); v != nil {
			b, err := unframe(v, "member ID")
			if err != nil {
				return err
			}
			if len(b) != 8 {
				return fmt.Errorf("member ID has %d bytes: %w", len(b), ErrCorrupt)
			}
			s.id = binary.BigEndian.Uint64(b)
		}
		s.removed = m.Get(keyRemoved) != nil
		if v := m.Get(keySnapshot); v != nil {
			b, err := unframe(v, "snapshot metadata")
			if err != nil {
				return err
			}
			if err := proto.Unmarshal(b, snap); err != nil {
				return fmt.Errorf("snapshot metadata: %v: %w", err, ErrCorrupt)
			}
		}
		if !format1 {
			return nil
		}
		if v := m.Get(keyHardState); v != nil {
			b, err := unframe(v, "hard state")
			if err != nil {
				return err
			}
			hs = &raftpb.HardState{}
			if err := proto.Unmarshal(b, hs); err != nil {
				return fmt.Errorf("hard state: %v: %w", err, ErrCorrupt)
			}
		}
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("log key %x: %w", k, ErrCorrupt)
			}
			idx := binary.BigEndian.Uint64(k)
			b, err := unframe(v, fmt.Sprintf("log entry %d", idx))
			if err != nil {
				return err
			}
			e := &raftpb.Entry{}
			if err := proto.Unmarshal(b, e); err != nil {
				return fmt.Errorf("log entry %d: %v: %w", idx, err, ErrCorrupt)
			}
			if e.GetIndex() != idx {
				return fmt.Errorf("log entry under key %d says index %d: %w", idx, e.GetIndex(), ErrCorrupt)
			}
			if n := len(ents); n > 0 && ents[n-1].GetIndex()+1 != idx {
				return fmt.Errorf("log has a gap between entries %d and %d: %w", ents[n-1].GetIndex(), idx, ErrCorrupt)
			}
			ents = append(ents, e)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("raft: open %s: %w", s.dbPath(), err)
	}
	return hs, snap, ents, nil
}

// migrateFormat1 moves a format 1 data dir's log and hard state from
// raft.db to a new log, after checking them as the first format's reader
// did. The log is written to wal.tmp, synced and renamed to wal; only then
// does raft.db drop its copy and record format 2, in one transaction. A
// crash before that leaves format 1 in raft.db, authoritative, and the
// migration starts again from it (any wal it finds is its own unfinished
// work).
func (s *DiskStorage) migrateFormat1() error {
	hs, snap, ents, err := s.readBolt(true)
	if err != nil {
		return err
	}
	if _, err := s.check(hs, snap, ents); err != nil {
		return err
	}
	tmp := s.walDir() + ".tmp"
	for _, d := range []string{tmp, s.walDir()} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("raft: migrate %s: %w", s.dir, err)
		}
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("raft: migrate %s: %w", s.dir, err)
	}
	w := &wal{seal: s.enc.Key}
	recs, err := w.records(nil, hs, ents)
	if err != nil {
		return err
	}
	if err := writeSegment(tmp, 1, recs); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.walDir()); err != nil {
		return fmt.Errorf("raft: migrate %s: %w", s.dir, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("raft: migrate %s: %w", s.dir, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if err := tx.DeleteBucket(bucketEntries); err != nil {
			return err
		}
		if err := m.Delete(keyHardState); err != nil {
			return err
		}
		return m.Put(keyVersion, []byte{diskFormat})
	})
	if err != nil {
		return fmt.Errorf("raft: migrate %s: record the new format: %w", s.dbPath(), err)
	}
	// Reading the log brought raft.db's pages in: give them back.
	var size int64
	s.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	releaseMapped(s.db, size)
	s.log.Info("raft data dir migrated: the log moved from raft.db to wal/ (format 2)",
		"dir", s.dir, "entries", len(ents))
	return nil
}
