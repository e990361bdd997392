//go:build !unix

package balancer

import "net"

// pooledReader reads a socket into buffers from bufPool. Without Unix raw
// reads the buffer is held while a read waits.
type pooledReader struct{ src *net.TCPConn }

func newPooledReader(src *net.TCPConn) (*pooledReader, error) { return &pooledReader{src}, nil }

// next returns the socket's next bytes in a pooled buffer, which the caller
// puts back. EOF is io.EOF.
func (r *pooledReader) next() (*[copyBuf]byte, int, error) {
	b := bufPool.Get().(*[copyBuf]byte)
	n, err := r.src.Read(b[:])
	if n > 0 {
		return b, n, nil // an error comes again on the next read
	}
	bufPool.Put(b)
	return nil, 0, err
}
