package raft

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// DiskStorage keeps a node's state in a data directory:
//
//	wal/*.wal    the log entries and hard states, appended to segment
//	             files (storage_wal.go), every record framed with a
//	             CRC-32C: one write and one fdatasync per Ready
//	raft.db      bbolt: the snapshot metadata, the member ID and the
//	             removed marker, each value framed with a CRC-32C, written
//	             rarely (a snapshot, a start, a removal)
//	snap/*.snap  snapshot data files, named by term and index, verified by
//	             the size and CRC kept in the snapshot metadata
//
// A data dir of the first format (the log and hard state in raft.db) is
// migrated when it is opened (migrateFormat1).
//
// Reads are served from an in-memory mirror of the log (etcd raft's
// MemoryStorage), filled when the directory is opened: the log is bounded
// by the snapshot interval, and raft reads it on every append it sends.
type DiskStorage struct {
	mu      sync.Mutex // orders writes and their mirror updates
	dir     string
	db      *bolt.DB
	wal     *wal
	mem     *etcdraft.MemoryStorage
	id      uint64
	removed bool
	log     *slog.Logger // a migration, a log cut back after a crash
	// enc is read through encryption() once the storage is open: Rekey
	// changes it while snapshot files are written and read.
	encMu   sync.Mutex
	rekeyMu sync.Mutex // one Rekey at a time
	enc     Encryption // storage_rekey.go, encryption.go
	rekeyed bool
	// keyKnown: the log had sealed records the keys opened, so a
	// snapshot file they do not open is damaged, not under another key.
	keyKnown bool
}

var _ Storage = (*DiskStorage)(nil)

var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	keyVersion    = []byte("version")
	keyID         = []byte("id")
	keyHardState  = []byte("hardstate")
	keySnapshot   = []byte("snapshot")
	keyRemoved    = []byte("removed")
)

// The data dir's format, recorded in raft.db: 1 kept the log and the hard
// state in raft.db (bbolt, two fdatasyncs per Ready), 2 keeps them in
// wal/.
const (
	diskFormatBolt = 1
	diskFormat     = 2
)

// OpenDiskStorage opens (creating it if needed) the data directory dir. It
// verifies everything it loads: the bbolt file's page structure, the
// checksum of every entry, hard state and snapshot metadata, the
// contiguity of the log, and the latest snapshot file's size and checksum.
// Damage is reported as an error wrapping ErrCorrupt that names the file
// and what is wrong; nothing is repaired silently.
func OpenDiskStorage(dir string) (*DiskStorage, error) {
	return openDiskStorage(dir, slog.Default(), Encryption{})
}

func openDiskStorage(dir string, log *slog.Logger, enc Encryption) (*DiskStorage, error) {
	if err := os.MkdirAll(filepath.Join(dir, "snap"), 0o700); err != nil {
		return nil, fmt.Errorf("raft: create data dir: %w", err)
	}
	path := filepath.Join(dir, "raft.db")
	db, version, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	s := &DiskStorage{dir: dir, db: db, log: log, enc: enc}
	switch version {
	case 0:
		err = s.create()
	case diskFormatBolt:
		err = s.migrateFormat1()
		if err == nil && enc.Key != nil {
			err = s.rewriteBolt()
		}
	}
	if err == nil {
		err = s.load()
	}
	if err != nil {
		s.wal.close()
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *DiskStorage) walDir() string { return filepath.Join(s.dir, "wal") }

// create makes a new data dir's log, then marks raft.db as of the current
// format: a crash in between leaves a raft.db without buckets, which is
// new again, and an empty log, which is reused.
func (s *DiskStorage) create() error {
	if seqs, err := listSegments(s.walDir()); err == nil && len(seqs) > 0 {
		w, st, err := openWAL(s.walDir(), s.log, s.enc)
		if err != nil {
			return err
		}
		w.close()
		if st.hs != nil || st.snap != nil || len(st.ents) > 0 {
			return fmt.Errorf("raft: open %s: raft.db is new but %s holds a log: %w", s.dbPath(), s.walDir(), ErrCorrupt)
		}
	} else if err := createWAL(s.walDir()); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return m.Put(keyVersion, []byte{diskFormat})
	})
	if err != nil {
		return fmt.Errorf("raft: create %s: %w", s.dbPath(), err)
	}
	return nil
}

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

