// Package wire is a compact binary encoding of plain Go structs, for the
// hot paths that JSON made CPU-bound: the store's raft entries (every
// follower decodes every write) and the control API's messages.
//
// It keeps what made JSON safe to put in a replicated log, and drops the
// text: fields travel by name (their JSON name), so a field added or
// removed in another version is skipped or left zero, as encoding/json
// does; every value carries a wire type, so an unknown field can be skipped
// without knowing its Go type. Numbers are varints, strings and byte slices
// a length and their bytes, time.Time its MarshalBinary form (instant and
// zone offset, as RFC 3339 carries them), and a type with a MarshalText
// method (a task state) its text, so that what a name means never depends
// on a constant's number. Zero values are left out; a nil slice, map or
// pointer is left out too, and an empty non-nil one is written, so values
// round-trip exactly (JSON turns an empty slice with omitempty into nil).
//
// The types it takes are those of the API packages: structs of bools,
// integers, floats, strings, pointers, slices, string-keyed maps and
// time.Time. Anything else (interfaces, channels, functions, arrays,
// other map keys, a type with MarshalJSON or UnmarshalJSON) is refused by
// Marshal and Unmarshal with an error naming the type, never silently
// dropped or encoded otherwise than JSON would.
//
//	value  := by wire type:
//	  varint   uvarint (bool 0/1, unsigned as is, signed zigzag)
//	  fixed64  8 bytes little endian (a float's IEEE bits)
//	  bytes    uvarint length, bytes (string, []byte, text, time)
//	  struct   fields, then 0x00; a field is uvarint len(name), name,
//	           wire type byte, value
//	  list     uvarint n, then n times: wire type byte, value
//	  map      uvarint n, then n times: wire type byte, key value,
//	           wire type byte, value value; written in the order of the
//	           entries' encoded keys, so that a value has one encoding
//	           (a decoder takes any order)
//	  null     nothing (a nil pointer in a list or a map)
//
// Decoding is bounded by its input: a length or count is checked against
// the bytes left before anything is allocated for it, and nesting is
// limited to MaxDepth. The strings of a decoded value (outside its maps)
// share allocations of at most 4 KiB, and none points into the input.
package wire

import (
	"encoding"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sync"
	"time"
	"unsafe"
)

// Wire types.
const (
	wtVarint  byte = 0
	wtFixed64 byte = 1
	wtBytes   byte = 2
	wtStruct  byte = 3
	wtList    byte = 4
	wtMap     byte = 5
	wtNull    byte = 6
	wtMax          = wtNull
)

// MaxDepth bounds the nesting of structs, lists and maps a decoder follows.
const MaxDepth = 64

// codec encodes and decodes one Go type at an address.
type codec struct {
	typ reflect.Type
	wt  byte
	// zero reports whether the value at p is left out of a struct.
	zero func(p unsafe.Pointer) bool
	// enc appends the value at p (its wire type is wt, written by the
	// caller).
	enc func(b []byte, p unsafe.Pointer) []byte
	// dec decodes a value of wire type wt into p, which holds a zero value.
	dec func(d *decoder, p unsafe.Pointer) error
	// err is why the type, or one it holds, cannot be encoded; the
	// functions must not be called then.
	err error
	// subs are the codecs of the types it holds.
	subs []*codec
}

// field is one field of a struct codec.
type field struct {
	name   string
	offset uintptr
	c      *codec
}

var (
	codecsMu sync.Mutex
	codecs   sync.Map // reflect.Type → *codec
)

// codecFor returns the codec of t, building it (and those of the types it
// holds) the first time.
func codecFor(t reflect.Type) *codec {
	if c, ok := codecs.Load(t); ok {
		return c.(*codec)
	}
	codecsMu.Lock()
	defer codecsMu.Unlock()
	building := map[reflect.Type]*codec{}
	c := build(t, building)
	// A type that holds one that cannot be encoded cannot be either; in a
	// recursive type the error may be found after a codec that refers to
	// it was made, hence the passes until nothing changes.
	for changed := true; changed; {
		changed = false
		for _, bc := range building {
			if bc.err != nil {
				continue
			}
			for _, sub := range bc.subs {
				if sub.err != nil {
					bc.err = fmt.Errorf("%s: %w", bc.typ, sub.err)
					changed = true
					break
				}
			}
		}
	}
	for bt, bc := range building {
		codecs.Store(bt, bc)
	}
	return c
}

