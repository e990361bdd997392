package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The write-ahead log keeps raft's entries and hard states in append-only
// segment files, dir/wal/<seq>.wal: what one Ready asks to persist is one
// write and, when raft says it must be durable, one fdatasync. bbolt's
// commit costs two (its pages, then its meta page), and a Ready's Save was
// nearly all of the raft loop's time (docs/benchmarks.md, issue 14).
//
// A segment is a sequence of records:
//
//	length  uint32, big endian: bytes of the body
//	crc     uint32, big endian: CRC-32C of the body
//	body    type byte, then the payload
//
// Every segment starts with a header record (a magic string and the
// segment's sequence number, so a file renamed or copied into the wrong
// place is not replayed) followed by the hard state of the moment it was
// started, so that older segments can be deleted without losing it.
// Entries replay as raft's MemoryStorage.Append: an entry at an index the
// log already holds replaces it and everything after it. A snapshot record
// (a snapshot installed from the leader) discards the whole log before it.
// A compaction record says the entries before its index are no longer
// needed: a reopened log leaves them out, as the compacted mirror did.
const (
	walRecHeader    = 1
	walRecEntry     = 2
	walRecHardState = 3
	walRecSnapshot  = 4
	walRecCompact   = 5
	// walRecSealed holds another record sealed (encryption.go): its
	// payload is the inner record's type and payload, sealed with the
	// storage's key. Every record but a segment's header is written so
	// when the storage has a key.
	walRecSealed = 6

	walMagic = "apiary-raft-wal/1"
	walHdr   = 8 // length and CRC

	// walSegmentBytes: a segment past this size is closed after the write
	// that took it there, and the next write starts a new one. Compaction
	// deletes whole segments, so the log's disk use lags its compaction by
	// up to this much, and opening reads up to this much more than the
	// log keeps. Starting a segment costs two fdatasyncs and a directory
	// sync: at 16 MiB, once per ~50,000 small entries.
	walSegmentBytes = 16 << 20
	// walPreallocBytes: the last segment is extended this many zero
	// bytes at a time, written rather than fallocated, and records
	// overwrite them in place. An fdatasync after a write into blocks
	// already allocated and written, within the file's size, flushes the
	// data alone; an append also commits a size and an extent change to
	// the file system's journal, and on ext4 under other processes' file
	// system activity that doubled its median (docs/benchmarks.md, issue
	// 14). The extension is paid once per this many bytes of log.
	walPreallocBytes = 1 << 20
	// walMaxRecord bounds a record read back: the largest entry a
	// configuration allows and its framing. A length field above it is
	// damage, not a record to allocate for.
	walMaxRecord = MaxEntrySizeLimit + 1<<20
)

// errTorn marks a record that ends the readable log: cut short, zeroed,
// or failing its checksum with nothing readable after it.
var errTorn = errors.New("incomplete record")

type walSegment struct {
	seq      uint64
	maxIndex uint64 // the highest entry index written in it (0: none)
}

// wal is the open log. Its methods are called with DiskStorage.mu held.
type wal struct {
	dir   string
	f     *os.File // the last segment, open for writing
	size  int64    // bytes of records in the last segment: where the next goes
	alloc int64    // the last segment's length: zeros after size
	segs  []walSegment
	buf   []byte // one Ready's records, reused
	// segBytes and prealloc are walSegmentBytes and walPreallocBytes;
	// tests lower them.
	segBytes, prealloc int64
	// seal, when set, seals every record written but the headers; open
	// opens the records read (and notes any that were not under seal).
	seal    Cipher
	open    *opener
	scratch []byte // a record's plaintext before it is sealed, reused
}

// walRecordAD is the associated data of a sealed log record.
var walRecordAD = []byte("apiary-raft-wal-record/1")

// record appends one framed record holding typ and m (or raw) to buf,
// sealed when the log has a key.
func (w *wal) record(buf []byte, typ byte, m proto.Message, raw []byte) ([]byte, error) {
	if w.seal == nil {
		return appendRecord(buf, typ, m, raw)
	}
	plain := append(w.scratch[:0], typ)
	if m != nil {
		var err error
		if plain, err = (proto.MarshalOptions{}).MarshalAppend(plain, m); err != nil {
			return nil, err
		}
	}
	plain = append(plain, raw...)
	w.scratch = plain[:0]
	if cap(plain) > 64<<20 {
		w.scratch = nil // do not keep a large entry's buffer for ever
	}
	start := len(buf)
	buf = append(buf, make([]byte, walHdr)...)
	buf = append(buf, walRecSealed)
	buf = w.seal.Seal(buf, plain, walRecordAD)
	body := buf[start+walHdr:]
	binary.BigEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32c(body))
	return buf, nil
}

