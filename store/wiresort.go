package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/apiary-io/apiary/internal/wire"
)

// internal/wire writes a map's entries in Go's iteration order, which is
// random; a snapshot must not be (two stores with the same state write the
// same bytes). mapSorter puts every map's entries of an encoding in the
// order of their encoded keys, which wire reads the same. Sorting moves
// entries within their map's bytes, so it works in place, and an object
// without a map of two entries or more is only read. It follows the format
// internal/wire documents, which cannot change without a new entry and
// snapshot format anyway:
//
//	varint 0, fixed64 1, bytes 2, struct 3 (fields: uvarint len(name),
//	name, wire type, value; then 0x00), list 4 (uvarint n, then n times
//	wire type, value), map 5 (uvarint n, then n times wire type, key,
//	wire type, value), null 6 (nothing).
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireStruct  = 3
	wireList    = 4
	wireMap     = 5
	wireNull    = 6
)

var errWireShort = errors.New("unexpected end of the encoding")

// mapSorter walks encodings; what it allocates is kept from one to the
// next.
type mapSorter struct {
	b     []byte
	off   int
	depth int
	// entries holds the entries of the maps being sorted, innermost last.
	entries []mapEntry
	scratch []byte
}

// mapEntry is one map entry: [start, keyEnd) is its key (with its wire
// type), [keyEnd, end) its value.
type mapEntry struct{ start, keyEnd, end int }

// sortMaps sorts the entries of every map in b, the encoding of a struct
// as wire.Append wrote it.
func (m *mapSorter) sortMaps(b []byte) error {
	m.b, m.off, m.depth = b, 0, 0
	defer func() { m.b = nil }()
	if err := m.value(wireStruct); err != nil {
		return fmt.Errorf("sort the maps of an encoding at byte %d: %w", m.off, err)
	}
	if m.off != len(b) {
		return fmt.Errorf("sort the maps of an encoding: %d bytes after its end", len(b)-m.off)
	}
	return nil
}

func (m *mapSorter) uvarint() (uint64, error) {
	if m.off < len(m.b) && m.b[m.off] < 0x80 {
		m.off++
		return uint64(m.b[m.off-1]), nil
	}
	v, n := binary.Uvarint(m.b[m.off:])
	if n <= 0 {
		return 0, errors.New("bad varint")
	}
	m.off += n
	return v, nil
}

func (m *mapSorter) skip(n uint64) error {
	if n > uint64(len(m.b)-m.off) {
		return errWireShort
	}
	m.off += int(n)
	return nil
}

// typed reads a wire type byte and the value it announces.
func (m *mapSorter) typed() error {
	if m.off >= len(m.b) {
		return errWireShort
	}
	m.off++
	return m.value(m.b[m.off-1])
}

// value reads a value of wire type wt, sorting the maps in it.
func (m *mapSorter) value(wt byte) error {
	if m.depth++; m.depth > wire.MaxDepth {
		return errors.New("nested too deep")
	}
	err := m.valueIn(wt)
	m.depth--
	return err
}

func (m *mapSorter) valueIn(wt byte) error {
	switch wt {
	case wireVarint:
		_, err := m.uvarint()
		return err
	case wireFixed64:
		return m.skip(8)
	case wireBytes:
		n, err := m.uvarint()
		if err != nil {
			return err
		}
		return m.skip(n)
	case wireStruct:
		for {
			n, err := m.uvarint()
			if err != nil || n == 0 {
				return err
			}
			if err := m.skip(n); err != nil {
				return err
			}
			if err := m.typed(); err != nil {
				return err
			}
		}
	case wireList:
		n, err := m.uvarint()
		if err != nil {
			return err
		}
		for range n {
			if err := m.typed(); err != nil {
				return err
			}
		}
		return nil
	case wireMap:
		n, err := m.uvarint()
		if err != nil {
			return err
		}
		if n < 2 {
			for range 2 * n {
				if err := m.typed(); err != nil {
					return err
				}
			}
			return nil
		}
		return m.sortEntries(n)
	case wireNull:
		return nil
	}
	return fmt.Errorf("unknown wire type %d", wt)
}

// sortEntries reads a map's n entries and puts them in the order of their
// keys' bytes (keys are distinct: they come from a Go map).
func (m *mapSorter) sortEntries(n uint64) error {
	if n > uint64(len(m.b)-m.off) { // an entry takes at least a byte
		return errWireShort
	}
	base := len(m.entries)
	defer func() { m.entries = m.entries[:base] }()
	for range n {
		e := mapEntry{start: m.off}
		if err := m.typed(); err != nil {
			return err
		}
		e.keyEnd = m.off
		if err := m.typed(); err != nil {
			return err
		}
		e.end = m.off
		m.entries = append(m.entries, e)
	}
	ents := m.entries[base:]
	key := func(e mapEntry) []byte { return m.b[e.start:e.keyEnd] }
	if slices.IsSortedFunc(ents, func(a, b mapEntry) int { return bytes.Compare(key(a), key(b)) }) {
		return nil
	}
	start, end := ents[0].start, ents[len(ents)-1].end
	m.scratch = append(m.scratch[:0], m.b[start:end]...)
	// Entries by position in scratch, sorted by their keys there.
	for i := range ents {
		ents[i].start -= start
		ents[i].keyEnd -= start
		ents[i].end -= start
	}
	slices.SortFunc(ents, func(a, b mapEntry) int {
		return bytes.Compare(m.scratch[a.start:a.keyEnd], m.scratch[b.start:b.keyEnd])
	})
	at := start
	for _, e := range ents {
		at += copy(m.b[at:], m.scratch[e.start:e.end])
	}
	return nil
}
