package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"unsafe"
)

// ErrMalformed wraps every error about the bytes given to Unmarshal, as
// opposed to a type that cannot be encoded.
var ErrMalformed = errors.New("wire: malformed input")

// Append appends the encoding of v, a pointer to a struct, to b. The
// encoding holds no wire type of its own: it is the struct's fields and
// their end, what Unmarshal reads.
func Append(b []byte, v any) (out []byte, err error) {
	c, p, err := target(v)
	if err != nil {
		return b, err
	}
	defer func() {
		if r := recover(); r != nil {
			ee, ok := r.(encodeError)
			if !ok {
				panic(r)
			}
			out, err = b, ee.err
		}
	}()
	return c.enc(b, p), nil
}

// Marshal returns the encoding of v, a pointer to a struct.
func Marshal(v any) ([]byte, error) { return Append(nil, v) }

// Unmarshal decodes data, as Append wrote it, into v, a pointer to a
// struct, which it zeroes first. Fields of v that data lacks are left
// zero; fields of data that v lacks are skipped. Bytes after the struct's
// end are an error.
func Unmarshal(data []byte, v any) error {
	n, err := UnmarshalPrefix(data, v)
	if err != nil {
		return err
	}
	if n != len(data) {
		return fmt.Errorf("%w: %d bytes after the end", ErrMalformed, len(data)-n)
	}
	return nil
}

// UnmarshalPrefix is Unmarshal of the struct data begins with; it returns
// how many bytes it took.
func UnmarshalPrefix(data []byte, v any) (int, error) {
	c, p, err := target(v)
	if err != nil {
		return 0, err
	}
	typedmemclr(c.typ, p)
	d := decoders.Get().(*decoder)
	d.b = data
	err = c.dec(d, p)
	// Even a value that failed to decode no longer points into data.
	d.pack()
	off := d.off
	views := d.views[:0]
	if cap(views) > maxPooledViews {
		views = nil // a large message's: not kept by the pool
	}
	*d = decoder{views: views}
	decoders.Put(d)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return off, nil
}

// decoders are reused, for their views' array, kept up to
// maxPooledViews strings (a task has a dozen; a list of 100,000 tasks
// would otherwise leave megabytes in the pool).
var decoders = sync.Pool{New: func() any { return new(decoder) }}

const maxPooledViews = 1024

// target returns the codec of the struct v points to, and the struct's
// address.
func target(v any) (*codec, unsafe.Pointer, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("wire: %T is not a non-nil pointer to a struct", v)
	}
	c := codecFor(rv.Type().Elem())
	if c.err != nil {
		return nil, nil, c.err
	}
	return c, rv.UnsafePointer(), nil
}

func typedmemclr(t reflect.Type, p unsafe.Pointer) {
	reflect.NewAt(t, p).Elem().SetZero()
}

// decoder reads b from off.
type decoder struct {
	b     []byte
	off   int
	depth int
	// views are the string fields decoded so far, as views of b, which
	// pack gives memory of their own once the value is decoded. inMap
	// counts the maps being decoded: a map copies its keys and values
	// into itself, so their strings are allocated one by one at once.
	views []*string
	inMap int
}

// packChunk bounds the memory the strings of one value share. A value's
// strings are allocated together, so that an object the store keeps is a
// few objects for the collector to mark, not one per string (a task held
// fifteen, nine of them strings, and marking 100,000 tasks was most of a
// loaded manager's collector time). Anything holding one of the strings
// holds its chunk: the bound keeps that to a few KiB.
const packChunk = 4 << 10

// view decodes the next string into *sp as a view of the input, which
// pack replaces.
func (d *decoder) view(sp *string) error {
	v, err := d.bytes()
	if err != nil || len(v) == 0 {
		return err
	}
	if d.inMap > 0 {
		*sp = string(v)
		return nil
	}
	*sp = unsafe.String(&v[0], len(v))
	d.views = append(d.views, sp)
	return nil
}