var (
	timeType            = reflect.TypeFor[time.Time]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshalerType   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// build makes t's codec. Types being built are in building, so that a
// recursive type refers to its own codec, filled in when build returns.
func build(t reflect.Type, building map[reflect.Type]*codec) *codec {
	if c, ok := codecs.Load(t); ok {
		return c.(*codec)
	}
	if c, ok := building[t]; ok {
		return c
	}
	c := &codec{typ: t}
	building[t] = c
	switch {
	case t == timeType:
		timeCodec(c)
		return c
	case t.Kind() != reflect.Pointer && (t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonUnmarshalerType)):
		// Its JSON form is its own: encoding its fields instead would
		// give another value to a reader that expects that form.
		c.err = fmt.Errorf("wire: %s has a JSON encoding of its own", t)
		return c
	case t.Kind() != reflect.Pointer && t.Kind() != reflect.Struct &&
		t.Implements(textMarshalerType) && reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()):
		textCodec(c)
		return c
	}
	switch t.Kind() {
	case reflect.Bool:
		c.wt = wtVarint
		c.zero = func(p unsafe.Pointer) bool { return !*(*bool)(p) }
		c.enc = func(b []byte, p unsafe.Pointer) []byte { return append(b, 1) }
		c.dec = func(d *decoder, p unsafe.Pointer) error {
			v, err := d.uvarint()
			*(*bool)(p) = v != 0
			return err
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		intCodec(c, t)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		uintCodec(c, t)
	case reflect.Float32:
		c.wt = wtFixed64
		c.zero = func(p unsafe.Pointer) bool { return math.Float32bits(*(*float32)(p)) == 0 }
		c.enc = func(b []byte, p unsafe.Pointer) []byte {
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(*(*float32)(p))))
		}
		c.dec = func(d *decoder, p unsafe.Pointer) error {
			v, err := d.fixed64()
			*(*float32)(p) = float32(math.Float64frombits(v))
			return err
		}
	case reflect.Float64:
		c.wt = wtFixed64
		c.zero = func(p unsafe.Pointer) bool { return *(*uint64)(p) == 0 }
		c.enc = func(b []byte, p unsafe.Pointer) []byte { return binary.LittleEndian.AppendUint64(b, *(*uint64)(p)) }
		c.dec = func(d *decoder, p unsafe.Pointer) error {
			v, err := d.fixed64()
			*(*uint64)(p) = v
			return err
		}
	case reflect.String:
		c.wt = wtBytes
		c.zero = func(p unsafe.Pointer) bool { return len(*(*string)(p)) == 0 }
		c.enc = func(b []byte, p unsafe.Pointer) []byte {
			s := *(*string)(p)
			return append(binary.AppendUvarint(b, uint64(len(s))), s...)
		}
		c.dec = func(d *decoder, p unsafe.Pointer) error { return d.view((*string)(p)) }
	case reflect.Pointer:
		pointerCodec(c, t, building)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && !t.Elem().Implements(textMarshalerType) {
			bytesCodec(c)
		} else {
			sliceCodec(c, t, building)
		}
	case reflect.Map:
		mapCodec(c, t, building)
	case reflect.Struct:
		structCodec(c, t, building)
	default:
		c.err = fmt.Errorf("wire: %s: kind %s cannot be encoded", t, t.Kind())
	}
	return c
}

func intCodec(c *codec, t reflect.Type) {
	c.wt = wtVarint
	size := t.Size()
	load := func(p unsafe.Pointer) int64 {
		switch size {
		case 1:
			return int64(*(*int8)(p))
		case 2:
			return int64(*(*int16)(p))
		case 4:
			return int64(*(*int32)(p))
		}
		return *(*int64)(p)
	}
	c.zero = func(p unsafe.Pointer) bool { return load(p) == 0 }
	c.enc = func(b []byte, p unsafe.Pointer) []byte { return binary.AppendVarint(b, load(p)) }
	bits := size * 8
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		u, err := d.uvarint()
		if err != nil {
			return err
		}
		v := int64(u>>1) ^ -int64(u&1)
		if bits < 64 && (v < -1<<(bits-1) || v >= 1<<(bits-1)) {
			return fmt.Errorf("%d overflows %s", v, t)
		}
		switch size {
		case 1:
			*(*int8)(p) = int8(v)
		case 2:
			*(*int16)(p) = int16(v)
		case 4:
			*(*int32)(p) = int32(v)
		default:
			*(*int64)(p) = v
		}
		return nil
	}
}

