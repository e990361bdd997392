package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/apiary-io/apiary/swarm/api"
)

// The snapshot format is one JSON value per line, so it streams object by
// object in both directions and never holds the state as one message:
//
//	{"apiary_store":1,"index":42}            header
//	{"k":"node","o":{...}}                   one line per object, by kind then ID
//	{"end":true,"objects":N,"crc32":C}       trailer
//
// The trailer's count and its CRC-32 (IEEE) of every preceding byte let
// Restore tell a complete stream from a torn or corrupted one. JSON never
// writes a raw newline inside a value, so lines frame the records.
const snapshotFormat = 1

type snapshotHeader struct {
	Format int    `json:"apiary_store"`
	Index  uint64 `json:"index"`
}

type snapshotRecord struct {
	Kind    api.Kind        `json:"k,omitempty"`
	Object  json.RawMessage `json:"o,omitempty"`
	End     bool            `json:"end,omitempty"`
	Objects uint64          `json:"objects,omitempty"`
	CRC     uint32          `json:"crc32,omitempty"`
}

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
	db := s.db.Load()
	index := s.index.Load()
	s.mu.Unlock()
	return func(w io.Writer) error { return saveState(w, db, index) }, nil
}

func saveState(w io.Writer, db *dbState, index uint64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	crc := crc32.NewIEEE()
	out := io.MultiWriter(bw, crc)
	line := func(b []byte) error {
		if _, err := out.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("save snapshot: %w", err)
		}
		return nil
	}
	hdr, err := json.Marshal(snapshotHeader{Format: snapshotFormat, Index: index})
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if err := line(hdr); err != nil {
		return err
	}
	var n uint64
	var buf bytes.Buffer
	for _, ki := range kindList {
		prefix := `{"k":"` + string(ki.kind) + `","o":`
		var err error
		db.find(ki, selector{all: true}, func(o api.Object) bool {
			var obj []byte
			obj, err = json.Marshal(o)
			if err != nil {
				err = fmt.Errorf("save snapshot: %s %s: %w", ki.kind, o.GetID(), err)
				return false
			}
			// Written by hand around the object's JSON: a RawMessage field
			// would be re-validated and copied by json.Marshal.
			buf.Reset()
			buf.WriteString(prefix) // kinds are plain lower-case words
			buf.Write(obj)
			buf.WriteByte('}')
			if err = line(buf.Bytes()); err != nil {
				return false
			}
			n++
			return true
		})
		if err != nil {
			return err
		}
	}
	trailer, err := json.Marshal(snapshotRecord{End: true, Objects: n, CRC: crc.Sum32()})
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	if _, err := bw.Write(append(trailer, '\n')); err != nil {
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
// Save. It builds the new state aside, validating every record (format,
// kinds, IDs, duplicate IDs and names, versions not above the index, the
// trailer's count and checksum), and swaps it in atomically: on any error
// the store is unchanged. Watchers then get one ActionRestore event with the
// new index, after which they must re-read what they track.
func (s *MemoryStore) Restore(r io.Reader) error {
	w := newDB().writer()

	br := bufio.NewReaderSize(r, 64<<10)
	crc := crc32.NewIEEE()
	readLine := func(what string) ([]byte, error) {
		b, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(b) == 0 {
				return nil, fmt.Errorf("restore: stream ends before %s (truncated): %w", what, ErrBadSnapshot)
			}
			return nil, fmt.Errorf("restore: stream ends inside %s (truncated): %w", what, ErrBadSnapshot)
		}
		if err != nil {
			return nil, fmt.Errorf("restore: reading %s: %w", what, err)
		}
		return b, nil
	}

	b, err := readLine("the header")
	if err != nil {
		return err
	}
	crc.Write(b)
	var hdr snapshotHeader
	if err := json.Unmarshal(b, &hdr); err != nil || hdr.Format == 0 {
		return fmt.Errorf("restore: header is not a store snapshot header: %w", ErrBadSnapshot)
	}
	if hdr.Format != snapshotFormat {
		return fmt.Errorf("restore: snapshot format %d, this store reads %d: %w", hdr.Format, snapshotFormat, ErrBadSnapshot)
	}

	var n uint64
	for {
		what := fmt.Sprintf("record %d", n+1)
		b, err := readLine(what)
		if err != nil {
			return err
		}
		var rec snapshotRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("restore: %s: %v: %w", what, err, ErrBadSnapshot)
		}
		if rec.End {
			if rec.Objects != n {
				return fmt.Errorf("restore: trailer counts %d objects, stream has %d: %w", rec.Objects, n, ErrBadSnapshot)
			}
			if sum := crc.Sum32(); rec.CRC != sum {
				return fmt.Errorf("restore: checksum mismatch (trailer %08x, stream %08x): %w", rec.CRC, sum, ErrBadSnapshot)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return fmt.Errorf("restore: data after the trailer: %w", ErrBadSnapshot)
			}
			break
		}
		crc.Write(b)
		if err := restoreObject(w, hdr.Index, rec); err != nil {
			return fmt.Errorf("restore: %s: %w", what, err)
		}
		n++
	}
	db := w.commit()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.db.Store(db)
	s.index.Store(hdr.Index)
	s.publishLocked([]Event{{Action: ActionRestore, Version: hdr.Index}})
	return nil
}

func restoreObject(w *dbWriter, index uint64, rec snapshotRecord) error {
	ki, err := lookupKind(rec.Kind)
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrBadSnapshot)
	}
	if len(rec.Object) == 0 {
		return fmt.Errorf("%s without an object: %w", rec.Kind, ErrBadSnapshot)
	}
	o := ki.newObject()
	if err := json.Unmarshal(rec.Object, o); err != nil {
		return fmt.Errorf("%s: %v: %w", rec.Kind, err, ErrBadSnapshot)
	}
	id := o.GetID()
	if id == "" {
		return fmt.Errorf("%s with an empty ID: %w", rec.Kind, ErrBadSnapshot)
	}
	if v := o.GetMeta().Version; v > index {
		return fmt.Errorf("%s %s has version %d above the snapshot index %d: %w", rec.Kind, id, v, index, ErrBadSnapshot)
	}
	if w.get(ki, id) != nil {
		return fmt.Errorf("%s %s appears twice: %w", rec.Kind, id, ErrBadSnapshot)
	}
	if err := checkName(ki, o, w.nameHolder); err != nil {
		return fmt.Errorf("%s %s: %v: %w", rec.Kind, id, err, ErrBadSnapshot)
	}
	w.put(ki, o)
	return nil
}