// walState is what replaying the log found.
type walState struct {
	hs        *raftpb.HardState
	snap      *raftpb.Snapshot // the last snapshot record, nil if none
	ents      []*raftpb.Entry  // the log after it, contiguous
	compactTo uint64           // the last compaction record's index
}

func walName(seq uint64) string { return fmt.Sprintf("%016x.wal", seq) }

func (w *wal) path(seq uint64) string { return filepath.Join(w.dir, walName(seq)) }

// openWAL replays the log in dir and opens its last segment for
// appending. Damage in any segment but the last, or damage in the last
// that is followed by an intact record, is ErrCorrupt. A last segment that
// ends in an incomplete record (a write cut short by a crash) is cut back
// to its last whole record: only a write that no fdatasync completed can
// be incomplete, so nothing cut was ever acknowledged.
func openWAL(dir string, log *slog.Logger, enc Encryption) (*wal, *walState, error) {
	seqs, err := listSegments(dir)
	if errors.Is(err, os.ErrNotExist) || err == nil && len(seqs) == 0 {
		return nil, nil, fmt.Errorf("raft: open log: no segments in %s (the directory was removed or never finished): %w", dir, ErrCorrupt)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("raft: open log: %w", err)
	}
	w := &wal{dir: dir, segBytes: walSegmentBytes, prealloc: walPreallocBytes, seal: enc.Key, open: &opener{enc: enc}}
	st := &walState{}
	for i, seq := range seqs {
		if i > 0 && seq != seqs[i-1]+1 {
			return nil, nil, fmt.Errorf("raft: open log: segment %s follows %s: a segment is missing: %w",
				walName(seq), walName(seqs[i-1]), ErrCorrupt)
		}
		last := i == len(seqs)-1
		seg, good, err := w.replaySegment(seq, st, last)
		if err != nil {
			return nil, nil, err
		}
		w.segs = append(w.segs, seg)
		if !last {
			continue
		}
		path := w.path(seq)
		size, zeros, err := tailIsZero(path, good)
		if err != nil {
			return nil, nil, fmt.Errorf("raft: open log: %w", err)
		}
		w.alloc = size
		if !zeros {
			log.Warn("raft log ends in an incomplete write (a crash before its fdatasync returned); cutting it off",
				"segment", path, "kept_bytes", good, "dropped_bytes", size-good)
			if err := truncateSynced(path, good); err != nil {
				return nil, nil, err
			}
			w.alloc = good
		}
		if good == 0 {
			// Even the header was cut short: the segment was being created.
			if err := os.Remove(path); err != nil {
				return nil, nil, fmt.Errorf("raft: open log: %w", err)
			}
			if err := writeSegment(dir, seq, nil); err != nil {
				return nil, nil, err
			}
			good, _ = readSize(path)
			w.alloc = good
		}
		w.size = good
	}
	f, err := os.OpenFile(w.path(seqs[len(seqs)-1]), os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("raft: open log: %w", err)
	}
	w.f = f
	return w, st, nil
}

