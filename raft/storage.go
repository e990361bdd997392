package raft

import (
	"bytes"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"

	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Storage is a node's durable state: raft's log, hard state and snapshot
// metadata (read by raft through the embedded etcd raft Storage), and the
// snapshot data. DiskStorage keeps it in log segments, bbolt and files; MemoryStorage in
// memory for tests.
//
// The node calls Save from its raft loop and CreateSnapshot, Compact and
// the snapshot-data methods from its apply goroutine and transport
// handlers: implementations must be safe for concurrent use.
type Storage interface {
	etcdraft.Storage

	// Bind checks that the storage belongs to member id (recording id if
	// the storage is new), so a data directory is never started under
	// another identity.
	Bind(id uint64) error
	// Save stores what one Ready asks, atomically and durably (fsync)
	// before it returns: an incoming snapshot's metadata (which replaces
	// the log), then the entries (replacing any conflicting suffix), then
	// the hard state. Any of them may be empty. mustSync is raft's
	// Ready.MustSync: when it is false and there are no entries and no
	// snapshot, only the commit index moved, which raft can learn again
	// from the leader; the implementation may then defer writing hs to
	// the next Save (saving a disk sync per commit on the leader), but
	// CreateSnapshot must still record a commit index at least as high as
	// the snapshot's.
	Save(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot, mustSync bool) error
	// CreateSnapshot records a snapshot taken locally at index whose data
	// was committed through NewSnapshotSink; data is raft's Snapshot.Data.
	// A snapshot not newer than the current one is ignored.
	CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error
	// Compact discards the log entries before index (the entry at index
	// keeps its term for raft's matching).
	Compact(index uint64) error
	// NewSnapshotSink starts writing the data of the snapshot at index and
	// term; it becomes visible to OpenSnapshot only once committed.
	NewSnapshotSink(index, term uint64) (SnapshotSink, error)
	// OpenSnapshot opens the data of the snapshot at index and term.
	OpenSnapshot(index, term uint64) (io.ReadCloser, error)
	// MarkRemoved durably records that this member was removed from the
	// cluster, so that it refuses to start again; Removed reports it.
	MarkRemoved() error
	Removed() bool
	// Close releases the storage.
	Close() error
}

// SnapshotSink receives the data of one snapshot.
type SnapshotSink interface {
	io.Writer
	// Commit makes the data durable and visible, and returns its size and
	// CRC-32C.
	Commit() (size uint64, crc uint32, err error)
	// Abort discards the data.
	Abort()
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newCRC() hash.Hash32 { return crc32.New(castagnoli) }

func snapIndexTerm(s *raftpb.Snapshot) (uint64, uint64) {
	return s.GetMetadata().GetIndex(), s.GetMetadata().GetTerm()
}

// MemoryStorage is a Storage in memory, for tests and for users' tests. A
// node stopped and started again with the same MemoryStorage finds its
// state as a restarted process finds its disk.
type MemoryStorage struct {
	*etcdraft.MemoryStorage

	mu      sync.Mutex
	id      uint64
	snaps   map[[2]uint64][]byte
	removed bool
}

// NewMemoryStorage returns an empty in-memory storage.
func NewMemoryStorage() *MemoryStorage {
	return &MemoryStorage{MemoryStorage: etcdraft.NewMemoryStorage(), snaps: map[[2]uint64][]byte{}}
}

var _ Storage = (*MemoryStorage)(nil)

// Bind implements Storage.
func (m *MemoryStorage) Bind(id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.id != 0 && m.id != id {
		return fmt.Errorf("raft: storage belongs to member %x, not %x", m.id, id)
	}
	m.id = id
	return nil
}

// Save implements Storage.
func (m *MemoryStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry, snap *raftpb.Snapshot, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !etcdraft.IsEmptySnap(snap) {
		if err := m.MemoryStorage.ApplySnapshot(snap); err != nil {
			return fmt.Errorf("raft: apply snapshot to memory storage: %w", err)
		}
	}
	if err := m.MemoryStorage.Append(ents); err != nil {
		return fmt.Errorf("raft: append to memory storage: %w", err)
	}
	if !etcdraft.IsEmptyHardState(hs) {
		if err := m.MemoryStorage.SetHardState(hs); err != nil {
			return fmt.Errorf("raft: set hard state: %w", err)
		}
	}
	return nil
}

// CreateSnapshot implements Storage.
func (m *MemoryStorage) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.MemoryStorage.CreateSnapshot(index, cs, data); err != nil && err != etcdraft.ErrSnapOutOfDate {
		return fmt.Errorf("raft: create snapshot at %d: %w", index, err)
	}
	m.pruneLocked()
	return nil
}

// pruneLocked drops snapshot data older than the one before the current
// snapshot: the previous one may still be streaming to a follower.
func (m *MemoryStorage) pruneLocked() {
	s, _ := m.MemoryStorage.Snapshot()
	cur := s.GetMetadata().GetIndex()
	var prev uint64
	for k := range m.snaps {
		if k[0] < cur && k[0] > prev {
			prev = k[0]
		}
	}
	for k := range m.snaps {
		if k[0] < prev {
			delete(m.snaps, k)
		}
	}
}

// Compact implements Storage.
func (m *MemoryStorage) Compact(index uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.MemoryStorage.Compact(index); err != nil && err != etcdraft.ErrCompacted {
		return fmt.Errorf("raft: compact log to %d: %w", index, err)
	}
	return nil
}

type memSink struct {
	m     *MemoryStorage
	key   [2]uint64
	buf   bytes.Buffer
	crc   hash.Hash32
	ended bool
}

func (s *memSink) Write(p []byte) (int, error) {
	s.crc.Write(p)
	return s.buf.Write(p)
}

func (s *memSink) Commit() (uint64, uint32, error) {
	if s.ended {
		return 0, 0, fmt.Errorf("raft: snapshot sink already closed")
	}
	s.ended = true
	s.m.mu.Lock()
	s.m.snaps[s.key] = s.buf.Bytes()
	s.m.mu.Unlock()
	return uint64(s.buf.Len()), s.crc.Sum32(), nil
}

func (s *memSink) Abort() { s.ended = true }

// NewSnapshotSink implements Storage.
func (m *MemoryStorage) NewSnapshotSink(index, term uint64) (SnapshotSink, error) {
	return &memSink{m: m, key: [2]uint64{index, term}, crc: newCRC()}, nil
}

// OpenSnapshot implements Storage.
func (m *MemoryStorage) OpenSnapshot(index, term uint64) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.snaps[[2]uint64{index, term}]
	if !ok {
		return nil, fmt.Errorf("raft: no data for snapshot %d (term %d)", index, term)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// MarkRemoved implements Storage.
func (m *MemoryStorage) MarkRemoved() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed = true
	return nil
}

// Removed implements Storage.
func (m *MemoryStorage) Removed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.removed
}

// Close implements Storage. The state stays, for a later restart.
func (m *MemoryStorage) Close() error { return nil }
