package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/apiary-io/apiary/internal/wire"
	"github.com/apiary-io/apiary/swarm/api"
)

// The snapshot format. Format 2, written since issue 14, is binary: raft
// writes a snapshot every 10,000 entries while the writes go on, and a
// follower that fell behind or a restarting manager reads one, and JSON
// made writing one a twentieth of a busy three-manager cluster's CPU.
// Objects are encoded by internal/wire, as in raft entries (fields by
// name, so another version's fields are skipped). Like format 1 it streams
// object by object in both directions, never the whole state as one
// message, and two stores with the same state write the same bytes (wire
// writes every map's entries in the order of their encoded keys).
//
//	header   the magic "\xB2apiary-store" (a format-1 snapshot starts
//	         with '{'), uvarint format (2), uvarint index
//	records  one per object, by kind then ID: uvarint length L
//	         (1 ≤ L ≤ maxSnapshotRecord), then L bytes: uvarint
//	         len(kind), kind, the object (wire.Append of it)
//	trailer  uvarint 0 (no record is empty), uvarint number of records,
//	         CRC-32 (IEEE) of every byte before the trailer, 4 bytes
//	         little endian; then the stream ends
//
// The count and the checksum let Restore tell a complete stream from a
// torn or corrupted one. Of the numbers read outside a record only the
// record length sizes anything, and it is checked against
// maxSnapshotRecord before anything is allocated for it (and then the
// buffer grows as the bytes arrive); a record's own lengths and counts are
// checked against the record's bytes (internal/wire).
//
// Format 1, JSON lines, is still read (restoreFormat1): data dirs and
// leaders of earlier versions hold it.
const snapshotFormat = 2

// snapshotMagic begins a format-2 snapshot; its first byte is the one a
// binary raft entry begins with.
const snapshotMagic = "\xB2apiary-store"

// maxSnapshotRecord bounds a record: the encoding of one object and its
// kind. Every object was written by one raft entry, which is at most
// raft.MaxEntrySizeLimit (64 MiB, the largest MaxEntrySize a configuration
// may set) and holds the same encoding; the MiB above it is room for the
// kind. Save refuses to write a larger record, Restore to read one.
const maxSnapshotRecord = 64<<20 + 1<<20

// Save writes the whole state and its index to w as a stream of records
// (see Restore). It reads one consistent snapshot and holds no lock while
// writing. Two stores with the same state write the same bytes.
func (s *MemoryStore) Save(w io.Writer) error {
	write, err := s.Snapshot()
	if err != nil {
		return err
	}
	return write(w)
}

// Snapshot takes the state as it is now, between two commits, and returns
// what writes it as Save does. Taking it costs nothing (a state is
// immutable: later writes copy what they change), so raft takes it where
// it applies entries and writes it in the background while writes go on
// (raft.Snapshotter).
func (s *MemoryStore) Snapshot() (func(io.Writer) error, error) {
	// The snapshot and its index must belong together: take both between
	// two commits.
	s.mu.Lock()
	db := s.currentLocked()
	index := s.index.Load()
	s.mu.Unlock()
	return func(w io.Writer) error { return saveState(w, db, index) }, nil
}

// recordHead is room before a record's bytes for its length, written once
// the record is encoded.
const recordHead = binary.MaxVarintLen64

func saveState(w io.Writer, db *dbState, index uint64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var crc uint32
	write := func(b []byte) error {
		crc = crc32.Update(crc, crc32.IEEETable, b)
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("save snapshot: %w", err)
		}
		return nil
	}
	hdr := binary.AppendUvarint([]byte(snapshotMagic), snapshotFormat)
	if err := write(binary.AppendUvarint(hdr, index)); err != nil {
		return err
	}
	var (
		n   uint64
		rec = make([]byte, recordHead, 512) // recordHead bytes, then the record
	)
	for _, ki := range kindList {
		var err error
		db.find(ki, selector{all: true}, func(o api.Object) bool {
			rec = binary.AppendUvarint(rec[:recordHead], uint64(len(ki.kind)))
			rec = append(rec, ki.kind...)
			if rec, err = wire.Append(rec, o); err != nil {
				err = fmt.Errorf("save snapshot: %s %s: %w", ki.kind, o.GetID(), err)
				return false
			}
			size := len(rec) - recordHead
			if size > maxSnapshotRecord {
				err = fmt.Errorf("save snapshot: %s %s is %d bytes, more than a snapshot record holds (%d)", ki.kind, o.GetID(), size, maxSnapshotRecord)
				return false
			}
			// The length, right before the record.
			var lb [binary.MaxVarintLen64]byte
			start := recordHead - binary.PutUvarint(lb[:], uint64(size))
			copy(rec[start:], lb[:recordHead-start])
			if err = write(rec[start:]); err != nil {
				return false
			}
			n++
			return true
		})
		if err != nil {
			return err
		}
	}
	trailer := binary.AppendUvarint(binary.AppendUvarint(nil, 0), n)
	trailer = binary.LittleEndian.AppendUint32(trailer, crc)
	if _, err := bw.Write(trailer); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	return nil
}