// replaySegment applies segment seq's records to st and returns the
// segment's bookkeeping and how many of its bytes are whole records.
func (w *wal) replaySegment(seq uint64, st *walState, last bool) (walSegment, int64, error) {
	path := w.path(seq)
	seg := walSegment{seq: seq}
	b, err := os.ReadFile(path)
	if err != nil {
		return seg, 0, fmt.Errorf("raft: read log segment: %w", err)
	}
	corrupt := func(off int, format string, a ...any) error {
		return fmt.Errorf("raft: log segment %s at byte %d: %s: %w", path, off, fmt.Sprintf(format, a...), ErrCorrupt)
	}
	off := 0
	for off < len(b) {
		typ, payload, n, err := readRecord(b[off:])
		if err != nil {
			if !last {
				return seg, 0, corrupt(off, "%v (not the last segment, so not a torn write)", err)
			}
			// A torn write leaves nothing whole after it; a flipped bit
			// (in a length as well as in a body) in a segment written
			// whole does.
			if at := intactAfter(b[off+1:]); at >= 0 {
				return seg, 0, corrupt(off, "%v, and an intact record follows at byte %d", err, off+1+at)
			}
			return seg, int64(off), nil
		}
		if off == 0 {
			if typ != walRecHeader || string(payload) != string(headerPayload(seq)) {
				return seg, 0, corrupt(off, "no header for segment %d", seq)
			}
			off += n
			continue
		}
		if typ == walRecSealed {
			plain, err := w.open.open(nil, payload, walRecordAD, fmt.Sprintf("raft log segment %s at byte %d", path, off))
			if err != nil {
				return seg, 0, err
			}
			if len(plain) == 0 || plain[0] == walRecHeader || plain[0] == walRecSealed {
				return seg, 0, corrupt(off, "sealed record of %d bytes holds no record", len(plain))
			}
			typ, payload = plain[0], plain[1:]
		} else {
			w.open.plain()
		}
		switch typ {
		case walRecEntry:
			e := &raftpb.Entry{}
			if err := proto.Unmarshal(payload, e); err != nil {
				return seg, 0, corrupt(off, "entry: %v", err)
			}
			if err := st.append(e); err != nil {
				return seg, 0, corrupt(off, "%v", err)
			}
			seg.maxIndex = max(seg.maxIndex, e.GetIndex())
		case walRecHardState:
			hs := &raftpb.HardState{}
			if err := proto.Unmarshal(payload, hs); err != nil {
				return seg, 0, corrupt(off, "hard state: %v", err)
			}
			st.hs = hs
		case walRecSnapshot:
			snap := &raftpb.Snapshot{}
			if err := proto.Unmarshal(payload, snap); err != nil {
				return seg, 0, corrupt(off, "snapshot: %v", err)
			}
			if si, _ := snapIndexTerm(snap); si == 0 {
				return seg, 0, corrupt(off, "snapshot record without an index")
			}
			st.snap, st.ents, st.compactTo = snap, nil, 0
		case walRecCompact:
			if len(payload) != 8 {
				return seg, 0, corrupt(off, "compaction record of %d bytes", len(payload))
			}
			st.compactTo = max(st.compactTo, binary.BigEndian.Uint64(payload))
		default:
			return seg, 0, corrupt(off, "record type %d", typ)
		}
		off += n
	}
	return seg, int64(off), nil
}

// append adds e to the replayed log as MemoryStorage.Append would.
func (st *walState) append(e *raftpb.Entry) error {
	i := e.GetIndex()
	if len(st.ents) == 0 {
		if si, _ := snapIndexTerm(st.snap); st.snap != nil && i != si+1 {
			return fmt.Errorf("entry %d after a snapshot at %d", i, si)
		}
		if i == 0 {
			return fmt.Errorf("entry with index 0")
		}
		st.ents = append(st.ents, e)
		return nil
	}
	first, last := st.ents[0].GetIndex(), st.ents[len(st.ents)-1].GetIndex()
	if i < first || i > last+1 {
		return fmt.Errorf("entry %d does not follow the log [%d, %d]", i, first, last)
	}
	st.ents = append(st.ents[:i-first], e)
	return nil
}

// write appends what one Ready asks and, if sync, waits for it to be on
// disk. After a write that takes the segment past walSegmentBytes, the
// next write goes to a new segment that starts with hs.
func (w *wal) write(hs *raftpb.HardState, ents []*raftpb.Entry, sync bool, cur *raftpb.HardState) error {
	buf, err := w.records(w.buf[:0], hs, ents)
	if err != nil {
		return err
	}
	w.buf = buf[:0]
	if len(buf) > 64<<20 {
		w.buf = nil // do not keep a large batch's buffer for ever
	}
	if err := w.append(buf, sync); err != nil {
		return err
	}
	if len(ents) > 0 {
		s := &w.segs[len(w.segs)-1]
		s.maxIndex = max(s.maxIndex, ents[len(ents)-1].GetIndex())
	}
	if w.size >= w.segBytes {
		latest := cur
		if !isEmptyHS(hs) {
			latest = hs
		}
		var head []byte
		if !isEmptyHS(latest) {
			if head, err = w.record(nil, walRecHardState, latest, nil); err != nil {
				return err
			}
		}
		return w.cut(head, 0)
	}
	return nil
}

// zeros is what segments are extended with.
var zeros = make([]byte, 64<<10)

