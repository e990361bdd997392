package rpc

import (
	"unsafe"

	"google.golang.org/grpc/mem"
)

// bufferPool is gRPC's pool of buffers, which it takes the buffers of
// sent messages back to; a test counts what comes back.
var bufferPool = mem.DefaultBufferPool()

// Frame is a message the codecs carry as it is: bytes encoded already
// (raft's messages and snapshot chunks).
//
// A received frame's B is gRPC's own receive buffer, not a copy, and a
// frame made by AppendFrame writes into a buffer of gRPC's pool: Release
// gives either back once B is no longer read, so that a stream of large
// frames (raft appends of tens of kilobytes) allocates nothing per frame.
// A frame never released is only a buffer the pool does not get back:
// the collector frees it like any other.
type Frame struct {
	B []byte
	// buf holds B's memory when it came from gRPC or its pool.
	buf mem.Buffer
}

// AppendFrame returns a frame of what appendTo appends to an empty slice
// with room for size bytes, a buffer of gRPC's pool: the frame's bytes
// are then not allocated anew for each message (raft's appends to each
// follower are marshalled this way). Send it, then Release it.
func AppendFrame(size int, appendTo func([]byte) ([]byte, error)) (*Frame, error) {
	pool := bufferPool
	buf := pool.Get(size)
	b, err := appendTo((*buf)[:0])
	if err != nil || unsafe.SliceData(b) != unsafe.SliceData(*buf) {
		// Failed, or grew out of the pool's buffer into one of its own.
		pool.Put(buf)
		return &Frame{B: b}, err
	}
	*buf = b
	return &Frame{B: b, buf: mem.NewBuffer(buf, pool)}, nil
}

// Release gives the frame's buffer back to gRPC's pool, if it has one:
// B must not be read after it.
func (f *Frame) Release() {
	if f.buf != nil {
		f.buf.Free()
		f.buf = nil
	}
	f.B = nil
}

// slice is what the codecs send for the frame: its bytes, with a
// reference of gRPC's own to the buffer that holds them, which gRPC drops
// once they are written (the frame keeps its reference until Release).
func (f *Frame) slice() mem.BufferSlice {
	if f.buf == nil {
		return mem.BufferSlice{mem.SliceBuffer(f.B)}
	}
	f.buf.Ref()
	return mem.BufferSlice{f.buf}
}

// take makes the frame the message received in data, which gRPC frees
// when Unmarshal returns: one buffer is kept with a reference of the
// frame's own, several are copied into one of the pool's.
func (f *Frame) take(data mem.BufferSlice) {
	f.Release()
	switch len(data) {
	case 0:
		f.B = []byte{}
	case 1:
		data[0].Ref()
		f.buf = data[0]
	default:
		f.buf = data.MaterializeToBuffer(bufferPool)
	}
	if f.buf != nil {
		f.B = f.buf.ReadOnlyData()
	}
}

// contiguous returns the bytes of data in one slice: the buffer itself
// when there is one, valid while data is (until Unmarshal returns).
func contiguous(data mem.BufferSlice) []byte {
	if len(data) == 1 {
		return data[0].ReadOnlyData()
	}
	return data.Materialize()
}

// bufferOrBytes hands the frame's bytes over whole, its reference to
// the pool's buffer included: the frame is not used after.
func (f *Frame) bufferOrBytes() mem.Buffer {
	if f.buf == nil {
		return mem.SliceBuffer(f.B)
	}
	return f.buf
}