func uintCodec(c *codec, t reflect.Type) {
	c.wt = wtVarint
	size := t.Size()
	load := func(p unsafe.Pointer) uint64 {
		switch size {
		case 1:
			return uint64(*(*uint8)(p))
		case 2:
			return uint64(*(*uint16)(p))
		case 4:
			return uint64(*(*uint32)(p))
		}
		return *(*uint64)(p)
	}
	c.zero = func(p unsafe.Pointer) bool { return load(p) == 0 }
	c.enc = func(b []byte, p unsafe.Pointer) []byte { return binary.AppendUvarint(b, load(p)) }
	bits := size * 8
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		v, err := d.uvarint()
		if err != nil {
			return err
		}
		if bits < 64 && v >= 1<<bits {
			return fmt.Errorf("%d overflows %s", v, t)
		}
		switch size {
		case 1:
			*(*uint8)(p) = uint8(v)
		case 2:
			*(*uint16)(p) = uint16(v)
		case 4:
			*(*uint32)(p) = uint32(v)
		default:
			*(*uint64)(p) = v
		}
		return nil
	}
}

// timeCodec writes a time as MarshalBinary does: the instant and the zone
// offset, not the zone's name, which is what RFC 3339 in JSON keeps too.
func timeCodec(c *codec) {
	c.wt = wtBytes
	c.zero = func(p unsafe.Pointer) bool { return (*time.Time)(p).IsZero() }
	c.enc = func(b []byte, p unsafe.Pointer) []byte {
		t := *(*time.Time)(p)
		n := len(b)
		b = append(b, 0) // the length, at most 16
		b, err := t.AppendBinary(b)
		if err != nil {
			// A zone offset that is not a whole minute: kept as UTC, the
			// instant is what counts.
			b, _ = t.UTC().AppendBinary(b[:n+1])
		}
		b[n] = byte(len(b) - n - 1)
		return b
	}
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		v, err := d.bytes()
		if err != nil {
			return err
		}
		return (*time.Time)(p).UnmarshalBinary(v)
	}
}

// textCodec writes a type by its MarshalText form.
func textCodec(c *codec) {
	t := c.typ
	c.wt = wtBytes
	c.zero = func(p unsafe.Pointer) bool { return reflect.NewAt(t, p).Elem().IsZero() }
	appends := t.Implements(reflect.TypeFor[encoding.TextAppender]())
	c.enc = func(b []byte, p unsafe.Pointer) []byte {
		// Through a pointer to the value, which has its methods: boxing
		// the value itself would allocate.
		v := reflect.NewAt(t, p).Interface()
		if appends {
			// Appended in place, after a byte for the length: a text
			// of less than 128 bytes (a task state's name) is then
			// written without allocating.
			n := len(b)
			out, err := v.(encoding.TextAppender).AppendText(append(b, 0))
			if err != nil {
				panic(encodeError{fmt.Errorf("wire: %s: %w", t, err)})
			}
			if size := len(out) - n - 1; size < 0x80 {
				out[n] = byte(size)
				return out
			}
			text := append([]byte(nil), out[n+1:]...)
			return append(binary.AppendUvarint(out[:n], uint64(len(text))), text...)
		}
		text, err := v.(encoding.TextMarshaler).MarshalText()
		if err != nil {
			// As encoding/json: a value without a text (a task state
			// this version has no name for) is not written at all.
			panic(encodeError{fmt.Errorf("wire: %s: %w", t, err)})
		}
		return append(binary.AppendUvarint(b, uint64(len(text))), text...)
	}
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		v, err := d.bytes()
		if err != nil {
			return err
		}
		return reflect.NewAt(t, p).Interface().(encoding.TextUnmarshaler).UnmarshalText(v)
	}
}

func bytesCodec(c *codec) {
	c.wt = wtBytes
	c.zero = func(p unsafe.Pointer) bool { return *(*[]byte)(p) == nil }
	c.enc = func(b []byte, p unsafe.Pointer) []byte {
		s := *(*[]byte)(p)
		return append(binary.AppendUvarint(b, uint64(len(s))), s...)
	}
	c.dec = func(d *decoder, p unsafe.Pointer) error {
		v, err := d.bytes()
		*(*[]byte)(p) = append(make([]byte, 0, len(v)), v...)
		return err
	}
}

// encodeError carries an error out of a codec's enc to Append, which
// recovers it: the encoders return no error, as only text marshalers fail.
type encodeError struct{ err error }
