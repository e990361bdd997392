package raft

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

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
