//go:build unix

package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/apiary-io/apiary/executor"
)

// maxChunk bounds how much of one line is held before it is passed on
// unfinished.
const maxChunk = 64 << 10

// followPoll is how often a follower looks for new output when the writer
// does not tell it (it is in another executor, or gone).
var followPoll = 250 * time.Millisecond

// stampParser splits output.log bytes into chunks (whole lines, or pieces of
// lines too long to hold) and strips the timestamp that starts each line.
type stampParser struct {
	buf     []byte
	atStart bool
	ts      time.Time
	emit    func(ts time.Time, chunk []byte, lineStart bool) error
}

func newStampParser(emit func(time.Time, []byte, bool) error) *stampParser {
	return &stampParser{atStart: true, emit: emit}
}

// feed takes data and emits every finished line.
func (p *stampParser) feed(data []byte) error {
	p.buf = append(p.buf, data...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			if len(p.buf) >= maxChunk {
				return p.chunk(len(p.buf))
			}
			return nil
		}
		if err := p.chunk(i + 1); err != nil {
			return err
		}
	}
}

// flush emits what is held: the file ended. The next file starts a line.
func (p *stampParser) flush() error {
	var err error
	if len(p.buf) > 0 {
		err = p.chunk(len(p.buf))
	}
	p.atStart = true
	return err
}

func (p *stampParser) chunk(n int) error {
	line := p.buf[:n]
	start := p.atStart
	if start {
		p.ts = time.Time{}
		if len(line) >= stampLen && line[stampLen-1] == ' ' {
			if ts, err := time.Parse(stampLayout, string(line[:stampLen-1])); err == nil {
				p.ts, line = ts, line[stampLen:]
			}
		}
	}
	p.atStart = len(line) > 0 && line[len(line)-1] == '\n'
	err := p.emit(p.ts, line, start)
	p.buf = p.buf[:copy(p.buf, p.buf[n:])]
	return err
}

// logFilter applies Since and Tail to chunks and writes them to w. With
// Tail, lines are held until release.
type logFilter struct {
	w     io.Writer
	since time.Time
	tail  int
	keep  bool     // the current line passes Since
	ring  [][]byte // last tail lines when tail > 0
	cur   []byte
	held  bool // tail lines are still held
}

func (f *logFilter) add(ts time.Time, chunk []byte, lineStart bool) error {
	if lineStart {
		f.keep = f.since.IsZero() || ts.IsZero() || !ts.Before(f.since)
	}
	if !f.keep {
		return nil
	}
	if !f.held {
		_, err := f.w.Write(chunk)
		return err
	}
	if lineStart && len(f.cur) > 0 {
		f.push()
	}
	f.cur = append(f.cur, chunk...)
	if len(chunk) > 0 && chunk[len(chunk)-1] == '\n' {
		f.push()
	}
	return nil
}

func (f *logFilter) push() {
	f.ring = append(f.ring, f.cur)
	if len(f.ring) > f.tail {
		f.ring = f.ring[1:]
	}
	f.cur = nil
}

// release writes the held tail and passes later chunks straight through.
func (f *logFilter) release() error {
	if !f.held {
		return nil
	}
	if len(f.cur) > 0 {
		f.push()
	}
	f.held = false
	for _, l := range f.ring {
		if _, err := f.w.Write(l); err != nil {
			return err
		}
	}
	f.ring = nil
	return nil
}

// logStream is the reader Logs returns; Close also stops its goroutine.
type logStream struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (s *logStream) Close() error {
	s.cancel()
	return s.PipeReader.Close()
}