// ErrBadSnapshot is wrapped by Restore's errors about the stream itself:
// truncated, corrupted, or not a store snapshot.
var ErrBadSnapshot = errors.New("invalid store snapshot")

// Restore replaces the whole state and the index with a stream written by
// Save, of either format. It builds the new state aside, validating every
// record (format, kinds, IDs, duplicate IDs and names, versions not above
// the index, the trailer's count and checksum, nothing after the trailer),
// and swaps it in atomically: on any error the store is unchanged. Watchers
// then get one ActionRestore event with the new index, after which they
// must re-read what they track.
func (s *MemoryStore) Restore(r io.Reader) error {
	w := newDB().writer()
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.Peek(1)
	if err != nil {
		return readError("the header", err)
	}
	var index uint64
	switch first[0] {
	case snapshotMagic[0]:
		index, err = restoreFormat2(br, w)
	case '{':
		index, err = restoreFormat1(br, w)
	default:
		return fmt.Errorf("restore: not a store snapshot (first byte %#02x): %w", first[0], ErrBadSnapshot)
	}
	if err != nil {
		return err
	}
	db := w.commit()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.db.Store(db)
	s.w = nil // its state is the one replaced
	s.stale.Store(false)
	s.index.Store(index)
	s.publishLocked([]Event{{Action: ActionRestore, Version: index}})
	return nil
}

// snapReader reads a format-2 stream and sums what it read. Its errors are
// those of the stream (io.EOF when it ends before a value, else
// io.ErrUnexpectedEOF when inside one) or wrap ErrBadSnapshot; readError
// says of what.
type snapReader struct {
	br  *bufio.Reader
	crc uint32
	buf []byte // the last record, reused
}

var errVarint = fmt.Errorf("varint longer than 64 bits: %w", ErrBadSnapshot)

func (r *snapReader) uvarint() (uint64, error) {
	var b [binary.MaxVarintLen64]byte
	for i := range b {
		c, err := r.br.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		b[i] = c
		if c < 0x80 {
			v, n := binary.Uvarint(b[:i+1])
			if n <= 0 {
				return 0, errVarint
			}
			r.crc = crc32.Update(r.crc, crc32.IEEETable, b[:i+1])
			return v, nil
		}
	}
	return 0, errVarint
}

// full reads n bytes, n ≤ maxSnapshotRecord. The buffer grows as the bytes
// arrive, so a corrupt length in a short stream allocates no more than
// what the stream holds, plus a MiB.
func (r *snapReader) full(n int) ([]byte, error) {
	r.buf = r.buf[:0]
	for len(r.buf) < n {
		m := len(r.buf)
		r.buf = slices.Grow(r.buf, min(n-m, 1<<20))
		r.buf = r.buf[:min(n, cap(r.buf))]
		if _, err := io.ReadFull(r.br, r.buf[m:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // a length announced these bytes
			}
			return nil, err
		}
	}
	r.crc = crc32.Update(r.crc, crc32.IEEETable, r.buf)
	return r.buf, nil
}

// readError is the error of a failed read of what.
func readError(what string, err error) error {
	switch {
	case err == io.EOF:
		return fmt.Errorf("restore: stream ends before %s (truncated): %w", what, ErrBadSnapshot)
	case err == io.ErrUnexpectedEOF:
		return fmt.Errorf("restore: stream ends inside %s (truncated): %w", what, ErrBadSnapshot)
	case errors.Is(err, ErrBadSnapshot):
		return fmt.Errorf("restore: %s: %w", what, err)
	}
	return fmt.Errorf("restore: reading %s: %w", what, err)
}