// append writes buf after the last record, extending the segment with
// zeros first when it is too short, and waits for it to be on disk if
// sync.
func (w *wal) append(buf []byte, sync bool) error {
	end := w.size + int64(len(buf))
	if end > w.alloc {
		// Zeros from the end of buf to a step past it, not past the
		// segment's size (it is cut there); buf itself is written below.
		target := max(end, min(w.alloc+w.prealloc, w.segBytes))
		for off := end; off < target; {
			n := min(int64(len(zeros)), target-off)
			if _, err := w.f.WriteAt(zeros[:n], off); err != nil {
				return fmt.Errorf("raft: extend log segment %s: %w", w.f.Name(), err)
			}
			off += n
		}
		w.alloc = target
	}
	n, err := w.f.WriteAt(buf, w.size)
	w.size += int64(n)
	if err == nil && sync {
		err = fdatasync(w.f)
	}
	if err != nil {
		return fmt.Errorf("raft: write log segment %s: %w", w.f.Name(), err)
	}
	return nil
}

func (w *wal) records(buf []byte, hs *raftpb.HardState, ents []*raftpb.Entry) ([]byte, error) {
	var err error
	for _, e := range ents {
		if buf, err = w.record(buf, walRecEntry, e, nil); err != nil {
			return nil, fmt.Errorf("raft: encode entry %d: %w", e.GetIndex(), err)
		}
	}
	if !isEmptyHS(hs) {
		if buf, err = w.record(buf, walRecHardState, hs, nil); err != nil {
			return nil, fmt.Errorf("raft: encode hard state: %w", err)
		}
	}
	return buf, nil
}

// installSnapshot starts a new segment with the snapshot's record, then
// ents and hs, durably, and deletes every older segment: the snapshot
// replaces all they hold.
func (w *wal) installSnapshot(snap *raftpb.Snapshot, hs *raftpb.HardState, ents []*raftpb.Entry) error {
	head, err := w.record(nil, walRecSnapshot, snap, nil)
	if err != nil {
		return fmt.Errorf("raft: encode snapshot: %w", err)
	}
	if head, err = w.records(head, hs, ents); err != nil {
		return err
	}
	var maxIndex uint64
	if len(ents) > 0 {
		maxIndex = ents[len(ents)-1].GetIndex()
	}
	if err := w.cut(head, maxIndex); err != nil {
		return err
	}
	return w.dropBefore(len(w.segs) - 1)
}

// cut closes the current segment, synced and without its preallocated
// zeros (a segment before the last ends in its last record), and starts
// the next, holding recs, whose highest entry index is maxIndex.
func (w *wal) cut(recs []byte, maxIndex uint64) error {
	err := w.f.Truncate(w.size)
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("raft: close log segment %s: %w", w.f.Name(), err)
	}
	seq := w.segs[len(w.segs)-1].seq + 1
	if err := writeSegment(w.dir, seq, recs); err != nil {
		return err
	}
	f, err := os.OpenFile(w.path(seq), os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("raft: open log segment: %w", err)
	}
	size, err := f.Seek(0, 2)
	if err != nil {
		f.Close()
		return fmt.Errorf("raft: open log segment: %w", err)
	}
	w.f.Close()
	w.f, w.size, w.alloc = f, size, size
	w.segs = append(w.segs, walSegment{seq: seq, maxIndex: maxIndex})
	return nil
}

// compact records that the entries before index are not needed, without
// an fdatasync (losing the record only makes a reopened log longer), and
// deletes the oldest segments whose entries are all before index, never
// the last one.
func (w *wal) compact(index uint64) error {
	rec, err := w.record(nil, walRecCompact, nil, binary.BigEndian.AppendUint64(nil, index))
	if err != nil {
		return err
	}
	if err := w.append(rec, false); err != nil {
		return err
	}
	k := 0
	for k < len(w.segs)-1 && w.segs[k].maxIndex < index {
		k++
	}
	return w.dropBefore(k)
}

// dropBefore deletes the first k segments, oldest first, so that what
// remains after a crash midway is still a suffix of consecutive segments.
func (w *wal) dropBefore(k int) error {
	if k == 0 {
		return nil
	}
	for _, s := range w.segs[:k] {
		if err := os.Remove(w.path(s.seq)); err != nil {
			return fmt.Errorf("raft: delete log segment: %w", err)
		}
	}
	w.segs = slices.Delete(w.segs, 0, k)
	if err := syncDir(w.dir); err != nil {
		return fmt.Errorf("raft: delete log segments: %w", err)
	}
	return nil
}

func (w *wal) close() error {
	if w == nil || w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

func isEmptyHS(hs *raftpb.HardState) bool {
	return hs == nil || hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0
}
