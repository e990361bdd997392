package store

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/apiary-io/apiary/swarm/api"
)

// Format 1 of the snapshot, written before issue 14's format 2 and still
// read (data dirs and leaders of earlier versions hold it): one JSON value
// per line.
//
//	{"apiary_store":1,"index":42}            header
//	{"k":"node","o":{...}}                   one line per object, by kind then ID
//	{"end":true,"objects":N,"crc32":C}       trailer
//
// The trailer's CRC-32 (IEEE) covers every line before it. JSON never
// writes a raw newline inside a value, so lines frame the records. A line
// is not bounded by the format; maxFormat1Line bounds what Restore reads.
const snapshotFormat1 = 1

// maxFormat1Line bounds a format-1 line: one object in JSON, written by
// one raft entry of at most raft.MaxEntrySizeLimit (64 MiB) of JSON, plus
// room for the record's own keys.
const maxFormat1Line = 64<<20 + 1<<20

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

// restoreFormat1 reads a format-1 stream into w and returns its index.
func restoreFormat1(br *bufio.Reader, w *dbWriter) (uint64, error) {
	crc := crc32.NewIEEE()
	var line []byte
	readLine := func(what string) ([]byte, error) {
		line = line[:0]
		for {
			frag, err := br.ReadSlice('\n')
			if len(line)+len(frag) > maxFormat1Line {
				return nil, fmt.Errorf("restore: %s is longer than %d bytes: %w", what, maxFormat1Line, ErrBadSnapshot)
			}
			line = append(line, frag...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return nil, readError(what, err)
			}
			return line, nil
		}
	}

	b, err := readLine("the header")
	if err != nil {
		return 0, err
	}
	crc.Write(b)
	var hdr snapshotHeader
	if err := json.Unmarshal(b, &hdr); err != nil || hdr.Format == 0 {
		return 0, fmt.Errorf("restore: header is not a store snapshot header: %w", ErrBadSnapshot)
	}
	if hdr.Format != snapshotFormat1 {
		return 0, fmt.Errorf("restore: snapshot format %d in a JSON header, this store reads format %d as JSON and %d in binary: %w", hdr.Format, snapshotFormat1, snapshotFormat, ErrBadSnapshot)
	}

	var n uint64
	for {
		what := fmt.Sprintf("record %d", n+1)
		b, err := readLine(what)
		if err != nil {
			return 0, err
		}
		var rec snapshotRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return 0, fmt.Errorf("restore: %s: %v: %w", what, err, ErrBadSnapshot)
		}
		if rec.End {
			if rec.Objects != n {
				return 0, fmt.Errorf("restore: trailer counts %d objects, stream has %d: %w", rec.Objects, n, ErrBadSnapshot)
			}
			if sum := crc.Sum32(); rec.CRC != sum {
				return 0, fmt.Errorf("restore: checksum mismatch (trailer %08x, stream %08x): %w", rec.CRC, sum, ErrBadSnapshot)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return 0, fmt.Errorf("restore: data after the trailer: %w", ErrBadSnapshot)
			}
			return hdr.Index, nil
		}
		crc.Write(b)
		if err := restoreJSONObject(w, hdr.Index, rec); err != nil {
			return 0, fmt.Errorf("restore: %s: %w", what, err)
		}
		n++
	}
}

func restoreJSONObject(w *dbWriter, index uint64, rec snapshotRecord) error {
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
	return addRestored(w, index, ki, o)
}