// load reads a format 2 data dir: raft.db, then the log.
func (s *DiskStorage) load() error {
	_, snap, _, err := s.readBolt(false)
	if err != nil {
		return err
	}
	if err := s.recoverRewrite(); err != nil {
		return err
	}
	w, st, err := openWAL(s.walDir(), s.log, s.enc)
	if err != nil {
		return err
	}
	s.keyKnown = w.open.opened > 0
	if w.open.stale {
		// In plaintext (a data dir of a version without encryption) or
		// under a key being rotated away from: rewritten under the key.
		w.close()
		if err := s.rewriteLog(st); err != nil {
			return err
		}
		if w, st, err = openWAL(s.walDir(), s.log, s.enc); err != nil {
			return err
		}
		s.rekeyed = true
	}
	snapsDone, err := s.rekeySnapshots()
	if err != nil {
		w.close()
		return err
	}
	if s.rekeyed || snapsDone {
		s.rekeyed = true
		s.log.Info("raft data dir rewritten under the current key", "dir", s.dir, "encrypted", s.enc.Key != nil)
	}
	if si, _ := snapIndexTerm(st.snap); st.snap != nil && si > snap.GetMetadata().GetIndex() {
		// A snapshot installed from the leader is written to the log
		// first: a crash before raft.db recorded it too leaves it only
		// there. Record it now, before compaction can delete its segment.
		if err := s.putSnapshot(st.snap); err != nil {
			w.close()
			return err
		}
		snap = st.snap
	}
	mem, err := s.check(st.hs, snap, st.ents)
	if err != nil {
		w.close()
		return err
	}
	// Leave out what was compacted before (never past the snapshot: the
	// node compacts only behind it).
	first, _ := mem.FirstIndex()
	if c := min(st.compactTo, snap.GetMetadata().GetIndex()); c >= first {
		if err := mem.Compact(c); err != nil {
			w.close()
			return fmt.Errorf("raft: open %s: compact to %d: %w", s.dir, c, err)
		}
	}
	s.mem, s.wal = mem, w
	return nil
}

// check builds the mirror from what was read and verifies it: the log
// against the snapshot, the commit index against the log, and the
// snapshot's data file.
func (s *DiskStorage) check(hs *raftpb.HardState, snap *raftpb.Snapshot, ents []*raftpb.Entry) (*etcdraft.MemoryStorage, error) {
	mem, err := buildMirror(snap, ents)
	if err != nil {
		return nil, fmt.Errorf("raft: open %s: %w", s.dir, err)
	}
	si, st := snapIndexTerm(snap)
	if hs != nil {
		hs = proto.Clone(hs).(*raftpb.HardState)
		// The snapshot is of committed entries; the commit index that
		// said so may have been written without an fdatasync (see Save).
		if hs.GetCommit() < si {
			hs.Commit = new(si)
		}
		last, _ := mem.LastIndex()
		if hs.GetCommit() > last {
			return nil, fmt.Errorf("raft: open %s: hard state commits index %d but the log ends at %d (entries lost): %w",
				s.dir, hs.GetCommit(), last, ErrCorrupt)
		}
		mem.SetHardState(hs)
	}
	if si > 0 {
		if err := s.verifySnapshotFile(si, st, snap.GetData()); err != nil {
			return nil, err
		}
	}
	return mem, nil
}

func (s *DiskStorage) putSnapshot(snap *raftpb.Snapshot) error {
	b, err := proto.Marshal(snap)
	if err != nil {
		return fmt.Errorf("raft: record snapshot: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySnapshot, frame(b))
	})
	if err != nil {
		return fmt.Errorf("raft: record snapshot in %s: %w", s.dbPath(), err)
	}
	return nil
}

