package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unsafe"
)

// The codecs of the types that hold others: pointers, slices, maps and
// structs.

func pointerCodec(c *codec, t reflect.Type, building map[reflect.Type]*codec) {
	ec := build(t.Elem(), building)
	c.subs = []*codec{ec}
	et := t.Elem()
	// A pointer travels as what it points to. The composite builders set
	// their wire type before they recurse, so a recursive type's is known.
	c.wt = ec.wt
	c.zero = func(p unsafe.Pointer) bool { return *(*unsafe.Pointer)(p) == nil }
	c.enc = func(b []byte, p unsafe.Pointer) []byte { return ec.enc(b, *(*unsafe.Pointer)(p)) }
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		np := reflect.New(et).UnsafePointer()
		*(*unsafe.Pointer)(p) = np
		return ec.dec(d, np)
	}
}

func sliceCodec(c *codec, t reflect.Type, building map[reflect.Type]*codec) {
	c.wt = wtList
	ec := build(t.Elem(), building)
	c.subs = []*codec{ec}
	size := t.Elem().Size()
	c.zero = func(p unsafe.Pointer) bool { return *(*unsafe.Pointer)(p) == nil }
	c.enc = func(b []byte, p unsafe.Pointer) []byte {
		n := (*sliceHeader)(p).len
		data := (*sliceHeader)(p).data
		b = binary.AppendUvarint(b, uint64(n))
		for i := range n {
			ep := unsafe.Add(data, uintptr(i)*size)
			b = appendValue(b, ec, ep)
		}
		return b
	}
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		n, err := d.count()
		if err != nil {
			return err
		}
		s := reflect.NewAt(t, p).Elem()
		if n == 0 { // empty, not nil
			s.Set(reflect.MakeSlice(t, 0, 0))
			return nil
		}
		// Grown in place: reflect.MakeSlice would allocate a header too.
		*(*sliceHeader)(p) = sliceHeader{}
		s.Grow(n)
		s.SetLen(n)
		data := s.UnsafePointer()
		for i := range n {
			if err := d.value(ec, unsafe.Add(data, uintptr(i)*size)); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return nil
	}
}

type sliceHeader struct {
	data unsafe.Pointer
	len  int
	cap  int
}

func mapCodec(c *codec, t reflect.Type, building map[reflect.Type]*codec) {
	if t.Key().Kind() != reflect.String {
		c.err = fmt.Errorf("wire: %s: only string keys can be encoded", t)
		return
	}
	c.wt = wtMap
	kc, ec := build(t.Key(), building), build(t.Elem(), building)
	c.subs = []*codec{kc, ec}
	c.zero = func(p unsafe.Pointer) bool { return *(*unsafe.Pointer)(p) == nil }
	if t == reflect.TypeFor[map[string]string]() {
		stringMapCodec(c)
		return
	}
	kt, et := t.Key(), t.Elem()
	c.enc = func(b []byte, p unsafe.Pointer) []byte {
		m := reflect.NewAt(t, p).Elem()
		b = binary.AppendUvarint(b, uint64(m.Len()))
		k := reflect.New(kt).Elem()
		v := reflect.New(et).Elem()
		// Each entry is written after the map's end, then the entries
		// are moved into place in the order of their encoded keys.
		start := len(b)
		spans := make([]entrySpan, 0, m.Len())
		for it := m.MapRange(); it.Next(); {
			k.SetIterKey(it)
			v.SetIterValue(it)
			e := entrySpan{start: len(b)}
			b = appendValue(b, kc, k.Addr().UnsafePointer())
			e.keyEnd = len(b)
			b = appendValue(b, ec, v.Addr().UnsafePointer())
			e.end = len(b)
			spans = append(spans, e)
		}
		if len(spans) < 2 {
			return b
		}
		written := b[start:]
		slices.SortFunc(spans, func(x, y entrySpan) int {
			return bytes.Compare(b[x.start:x.keyEnd], b[y.start:y.keyEnd])
		})
		sorted := make([]byte, 0, len(written))
		for _, e := range spans {
			sorted = append(sorted, b[e.start:e.end]...)
		}
		copy(written, sorted)
		return b
	}
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		n, err := d.count()
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(t, n)
		d.inMap++
		defer func() { d.inMap-- }()
		for range n {
			k := reflect.New(kt)
			if err := d.value(kc, k.UnsafePointer()); err != nil {
				return err
			}
			v := reflect.New(et)
			if err := d.value(ec, v.UnsafePointer()); err != nil {
				return fmt.Errorf("[%q]: %w", k.Elem().String(), err)
			}
			m.SetMapIndex(k.Elem(), v.Elem())
		}
		reflect.NewAt(t, p).Elem().Set(m)
		return nil
	}
}

// entrySpan is where a map entry was written: [start, keyEnd) its key
// (with its wire type), [keyEnd, end) its value.
type entrySpan struct{ start, keyEnd, end int }

