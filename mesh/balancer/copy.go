package balancer

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// A TCP direction is copied in one of two ways, chosen as bytes come:
//
//   - Messages (requests, answers, anything that arrives a read at a time
//     smaller than copyBuf) are read into a pooled buffer and written out:
//     a read and a write per message.
//   - A stream (a read that fills copyBuf: more is waiting) is handed to
//     ReadFrom between the two *net.TCPConn for copyChunk bytes, which
//     Linux serves with splice(2), moving pages without copying them
//     through user space; then the loop reads again. Only one copyBuf in
//     every copyChunk goes through the buffer.
//
// Why not splice everything: Go's splice holds a pipe (two descriptors)
// from the start of a ReadFrom to its end, waits included, so a proxy that
// splices every direction holds six descriptors per idle connection instead
// of two; and for a message of a few hundred bytes, two splices through a
// pipe cost no less than a read and a write (the HTTP benchmark measured the
// same CPU per request either way). The buffer too is taken from the pool
// only once a read has data (see pooledReader), so an idle connection,
// however many there are, holds no buffer and no pipe.
const (
	copyBuf   = 16 << 10
	copyChunk = 1 << 20
)

var bufPool = sync.Pool{New: func() any { return new([copyBuf]byte) }}

// copyTCP copies src to dst until EOF (nil) or an error, adding what it
// copied to counters as it goes.
func copyTCP(dst, src *net.TCPConn, counters ...*atomic.Int64) error {
	count := func(n int64) {
		for _, c := range counters {
			c.Add(n)
		}
	}
	r, err := newPooledReader(src)
	if err != nil {
		return err
	}
	lr := &io.LimitedReader{R: src}
	for {
		buf, n, err := r.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		_, err = dst.Write(buf[:n])
		bufPool.Put(buf)
		if err != nil {
			return err
		}
		count(int64(n))
		if n < copyBuf {
			continue
		}
		// A stream: splice the next chunk.
		lr.N = copyChunk
		m, err := dst.ReadFrom(lr)
		count(m)
		if err != nil {
			return err
		}
		if lr.N > 0 {
			return nil // src reached EOF before the chunk was full
		}
	}
}
