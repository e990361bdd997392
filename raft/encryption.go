package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Encryption at rest. DiskStorage seals what it writes — every log record
// but the segment headers (a magic string and a sequence number), and
// every snapshot file — with a Cipher it is given, and knows nothing else
// of keys: where the key comes from, how it is wrapped and unlocked, is
// the caller's (swarm/encryption). Whole records rather than chosen
// fields: the entries are the store's transactions, which hold the CA key,
// the join token secrets and the cluster's secrets among everything else,
// and a field-by-field scheme would have to be right about every field of
// every object kind, now and later; sealing whole records needs no such
// knowledge, and a test can prove it by scanning the files.
//
// What stays in plaintext: raft.db (the member ID, the removed marker and
// the snapshot metadata: index, term, configuration IDs and the data
// file's size and checksum) and the segment headers.

// Cipher seals and opens messages with one key: authenticated encryption,
// so that a wrong key or altered data is an error, never garbage.
// internal/seal's XChaCha20-Poly1305 Key is one (NewCipher).
type Cipher interface {
	// Seal appends to dst plain sealed with the associated data ad.
	Seal(dst, plain, ad []byte) []byte
	// Open appends to dst the plaintext of sealed, or fails if sealed was
	// not made by this key with ad, or was altered.
	Open(dst, sealed, ad []byte) ([]byte, error)
}

// Encryption says how a DiskStorage seals what it writes.
type Encryption struct {
	// Key seals every record and snapshot file written from now on; nil
	// writes plaintext.
	Key Cipher
	// Old are keys that data may still be sealed with: the keys being
	// rotated away from. Data sealed with one of them, or in plaintext
	// when Key is set (a data dir of a version without encryption), is
	// rewritten under Key when the directory is opened, so that after a
	// successful open nothing needs the old keys (Rekeyed says whether
	// anything was).
	Old []Cipher
}

// ErrKey: the storage holds data sealed with a key it was not given (or
// with none given): a wrong unlock key, or the wrong data dir.
var ErrKey = errors.New("raft: the data is encrypted with another key")

// keys returns the keys to try when opening, the writing key first.
func (e Encryption) keys() []Cipher {
	var ks []Cipher
	if e.Key != nil {
		ks = append(ks, e.Key)
	}
	return append(ks, e.Old...)
}

// opener opens sealed messages with the first of a set of keys that
// works, and remembers whether any message was sealed with a key other
// than the writing one (or not sealed while there is one).
type opener struct {
	enc    Encryption
	opened int  // messages opened
	stale  bool // something was not under enc.Key
}

// open opens sealed with ad. A message no key opens is ErrKey when no
// message has been opened yet (the key is wrong), else corruptErr's (the
// keys open the rest: this one was altered).
func (o *opener) open(dst, sealed, ad []byte, what string) ([]byte, error) {
	ks := o.enc.keys()
	if len(ks) == 0 {
		return nil, fmt.Errorf("%s is encrypted and no key was given: %w", what, ErrKey)
	}
	for i, k := range ks {
		if out, err := k.Open(dst, sealed, ad); err == nil {
			o.opened++
			if i > 0 || o.enc.Key == nil {
				o.stale = true
			}
			return out, nil
		}
	}
	if o.opened == 0 {
		return nil, fmt.Errorf("%s: no key given opens it: %w", what, ErrKey)
	}
	return nil, fmt.Errorf("%s fails authentication while the key opens the rest: %w", what, ErrCorrupt)
}

// plain notes a message read in plaintext.
func (o *opener) plain() {
	if o.enc.Key != nil {
		o.stale = true
	}
}

// Sealed snapshot files: a magic string, then chunks, each its length
// (uint32, big endian) and the chunk sealed with the associated data
// magic | chunk number (uint64) | last (one byte, 1 for the last chunk).
// Numbering the chunks and marking the last makes a reordered, repeated
// or cut file fail to open instead of reading as a shorter snapshot. A
// file that does not start with the magic is a plaintext snapshot (an
// older data dir, or one written without a key): snapshot data starts
// with snapHeader's own magic.
const (
	snapSealMagic = "apiary-sealed-snapshot/1\n"
	// snapChunk: a snapshot is sealed in chunks of this many bytes.
	snapChunk = 256 << 10
)

