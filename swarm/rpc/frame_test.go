package rpc

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/apiary-io/apiary/swarm/api"
)

// countingPool is a BufferPool that counts the buffers it hands out and
// gets back, and refuses one back twice.
type countingPool struct {
	mu       sync.Mutex
	out, put int
	back     map[*byte]bool
}

func (p *countingPool) Get(n int) *[]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out++
	b := make([]byte, n, max(n, 4096))
	return &b
}

func (p *countingPool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.back == nil {
		p.back = map[*byte]bool{}
	}
	k := &(*b)[:1][0]
	if p.back[k] {
		panic("a buffer given back twice")
	}
	p.back[k] = true
	p.put++
}

func (p *countingPool) counts() (out, put int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out, p.put
}

func withPool(t *testing.T) *countingPool {
	p := &countingPool{}
	old := bufferPool
	bufferPool = p
	t.Cleanup(func() { bufferPool = old })
	return p
}

// A message is encoded into a buffer of the pool, which goes back once
// gRPC frees what Marshal returned; one too large for it is encoded
// into a slice of its own, and the pool's buffer goes back at once.
func TestWireCodecMarshalsIntoThePool(t *testing.T) {
	p := withPool(t)
	var c WireCodec
	small := &api.Annotations{Name: "web"}
	bs, err := c.Marshal(small)
	if err != nil {
		t.Fatal(err)
	}
	if _, own := bs[0].(mem.SliceBuffer); own {
		t.Fatal("a small message was not encoded into the pool's buffer")
	}
	var got api.Annotations
	if err := c.Unmarshal(one(bs.Materialize()), &got); err != nil || got.Name != "web" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if out, put := p.counts(); out != 1 || put != 0 {
		t.Fatalf("before gRPC frees the message: %d out, %d back", out, put)
	}
	bs.Free()
	if out, put := p.counts(); out != 1 || put != 1 {
		t.Fatalf("after: %d out, %d back", out, put)
	}

	large := &api.Annotations{Name: strings.Repeat("x", 2*marshalSize)}
	bs, err = c.Marshal(large)
	if err != nil {
		t.Fatal(err)
	}
	if out, put := p.counts(); out != 2 || put != 2 {
		t.Fatalf("a message larger than the pool's buffer: %d out, %d back", out, put)
	}
	got = api.Annotations{}
	if err := c.Unmarshal(one(bs.Materialize()), &got); err != nil || got.Name != large.Name {
		t.Fatalf("round trip of %d bytes: %d bytes, %v", len(large.Name), len(got.Name), err)
	}
	bs.Free()
}

// A message that arrives in several buffers decodes as one.
func TestWireCodecUnmarshalsSeveralBuffers(t *testing.T) {
	var c WireCodec
	b, err := flat(c.Marshal(&api.Annotations{Name: "web", Labels: map[string]string{"a": "b"}}))
	if err != nil {
		t.Fatal(err)
	}
	split := mem.BufferSlice{mem.SliceBuffer(b[:3]), mem.SliceBuffer(b[3:])}
	var got api.Annotations
	if err := c.Unmarshal(split, &got); err != nil || got.Name != "web" || got.Labels["a"] != "b" {
		t.Fatalf("%+v, %v", got, err)
	}
}

// A received frame keeps gRPC's buffer, not a copy, until Release; a
// frame of several buffers is one buffer of the pool.
func TestFrameKeepsTheReceivedBufferUntilRelease(t *testing.T) {
	p := withPool(t)
	grpcs := &countingPool{}
	buf := grpcs.Get(2048)
	copy(*buf, "raft message")
	*buf = (*buf)[:len("raft message")]
	data := mem.BufferSlice{mem.NewBuffer(buf, grpcs)}
	var f Frame
	if err := (Codec{}).Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	data.Free() // as gRPC does when Unmarshal returns
	if string(f.B) != "raft message" || &f.B[0] != &(*buf)[0] {
		t.Fatalf("frame %q is not the received buffer", f.B)
	}
	if _, put := grpcs.counts(); put != 0 {
		t.Fatal("the buffer went back while the frame held it")
	}
	f.Release()
	if _, put := grpcs.counts(); put != 1 || f.B != nil {
		t.Fatalf("after Release: %d back, B %q", put, f.B)
	}

	var g Frame
	if err := (WireCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer("ab"), mem.SliceBuffer("cd")}, &g); err != nil || string(g.B) != "abcd" {
		t.Fatalf("frame of two buffers: %q, %v", g.B, err)
	}
	g.Release()
	if out, put := p.counts(); out != 1 || put != 1 {
		t.Fatalf("the frame of two buffers: %d out, %d back", out, put)
	}
}

// A frame made by AppendFrame is sent from the pool's buffer, which goes
// back once both gRPC and the sender are done with it, in either order;
// one that outgrew it is its own slice.
func TestAppendFrameSendsFromThePool(t *testing.T) {
	p := withPool(t)
	f, err := AppendFrame(16, func(b []byte) ([]byte, error) { return append(b, "entries"...), nil })
	if err != nil || string(f.B) != "entries" {
		t.Fatalf("%q, %v", f.B, err)
	}
	for _, c := range []interface {
		Marshal(any) (mem.BufferSlice, error)
	}{Codec{}, WireCodec{}} {
		bs, err := c.Marshal(f)
		if err != nil || !bytes.Equal(bs.Materialize(), []byte("entries")) {
			t.Fatalf("%T: %q, %v", c, bs.Materialize(), err)
		}
		bs.Free() // written
	}
	if _, put := p.counts(); put != 0 {
		t.Fatal("the buffer went back while the sender held it")
	}
	f.Release()
	if out, put := p.counts(); out != 1 || put != 1 {
		t.Fatalf("after Release: %d out, %d back", out, put)
	}

	big, err := AppendFrame(16, func(b []byte) ([]byte, error) { return append(b, bytes.Repeat([]byte("x"), 10000)...), nil })
	if err != nil || len(big.B) != 10000 {
		t.Fatalf("%d bytes, %v", len(big.B), err)
	}
	if out, put := p.counts(); out != 2 || put != 2 {
		t.Fatalf("a frame that outgrew the pool's buffer: %d out, %d back", out, put)
	}
	big.Release()
}
