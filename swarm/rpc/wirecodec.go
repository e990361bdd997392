package rpc

import (
	"encoding/json"
	"fmt"

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

// Marshal implements encoding.Codec.
func (WireCodec) Marshal(v any) ([]byte, error) {
	if f, ok := v.(*Frame); ok {
		return f.B, nil
	}
	b, err := wire.Append(make([]byte, 1, 256), v)
	if err == nil {
		b[0] = wireTag
		return b, nil
	}
	j, jerr := json.Marshal(v)
	if jerr != nil {
		return nil, jerr
	}
	return append([]byte{jsonTag}, j...), nil
}

// Unmarshal implements encoding.Codec.
func (WireCodec) Unmarshal(data []byte, v any) error {
	if f, ok := v.(*Frame); ok {
		// gRPC may reuse data's buffer after Unmarshal returns.
		f.B = append([]byte(nil), data...)
		return nil
	}
	if len(data) == 0 {
		return fmt.Errorf("rpc: empty %s message", WireCodecName)
	}
	switch data[0] {
	case wireTag:
		return wire.Unmarshal(data[1:], v)
	case jsonTag:
		return json.Unmarshal(data[1:], v)
	}
	return fmt.Errorf("rpc: %s message of unknown form %#x", WireCodecName, data[0])
}

// Name implements encoding.Codec.
func (WireCodec) Name() string { return WireCodecName }