// buildMirror rebuilds etcd raft's MemoryStorage from the stored snapshot
// metadata and entries. After a local compaction the log starts before the
// snapshot (entries are kept for slow followers): its first entry then
// stands for the compaction point, as in MemoryStorage.Compact.
func buildMirror(snap *raftpb.Snapshot, ents []*raftpb.Entry) (*etcdraft.MemoryStorage, error) {
	mem := etcdraft.NewMemoryStorage()
	si, _ := snapIndexTerm(snap)
	switch {
	case si > 0 && len(ents) > 0 && ents[0].GetIndex() < si:
		d := ents[0]
		base := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
			Index: new(d.GetIndex()), Term: new(d.GetTerm()), ConfState: snap.GetMetadata().GetConfState(),
		}}
		if err := mem.ApplySnapshot(base); err != nil {
			return nil, err
		}
		if err := mem.Append(ents[1:]); err != nil {
			return nil, err
		}
		last, _ := mem.LastIndex()
		if si > last {
			return nil, fmt.Errorf("snapshot at %d is past the log's end %d: %w", si, last, ErrCorrupt)
		}
		t, _ := mem.Term(si)
		if t != snap.GetMetadata().GetTerm() {
			return nil, fmt.Errorf("snapshot at %d has term %d, the log says %d: %w", si, snap.GetMetadata().GetTerm(), t, ErrCorrupt)
		}
		if _, err := mem.CreateSnapshot(si, snap.GetMetadata().GetConfState(), snap.GetData()); err != nil {
			return nil, err
		}
	case si > 0:
		// A log compacted exactly to the snapshot keeps the snapshot's own
		// entry. It was once taken as the base instead of the snapshot:
		// its term went unchecked and the snapshot's reference to its data
		// was lost (found by FuzzDiskStorage).
		if len(ents) > 0 && ents[0].GetIndex() == si {
			if t := ents[0].GetTerm(); t != snap.GetMetadata().GetTerm() {
				return nil, fmt.Errorf("snapshot at %d has term %d, the log says %d: %w", si, snap.GetMetadata().GetTerm(), t, ErrCorrupt)
			}
			ents = ents[1:]
		}
		if err := mem.ApplySnapshot(snap); err != nil {
			return nil, err
		}
		if len(ents) > 0 && ents[0].GetIndex() != si+1 {
			return nil, fmt.Errorf("log starts at %d, after a snapshot at %d: %w", ents[0].GetIndex(), si, ErrCorrupt)
		}
		if err := mem.Append(ents); err != nil {
			return nil, err
		}
	default:
		if len(ents) > 0 && ents[0].GetIndex() != 1 {
			return nil, fmt.Errorf("log starts at %d without a snapshot: %w", ents[0].GetIndex(), ErrCorrupt)
		}
		if err := mem.Append(ents); err != nil {
			return nil, err
		}
	}
	return mem, nil
}

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

// InitialState implements etcd raft's Storage.
func (s *DiskStorage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	return s.mem.InitialState()
}

// Entries implements etcd raft's Storage.
func (s *DiskStorage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	return s.mem.Entries(lo, hi, maxSize)
}

// Term implements etcd raft's Storage.
func (s *DiskStorage) Term(i uint64) (uint64, error) { return s.mem.Term(i) }

// LastIndex implements etcd raft's Storage.
func (s *DiskStorage) LastIndex() (uint64, error) { return s.mem.LastIndex() }

// FirstIndex implements etcd raft's Storage.
func (s *DiskStorage) FirstIndex() (uint64, error) { return s.mem.FirstIndex() }

// Snapshot implements etcd raft's Storage.
func (s *DiskStorage) Snapshot() (*raftpb.Snapshot, error) { return s.mem.Snapshot() }

// Bind implements Storage.
func (s *DiskStorage) Bind(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == id {
		return nil
	}
	if s.id != 0 {
		return fmt.Errorf("raft: data dir %s belongs to member %x, not %x", s.dir, s.id, id)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyID, frame(key(id)))
	})
	if err != nil {
		return fmt.Errorf("raft: record member ID: %w", err)
	}
	s.id = id
	return nil
}

