//go:build unix

package process

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// stampLayout is the fixed-width timestamp that starts every line of
// output.log (always UTC, always nine fractional digits).
const stampLayout = "2006-01-02T15:04:05.000000000Z"

const stampLen = len(stampLayout) + 1 // with the space after it

// maxLineSlack is how far past the cap a file grows in the middle of a line
// before it is rotated anyway.
const maxLineSlack = 64 << 10

// logWriter writes a task's output to a file, starting each line with a
// timestamp, and rotates the file when it passes max bytes, keeping backups
// rotated files (path.1 is the newest). Every file starts with a timestamp,
// even when a rotation splits a long line. Followers learn about new output
// through changed.
type logWriter struct {
	path    string
	max     int64 // <= 0: no cap
	backups int
	now     func() time.Time

	mu      sync.Mutex
	f       *os.File
	size    int64
	atStart bool // the next byte starts a line
	notify  chan struct{}
	buf     []byte
}

func openLogWriter(path string, max int64, backups int) (*logWriter, error) {
	w := &logWriter{path: path, max: max, backups: backups, now: time.Now, notify: make(chan struct{})}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size, w.atStart = f, st.Size(), true
	if w.size > 0 {
		// Output adopted after a restart continues the last line if that
		// one was not finished.
		last := make([]byte, 1)
		if r, err := os.Open(w.path); err == nil {
			if _, err := r.ReadAt(last, w.size-1); err == nil && last[0] != '\n' {
				w.atStart = false
			}
			r.Close()
		}
	}
	return nil
}

// Write stamps and writes p; it never writes part of p without reporting an
// error.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return 0, os.ErrClosed
	}
	n := len(p)
	for len(p) > 0 {
		seg := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			seg = p[:i+1]
		}
		p = p[len(seg):]
		if w.max > 0 && w.size > 0 && (w.atStart && w.size+int64(stampLen+len(seg)) > w.max || w.size >= w.max+maxLineSlack) {
			if err := w.rotate(); err != nil && w.f == nil {
				return 0, err
			}
		}
		w.buf = w.buf[:0]
		if w.atStart || w.size == 0 {
			w.buf = w.now().UTC().AppendFormat(w.buf, stampLayout)
			w.buf = append(w.buf, ' ')
		}
		w.buf = append(w.buf, seg...)
		m, err := w.f.Write(w.buf)
		w.size += int64(m)
		if err != nil {
			return 0, err
		}
		w.atStart = seg[len(seg)-1] == '\n'
	}
	close(w.notify)
	w.notify = make(chan struct{})
	return n, nil
}

// rotate shifts path.N-1 to path.N ... path to path.1 and opens a new path.
// When the shift fails, writing goes on in the old file.
func (w *logWriter) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	for i := w.backups; i > 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", w.path, i-1), fmt.Sprintf("%s.%d", w.path, i))
	}
	flags := os.O_WRONLY | os.O_APPEND | os.O_CREATE
	rerr := os.Rename(w.path, w.path+".1")
	if rerr == nil {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(w.path, flags, 0o640)
	if err != nil {
		return err
	}
	w.f = f
	if rerr == nil {
		w.size = 0
	}
	return rerr
}

// still runs fn while no rotation can happen, so that a reader opens the
// files of one moment: rotations shift every name, and files opened one by
// one while the writer rotates fast can come out of order or twice.
func (w *logWriter) still(fn func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fn()
}

// changed returns a channel closed at the next write or Close.
func (w *logWriter) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.notify
}

func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	close(w.notify)
	w.notify = make(chan struct{})
	return err
}

var _ io.WriteCloser = (*logWriter)(nil)