// Logs returns the task's output (stdout and stderr combined, timestamps
// stripped). Since is exact to the line; Follow streams new output until
// ctx ends, the returned reader is closed, or the task has exited and its
// output is drained.
func (c *controller) Logs(ctx context.Context, opts executor.LogOptions) (io.ReadCloser, error) {
	c.load()
	c.mu.Lock()
	removed := c.state == stateRemoved
	c.mu.Unlock()
	if removed {
		return nil, fmt.Errorf("task %s: logs: %w", c.task.ID, executor.ErrRemoved)
	}
	var backups []*os.File
	var cur *os.File
	var err error
	c.still(func() {
		backups = c.openBackups()
		cur, err = os.Open(c.logPath())
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		closeAll(backups)
		return nil, fmt.Errorf("task %s: logs: %w", c.task.ID, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		err := c.streamLogs(ctx, backups, cur, opts, pw)
		if errors.Is(err, io.ErrClosedPipe) {
			err = nil
		}
		pw.CloseWithError(err)
		cancel()
	}()
	return &logStream{PipeReader: pr, cancel: cancel}, nil
}

// streamLogs writes the backups (oldest first; it closes them) and then
// cur, all opened at one moment, and follows cur through rotations.
func (c *controller) streamLogs(ctx context.Context, backups []*os.File, cur *os.File, opts executor.LogOptions, w io.Writer) (err error) {
	defer func() {
		closeAll(backups)
		if cur != nil {
			cur.Close()
		}
	}()
	path := c.logPath()
	filt := &logFilter{w: w, since: opts.Since, tail: opts.Tail, held: opts.Tail > 0}
	p := newStampParser(filt.add)

	// Rotated files, oldest first, then the current file.
	for _, f := range backups {
		err := readAll(f, p)
		if err == nil {
			err = p.flush()
		}
		if err != nil {
			return err
		}
	}
	if cur != nil {
		if err := readAll(cur, p); err != nil {
			return err
		}
	}
	if !opts.Follow {
		if err := p.flush(); err != nil {
			return err
		}
		return filt.release()
	}
	if err := filt.release(); err != nil {
		return err
	}

	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for {
		changed, finished := c.outputState()
		if cur == nil {
			if f, err := os.Open(path); err == nil {
				cur = f
			}
		}
		if cur != nil {
			if err := readAll(cur, p); err != nil {
				return err
			}
			// A rotation closed cur for good once it is read to its end.
			var next *os.File
			var newer []*os.File
			c.still(func() {
				f, err := os.Open(path)
				if err != nil || sameFile(f, cur) {
					if f != nil {
						f.Close()
					}
					return
				}
				next, newer = f, c.backupsAfter(cur)
			})
			if next != nil {
				err := followRotation(cur, newer, p)
				closeAll(newer)
				cur.Close()
				cur = next
				if err != nil {
					return err
				}
				continue
			}
		}
		if finished {
			return p.flush()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-tick.C:
		}
	}
}

// still runs fn while the task's output is not rotated (logWriter.still),
// or at once when nothing writes it.
func (c *controller) still(fn func()) {
	c.mu.Lock()
	lw := c.logw
	c.mu.Unlock()
	if lw == nil {
		fn()
		return
	}
	lw.still(fn)
}

// openBackups opens the rotated files there are, oldest first (call it
// under still).
func (c *controller) openBackups() []*os.File {
	var out []*os.File
	for i := c.e.cfg.LogMaxBackups; i >= 1; i-- {
		if f, err := os.Open(fmt.Sprintf("%s.%d", c.logPath(), i)); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// backupsAfter opens the rotated files written after old, oldest first:
// all of them when old is deleted, none when old is the newest (call it
// under still).
func (c *controller) backupsAfter(old *os.File) []*os.File {
	var newestFirst []*os.File
	for i := 1; i <= c.e.cfg.LogMaxBackups; i++ {
		f, err := os.Open(fmt.Sprintf("%s.%d", c.logPath(), i))
		if err != nil {
			break
		}
		if sameFile(f, old) {
			f.Close()
			break
		}
		newestFirst = append(newestFirst, f)
	}
	slices.Reverse(newestFirst)
	return newestFirst
}

// followRotation finishes the file a follower had open when it was rotated
// away, then reads the files written after it (more than none when the
// follower fell behind; files already deleted are lost), before the
// follower goes on with the current file.
func followRotation(old *os.File, newer []*os.File, p *stampParser) error {
	for _, f := range append([]*os.File{old}, newer...) {
		if err := readAll(f, p); err != nil {
			return err
		}
		if err := p.flush(); err != nil {
			return err
		}
	}
	return nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

func readAll(f *os.File, p *stampParser) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if err := p.feed(buf[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func sameFile(a, b *os.File) bool {
	ai, err1 := a.Stat()
	bi, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(ai, bi)
}