// pack copies the strings decoded as views into chunks of at most
// packChunk bytes (a longer string gets one of its own), in the order they
// were decoded, and points them there.
func (d *decoder) pack() {
	for i := 0; i < len(d.views); {
		n, j := len(*d.views[i]), i+1
		for j < len(d.views) && n+len(*d.views[j]) <= packChunk {
			n += len(*d.views[j])
			j++
		}
		buf := make([]byte, n)
		off := 0
		for _, sp := range d.views[i:j] {
			k := copy(buf[off:], *sp)
			*sp = unsafe.String(&buf[off], k)
			off += k
		}
		i = j
	}
	clear(d.views) // the pool must not keep the decoded values alive
}

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, errShort
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

var errShort = errors.New("unexpected end of input")

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		if n == 0 {
			return 0, errShort
		}
		return 0, errors.New("varint overflows 64 bits")
	}
	d.off += n
	return v, nil
}

func (d *decoder) fixed64() (uint64, error) {
	if len(d.b)-d.off < 8 {
		return 0, errShort
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v, nil
}

// bytes returns the next length-prefixed bytes, shared with the input.
func (d *decoder) bytes() ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("length %d exceeds the %d bytes left", n, len(d.b)-d.off)
	}
	v := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return v, nil
}

// name returns the next field's name, or nil at the struct's end.
func (d *decoder) name() ([]byte, error) {
	v, err := d.bytes()
	if err != nil || len(v) == 0 {
		return nil, err
	}
	return v, nil
}

// count returns the next element count of a list or map; every element
// takes at least a byte, which bounds what a decoder allocates for it.
func (d *decoder) count() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(d.b)-d.off) {
		return 0, fmt.Errorf("count %d exceeds the %d bytes left", n, len(d.b)-d.off)
	}
	return int(n), nil
}

// value decodes a wire type byte and a value of c into p: null leaves p
// zero.
func (d *decoder) value(c *codec, p unsafe.Pointer) error {
	wt, err := d.byte()
	if err != nil {
		return err
	}
	if wt == wtNull {
		return nil
	}
	if wt != c.wt {
		return fmt.Errorf("wire type %d, want %d", wt, c.wt)
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > MaxDepth {
		return errors.New("nested too deep")
	}
	return c.dec(d, p)
}

// stringValue reads a wire type byte and a string (null is "").
func (d *decoder) stringValue() (string, error) {
	wt, err := d.byte()
	if err != nil || wt == wtNull {
		return "", err
	}
	if wt != wtBytes {
		return "", fmt.Errorf("wire type %d, want %d", wt, wtBytes)
	}
	v, err := d.bytes()
	return string(v), err
}

// skip reads past a value of wire type wt.
func (d *decoder) skip(wt byte) error {
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > MaxDepth {
		return errors.New("nested too deep")
	}
	switch wt {
	case wtVarint:
		_, err := d.uvarint()
		return err
	case wtFixed64:
		_, err := d.fixed64()
		return err
	case wtBytes:
		_, err := d.bytes()
		return err
	case wtStruct:
		for {
			name, err := d.name()
			if err != nil || name == nil {
				return err
			}
			fwt, err := d.byte()
			if err != nil {
				return err
			}
			if err := d.skip(fwt); err != nil {
				return err
			}
		}
	case wtList, wtMap:
		n, err := d.count()
		if err != nil {
			return err
		}
		per := 1
		if wt == wtMap {
			per = 2
		}
		for range n * per {
			ewt, err := d.byte()
			if err != nil {
				return err
			}
			if err := d.skip(ewt); err != nil {
				return err
			}
		}
		return nil
	case wtNull:
		return nil
	}
	return fmt.Errorf("unknown wire type %d", wt)
}

// Same reports whether a and b, pointers to structs of one type, encode
// alike: whether any decoder could tell them apart. The store uses it to
// let an object share parts equal to another's, which only holds if no
// replica can tell the two apart. A type that cannot be encoded is never
// the same.
func Same(a, b any) bool {
	if reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	bufs := sameBufs.Get().(*[2][]byte)
	x, errA := Append(bufs[0][:0], a)
	y, errB := Append(bufs[1][:0], b)
	same := errA == nil && errB == nil && string(x) == string(y)
	if cap(x) <= maxPooled && cap(y) <= maxPooled {
		bufs[0], bufs[1] = x, y
		sameBufs.Put(bufs)
	}
	return same
}

// sameBufs are Same's encodings, reused up to maxPooled bytes each.
var sameBufs = sync.Pool{New: func() any { return new([2][]byte) }}

const maxPooled = 64 << 10