// compareEncodedStrings orders strings as their encodings compare (the
// length's uvarint, then the bytes), the order every map is written in.
func compareEncodedStrings(a, b string) int {
	var la, lb [binary.MaxVarintLen64]byte
	if c := bytes.Compare(binary.AppendUvarint(la[:0], uint64(len(a))), binary.AppendUvarint(lb[:0], uint64(len(b)))); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// stringMapCodec is mapCodec without reflection for labels, the maps most
// objects have.
func stringMapCodec(c *codec) {
	c.enc = func(b []byte, p unsafe.Pointer) []byte {
		m := *(*map[string]string)(p)
		b = binary.AppendUvarint(b, uint64(len(m)))
		var few [8]string
		keys := few[:0]
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareEncodedStrings)
		for _, k := range keys {
			v := m[k]
			b = append(binary.AppendUvarint(append(b, wtBytes), uint64(len(k))), k...)
			b = append(binary.AppendUvarint(append(b, wtBytes), uint64(len(v))), v...)
		}
		return b
	}
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		n, err := d.count()
		if err != nil {
			return err
		}
		m := make(map[string]string, n)
		for range n {
			k, err := d.stringValue()
			if err != nil {
				return err
			}
			v, err := d.stringValue()
			if err != nil {
				return fmt.Errorf("[%q]: %w", k, err)
			}
			m[k] = v
		}
		*(*map[string]string)(p) = m
		return nil
	}
}

func structCodec(c *codec, t reflect.Type, building map[reflect.Type]*codec) {
	c.wt = wtStruct
	var fields []field
	byName := map[string]int{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() && !(sf.Anonymous && sf.Type.Kind() == reflect.Struct) {
			// An embedded struct's fields are exported through it
			// even when its type is not (as encoding/json has them).
			continue
		}
		name, skip := jsonName(sf)
		if skip {
			continue
		}
		if _, dup := byName[name]; dup {
			c.err = fmt.Errorf("wire: %s: two fields named %q", t, name)
			return
		}
		byName[name] = len(fields)
		fc := build(sf.Type, building)
		c.subs = append(c.subs, fc)
		fields = append(fields, field{name: name, offset: sf.Offset, c: fc})
	}
	c.zero = func(p unsafe.Pointer) bool {
		for i := range fields {
			if !fields[i].c.zero(unsafe.Add(p, fields[i].offset)) {
				return false
			}
		}
		return true
	}
	c.enc = func(b []byte, p unsafe.Pointer) []byte {
		for i := range fields {
			f := &fields[i]
			fp := unsafe.Add(p, f.offset)
			if f.c.zero(fp) {
				continue
			}
			b = binary.AppendUvarint(b, uint64(len(f.name)))
			b = append(b, f.name...)
			b = append(b, f.c.wt)
			b = f.c.enc(b, fp)
		}
		return append(b, 0)
	}
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		d.depth++
		defer func() { d.depth-- }()
		if d.depth > MaxDepth {
			return errors.New("nested too deep")
		}
		// Fields come in the encoder's order, which is this version's
		// order of the struct: the next expected one is tried first.
		next := 0
		for {
			name, err := d.name()
			if err != nil {
				return err
			}
			if name == nil {
				return nil
			}
			wt, err := d.byte()
			if err != nil {
				return err
			}
			i := -1
			if next < len(fields) && string(name) == fields[next].name {
				i = next
			} else if j, ok := byName[string(name)]; ok {
				i = j
			}
			if i < 0 {
				// A field of another version.
				if err := d.skip(wt); err != nil {
					return fmt.Errorf("%s.%s: %w", t.Name(), name, err)
				}
				continue
			}
			next = i + 1
			f := &fields[i]
			if wt != f.c.wt {
				return fmt.Errorf("%s.%s: wire type %d, want %d", t.Name(), f.name, wt, f.c.wt)
			}
			if err := f.c.dec(d, unsafe.Add(p, f.offset)); err != nil {
				return fmt.Errorf("%s.%s: %w", t.Name(), f.name, err)
			}
		}
	}
}

// jsonName returns the name encoding/json gives the field, and whether it
// skips it. An embedded struct without a tag is one field named after its
// type here (JSON flattens it).
func jsonName(sf reflect.StructField) (string, bool) {
	tag := sf.Tag.Get("json")
	if tag == "-" {
		return "", true
	}
	name := tag
	for i := 0; i < len(tag); i++ {
		if tag[i] == ',' {
			name = tag[:i]
			break
		}
	}
	if name == "" {
		name = sf.Name
	}
	return name, false
}

// appendValue writes the wire type and the value at p: null for a nil
// pointer, slice or map, which decodes as nil again. An empty slice or map
// that is not nil is written as itself and decodes empty, not nil: a
// replica that decodes an entry holds what its proposer holds (a nil
// []byte among a map's values used to come back as []byte{} on the
// followers alone).
func appendValue(b []byte, c *codec, p unsafe.Pointer) []byte {
	switch c.typ.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice:
		// The first word of each is nil exactly when the value is nil.
		if *(*unsafe.Pointer)(p) == nil {
			return append(b, wtNull)
		}
	}
	return c.enc(append(b, c.wt), p)
}