func snapChunkAD(n uint64, last bool) []byte {
	ad := binary.BigEndian.AppendUint64([]byte(snapSealMagic), n)
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

// sealWriter seals what is written to it, in chunks, to w; Close writes
// the last chunk.
type sealWriter struct {
	w     io.Writer
	key   Cipher
	buf   []byte
	out   []byte
	n     uint64
	begun bool
}

func newSealWriter(w io.Writer, key Cipher) *sealWriter {
	return &sealWriter{w: w, key: key, buf: make([]byte, 0, snapChunk)}
}

func (s *sealWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := min(len(p), snapChunk-len(s.buf))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		if len(s.buf) == snapChunk {
			if err := s.flush(false); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (s *sealWriter) flush(last bool) error {
	if !s.begun {
		if _, err := io.WriteString(s.w, snapSealMagic); err != nil {
			return err
		}
		s.begun = true
	}
	s.out = binary.BigEndian.AppendUint32(s.out[:0], 0)
	s.out = s.key.Seal(s.out, s.buf, snapChunkAD(s.n, last))
	binary.BigEndian.PutUint32(s.out, uint32(len(s.out)-4))
	s.n++
	s.buf = s.buf[:0]
	_, err := s.w.Write(s.out)
	return err
}

// Close writes the last chunk (possibly empty).
func (s *sealWriter) Close() error { return s.flush(true) }

// openSnapshotReader returns a reader of the plaintext of a snapshot file
// read from r: r itself for a plaintext file, else one that opens its
// chunks with the keys of o.
func openSnapshotReader(r io.Reader, o *opener, name string) (io.Reader, error) {
	head := make([]byte, len(snapSealMagic))
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if string(head[:n]) != snapSealMagic {
		o.plain()
		return io.MultiReader(bytes.NewReader(head[:n]), r), nil
	}
	return &openReader{r: r, o: o, name: name}, nil
}

// openReader reads a sealed snapshot's chunks.
type openReader struct {
	r     io.Reader
	o     *opener
	name  string
	n     uint64
	plain []byte
	in    []byte
	done  bool
	key   Cipher // the key that opened the first chunk
}

func (r *openReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

func (r *openReader) next() error {
	corrupt := func(format string, a ...any) error {
		return fmt.Errorf("raft: sealed snapshot %s, chunk %d: %s: %w", r.name, r.n, fmt.Sprintf(format, a...), ErrCorrupt)
	}
	var lb [4]byte
	if _, err := io.ReadFull(r.r, lb[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("the file ends before its last chunk")
		}
		return err
	}
	size := binary.BigEndian.Uint32(lb[:])
	if size > snapChunk+1024 {
		return corrupt("length %d", size)
	}
	if cap(r.in) < int(size) {
		r.in = make([]byte, size)
	}
	r.in = r.in[:size]
	if _, err := io.ReadFull(r.r, r.in); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("cut short")
		}
		return err
	}
	what := fmt.Sprintf("snapshot file %s", r.name)
	for _, last := range []bool{false, true} {
		ad := snapChunkAD(r.n, last)
		var out []byte
		var err error
		if r.key != nil {
			out, err = r.key.Open(r.plain[:0], r.in, ad)
		} else {
			// The first chunk: find the key (and count the file once).
			if out, err = r.tryKeys(ad); err != nil && !errors.Is(err, errNoKeyOpens) {
				return err
			}
		}
		if err != nil {
			continue
		}
		r.plain = out
		r.n++
		if last {
			r.done = true
			// Nothing may follow the last chunk.
			var one [1]byte
			if k, _ := r.r.Read(one[:]); k > 0 {
				return corrupt("bytes after the last chunk")
			}
		}
		return nil
	}
	if r.key == nil && r.o.opened == 0 {
		return fmt.Errorf("raft: %s: no key given opens it: %w", what, ErrKey)
	}
	return corrupt("fails authentication")
}

var errNoKeyOpens = errors.New("no key opens it")

func (r *openReader) tryKeys(ad []byte) ([]byte, error) {
	ks := r.o.enc.keys()
	if len(ks) == 0 {
		return nil, fmt.Errorf("raft: snapshot file %s is encrypted and no key was given: %w", r.name, ErrKey)
	}
	for i, k := range ks {
		if out, err := k.Open(nil, r.in, ad); err == nil {
			r.key = k
			r.o.opened++
			if i > 0 || r.o.enc.Key == nil {
				r.o.stale = true
			}
			return out, nil
		}
	}
	return nil, errNoKeyOpens
}