func restoreFormat2(br *bufio.Reader, w *dbWriter) (uint64, error) {
	r := &snapReader{br: br}
	magic, err := r.full(len(snapshotMagic))
	if err != nil {
		return 0, readError("the header", err)
	}
	if string(magic) != snapshotMagic {
		return 0, fmt.Errorf("restore: header is not a store snapshot header: %w", ErrBadSnapshot)
	}
	format, err := r.uvarint()
	if err != nil {
		return 0, readError("the header", err)
	}
	if format != snapshotFormat {
		return 0, fmt.Errorf("restore: binary snapshot format %d, this store reads binary format %d and JSON format %d: %w", format, snapshotFormat, snapshotFormat1, ErrBadSnapshot)
	}
	index, err := r.uvarint()
	if err != nil {
		return 0, readError("the header", err)
	}
	var n uint64
	record := func() string { return fmt.Sprintf("record %d", n+1) } // only for errors: one per record would cost
	for {
		sum := r.crc // of every byte before the trailer, if this is it
		size, err := r.uvarint()
		if err != nil {
			return 0, readError(record(), err)
		}
		if size == 0 {
			return index, r.trailer(n, sum)
		}
		if size > maxSnapshotRecord {
			return 0, fmt.Errorf("restore: %s of %d bytes, more than a record holds (%d): %w", record(), size, maxSnapshotRecord, ErrBadSnapshot)
		}
		rec, err := r.full(int(size))
		if err != nil {
			return 0, readError(record(), err)
		}
		if err := restoreRecord(w, index, rec); err != nil {
			return 0, fmt.Errorf("restore: %s: %w", record(), err)
		}
		n++
	}
}

// trailer reads the rest of the trailer, whose first byte was read, and
// checks it against the n records read and the checksum sum of every byte
// before it; the stream must end there.
func (r *snapReader) trailer(n uint64, sum uint32) error {
	count, err := r.uvarint()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // its first byte was read
	}
	if err != nil {
		return readError("the trailer", err)
	}
	var b [4]byte
	if _, err := io.ReadFull(r.br, b[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return readError("the trailer", err)
	}
	if count != n {
		return fmt.Errorf("restore: trailer counts %d objects, stream has %d: %w", count, n, ErrBadSnapshot)
	}
	if c := binary.LittleEndian.Uint32(b[:]); c != sum {
		return fmt.Errorf("restore: checksum mismatch (trailer %08x, stream %08x): %w", c, sum, ErrBadSnapshot)
	}
	if _, err := r.br.ReadByte(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("restore: reading after the trailer: %w", err)
		}
		return fmt.Errorf("restore: data after the trailer: %w", ErrBadSnapshot)
	}
	return nil
}

// restoreRecord decodes a format-2 record and adds its object.
func restoreRecord(w *dbWriter, index uint64, rec []byte) error {
	size, m := binary.Uvarint(rec)
	if m <= 0 || size > uint64(len(rec)-m) {
		return fmt.Errorf("the kind's length does not fit the record: %w", ErrBadSnapshot)
	}
	kind := rec[m : m+int(size)]
	var ki *kindInfo
	for _, k := range kindList {
		if string(k.kind) == string(kind) {
			ki = k
			break
		}
	}
	if ki == nil {
		return fmt.Errorf("unknown object kind %q: %w", kind, ErrBadSnapshot)
	}
	o := ki.newObject()
	if err := wire.Unmarshal(rec[m+int(size):], o); err != nil {
		return fmt.Errorf("%s: %v: %w", ki.kind, err, ErrBadSnapshot)
	}
	return addRestored(w, index, ki, o)
}

// addRestored adds a restored object to the state being built, after the
// checks a snapshot's objects must pass whatever their format.
func addRestored(w *dbWriter, index uint64, ki *kindInfo, o api.Object) error {
	id := o.GetID()
	if id == "" {
		return fmt.Errorf("%s with an empty ID: %w", ki.kind, ErrBadSnapshot)
	}
	if v := o.GetMeta().Version; v > index {
		return fmt.Errorf("%s %s has version %d above the snapshot index %d: %w", ki.kind, id, v, index, ErrBadSnapshot)
	}
	if w.get(ki, id) != nil {
		return fmt.Errorf("%s %s appears twice: %w", ki.kind, id, ErrBadSnapshot)
	}
	if err := checkName(ki, o, w.nameHolder); err != nil {
		return fmt.Errorf("%s %s: %v: %w", ki.kind, id, err, ErrBadSnapshot)
	}
	shareParts(w, o, nil)
	w.put(ki, o)
	return nil
}
