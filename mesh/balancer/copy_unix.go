//go:build unix

package balancer

import (
	"io"
	"net"
	"os"
	"syscall"
)

// pooledReader reads a socket into buffers from bufPool. The read happens
// in the callback of RawConn.Read, which the runtime calls again when the
// socket turns readable, so no buffer is held while waiting.
type pooledReader struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // r.read, bound once: no allocation per read
	buf *[copyBuf]byte
	n   int
	err error
}

func newPooledReader(src *net.TCPConn) (*pooledReader, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &pooledReader{rc: rc}
	r.fn = r.read
	return r, nil
}

func (r *pooledReader) read(fd uintptr) bool {
	b := bufPool.Get().(*[copyBuf]byte)
	for {
		r.n, r.err = syscall.Read(int(fd), b[:])
		if r.err != syscall.EINTR {
			break
		}
	}
	if r.err == syscall.EAGAIN {
		bufPool.Put(b)
		return false // wait until readable, then call again
	}
	r.buf = b
	return true
}

// next waits until the socket has data and returns it in a pooled buffer,
// which the caller puts back. EOF is io.EOF.
func (r *pooledReader) next() (*[copyBuf]byte, int, error) {
	r.buf, r.n, r.err = nil, 0, nil
	if err := r.rc.Read(r.fn); err != nil { // closed
		return nil, 0, err
	}
	switch {
	case r.err != nil:
		bufPool.Put(r.buf)
		return nil, 0, os.NewSyscallError("read", r.err)
	case r.n == 0:
		bufPool.Put(r.buf)
		return nil, 0, io.EOF
	}
	return r.buf, r.n, nil
}