// Save implements Storage: one write to the log, and one fdatasync when
// raft says the Ready must be durable, for everything it asks to persist.
// An installed snapshot starts a new log segment and is recorded in
// raft.db too (rare: a follower that fell behind).
func (s *DiskStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot, mustSync bool) error {
	hasSnap := !etcdraft.IsEmptySnap(snap)
	hasHS := !etcdraft.IsEmptyHardState(hs)
	if !hasSnap && !hasHS && len(ents) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if hasSnap {
		// The log first: a crash before raft.db has it too is completed
		// when the directory is opened (load). Snapshot data is a
		// reference (snapRef) to the file already received.
		if err := s.wal.installSnapshot(snap, hs, ents); err != nil {
			return err
		}
		if err := s.putSnapshot(snap); err != nil {
			return err
		}
	} else {
		// Only the commit index moved when there is nothing else and
		// raft's MustSync is false: write it, but without an fdatasync. It
		// must reach the file: a member that restarts with a stale commit
		// index replays too few configuration changes, may believe itself
		// alone in a smaller cluster and elect itself there. A process
		// crash keeps an unsynced write; only a machine crash can lose it,
		// as in etcd.
		sync := mustSync || len(ents) > 0
		cur, _, _ := s.mem.InitialState()
		if err := s.wal.write(hs, ents, sync, cur); err != nil {
			return err
		}
	}
	if hasSnap {
		if err := s.mem.ApplySnapshot(snap); err != nil {
			return fmt.Errorf("raft: install snapshot: %w", err)
		}
	}
	if err := s.mem.Append(ents); err != nil {
		return fmt.Errorf("raft: append: %w", err)
	}
	if hasHS {
		s.mem.SetHardState(hs)
	}
	if hasSnap {
		s.pruneSnapshots()
	}
	return nil
}

// CreateSnapshot implements Storage. The commit index is not raised here:
// opening the directory raises it to the snapshot's index (check).
func (s *DiskStorage) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, _ := s.mem.Snapshot()
	if index <= cur.GetMetadata().GetIndex() {
		return nil
	}
	term, err := s.mem.Term(index)
	if err != nil {
		return fmt.Errorf("raft: create snapshot at %d: %w", index, err)
	}
	snap := &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{
		Index: new(index), Term: new(term), ConfState: cs,
	}}
	if err := s.putSnapshot(snap); err != nil {
		return fmt.Errorf("raft: create snapshot at %d: %w", index, err)
	}
	if _, err := s.mem.CreateSnapshot(index, cs, data); err != nil {
		return fmt.Errorf("raft: create snapshot at %d: %w", index, err)
	}
	s.pruneSnapshots()
	return nil
}

// Compact implements Storage: the mirror drops the entries; on disk,
// whole segments holding only entries before index are deleted.
func (s *DiskStorage) Compact(index uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	first, _ := s.mem.FirstIndex()
	if index < first {
		return nil
	}
	if err := s.mem.Compact(index); err != nil && err != etcdraft.ErrCompacted {
		return fmt.Errorf("raft: compact log to %d: %w", index, err)
	}
	if err := s.wal.compact(index); err != nil {
		return fmt.Errorf("raft: compact log to %d: %w", index, err)
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

// MarkRemoved implements Storage.
func (s *DiskStorage) MarkRemoved() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyRemoved, []byte{1})
	})
	if err != nil {
		return fmt.Errorf("raft: record removal: %w", err)
	}
	s.removed = true
	return nil
}

// Removed implements Storage.
func (s *DiskStorage) Removed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removed
}

// Dir returns the data directory.
func (s *DiskStorage) Dir() string { return s.dir }

// Close implements Storage.
func (s *DiskStorage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	werr := s.wal.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raft: close %s: %w", s.dbPath(), err)
	}
	if werr != nil {
		return fmt.Errorf("raft: close log: %w", werr)
	}
	return nil
}

// HasState reports whether dir holds a member's state: log entries, a hard
// state or a snapshot. A member that was created but never admitted to a
// group has none (swarm joins it again on restart). A directory that cannot
// be read counts as holding state, so that opening it reports the damage.
func HasState(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		return false
	}
	s, err := OpenDiskStorage(dir)
	if err != nil {
		return true
	}
	defer s.Close()
	last, _ := s.LastIndex()
	hs, _, _ := s.InitialState()
	snap, _ := s.Snapshot()
	idx, _ := snapIndexTerm(snap)
	return last > 0 || idx > 0 || !etcdraft.IsEmptyHardState(hs)
}
