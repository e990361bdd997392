package rpc

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/mem"

	"github.com/apiary-io/apiary/swarm/api"
)

type ownJSON struct{ N int }

func (o ownJSON) MarshalJSON() ([]byte, error) { return []byte(`"own"`), nil }
func (o *ownJSON) UnmarshalJSON(b []byte) error {
	if string(b) == `"own"` {
		o.N = 42
	}
	return nil
}

type withOwn struct{ O ownJSON }

// flat is what a codec's Marshal sends, in one slice: the buffers are
// freed, as gRPC frees them once written.
func flat(bs mem.BufferSlice, err error) ([]byte, error) {
	b := bs.Materialize()
	bs.Free()
	return b, err
}

// one is a received message in one buffer.
func one(b []byte) mem.BufferSlice { return mem.BufferSlice{mem.SliceBuffer(b)} }

func TestWireCodec(t *testing.T) {
	var c WireCodec
	type req struct {
		Spec api.ServiceSpec `json:"Spec,omitzero"`
	}
	in := &req{Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "web", Labels: map[string]string{"a": "b"}},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 3}},
		UpdateConfig: &api.UpdateConfig{Delay: time.Second}}}
	b, err := flat(c.Marshal(in))
	if err != nil || b[0] != wireTag {
		t.Fatalf("Marshal: %q, %v", b, err)
	}
	j, _ := json.Marshal(in)
	if len(b) >= len(j) {
		t.Errorf("%d bytes, JSON %d", len(b), len(j))
	}
	out := new(req)
	if err := c.Unmarshal(one(b), out); err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("Unmarshal: %+v, %v", out, err)
	}
	// A type with its own JSON form travels as JSON, in that form.
	b, err = flat(c.Marshal(&withOwn{O: ownJSON{N: 1}}))
	if err != nil || b[0] != jsonTag || string(b[1:]) != `{"O":"own"}` {
		t.Fatalf("Marshal of a JSON marshaler: %q, %v", b, err)
	}
	var w withOwn
	if err := c.Unmarshal(one(b), &w); err != nil || w.O.N != 42 {
		t.Fatalf("Unmarshal of a JSON marshaler: %+v, %v", w, err)
	}
	// Frames are their bytes.
	f := &Frame{B: []byte("raw")}
	if b, err := flat(c.Marshal(f)); err != nil || string(b) != "raw" {
		t.Fatalf("Marshal(Frame): %q, %v", b, err)
	}
	var g Frame
	if err := c.Unmarshal(one([]byte("raw")), &g); err != nil || string(g.B) != "raw" {
		t.Fatalf("Unmarshal(Frame): %q, %v", g.B, err)
	}
	// What is neither is refused, with a reason.
	for _, bad := range [][]byte{nil, {'X', 1}, {wireTag, 0xff}} {
		if err := c.Unmarshal(one(bad), new(req)); err == nil {
			t.Errorf("Unmarshal(%q) succeeded", bad)
		}
	}
	// A value neither encoding takes is an error.
	if _, err := c.Marshal(&api.Task{DesiredState: api.TaskState(99)}); err == nil {
		t.Error("Marshal of a task state without a name succeeded")
	}
}
