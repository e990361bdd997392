package rpc

import (
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/mem"

	"github.com/apiary-io/apiary/internal/wire"
)

// WireCodecName is the content-subtype of WireCodec.
const WireCodecName = "apiary-wire"

// WireCodec is Codec with the binary encoding of internal/wire: the same
// messages, fields by their JSON names, a quarter of JSON's cost to encode
// and decode (the control API's requests and answers, the sessions'
// messages). A message of a type wire does not take (one with a JSON form
// of its own) travels as JSON; the first byte says which: wireTag or
// jsonTag. A *Frame travels as the bytes it holds, as with Codec.
type WireCodec struct{}

const (
	wireTag = 'W'
	jsonTag = 'J'
)

// marshalSize is the buffer of gRPC's pool a message is encoded into:
// the control API's requests and answers and the sessions' messages are
// mostly smaller, and one that is not grows into a buffer of its own.
// Encoding into the pool's buffers, which gRPC gives back once written,
// spares the collector a buffer per message, and the copies append made
// as a buffer doubled from a small start (a tenth of the bytes a manager
// allocated per write, issue 14).
const marshalSize = 4 << 10

// Marshal implements encoding.CodecV2.
func (WireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*Frame); ok {
		return f.slice(), nil
	}
	f, err := AppendFrame(marshalSize, func(b []byte) ([]byte, error) { return wire.Append(append(b, wireTag), v) })
	if err == nil {
		return mem.BufferSlice{f.bufferOrBytes()}, nil
	}
	j, jerr := json.Marshal(v)
	if jerr != nil {
		return nil, jerr
	}
	return mem.BufferSlice{mem.SliceBuffer(append([]byte{jsonTag}, j...))}, nil
}

// Unmarshal implements encoding.CodecV2.
func (WireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*Frame); ok {
		f.take(data)
		return nil
	}
	// The decoders copy what they keep (strings, bytes), so the message
	// is read in gRPC's buffer, which it frees when this returns.
	b := contiguous(data)
	if len(b) == 0 {
		return fmt.Errorf("rpc: empty %s message", WireCodecName)
	}
	switch b[0] {
	case wireTag:
		return wire.Unmarshal(b[1:], v)
	case jsonTag:
		return json.Unmarshal(b[1:], v)
	}
	return fmt.Errorf("rpc: %s message of unknown form %#x", WireCodecName, b[0])
}

// Name implements encoding.Codec.
func (WireCodec) Name() string { return WireCodecName }
