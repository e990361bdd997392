package raft

// The log's segment files and the records framed in them: how a record
// is written and read back, and the file operations replay relies on.

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
)

// appendRecord appends one framed record holding typ and m to buf.
func appendRecord(buf []byte, typ byte, m proto.Message, raw []byte) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, walHdr)...)
	buf = append(buf, typ)
	if m != nil {
		var err error
		if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf, m); err != nil {
			return nil, err
		}
	}
	buf = append(buf, raw...)
	body := buf[start+walHdr:]
	binary.BigEndian.PutUint32(buf[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(buf[start+4:], crc32c(body))
	return buf, nil
}

func headerPayload(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(walMagic), seq)
}

// readRecord reads the record at the start of b: its type, payload and
// framed length. A record that cannot be whole (cut short, a zero or
// impossible length) is errTorn; a checksum mismatch is ErrCorrupt.
func readRecord(b []byte) (typ byte, payload []byte, n int, err error) {
	if len(b) < walHdr {
		return 0, nil, 0, fmt.Errorf("%d bytes left, a record header needs %d: %w", len(b), walHdr, errTorn)
	}
	size := binary.BigEndian.Uint32(b)
	if size == 0 || size > walMaxRecord {
		return 0, nil, 0, fmt.Errorf("record length %d: %w", size, errTorn)
	}
	if uint64(len(b)-walHdr) < uint64(size) {
		return 0, nil, 0, fmt.Errorf("record of %d bytes, %d left: %w", size, len(b)-walHdr, errTorn)
	}
	body := b[walHdr : walHdr+int(size)]
	if got, want := crc32c(body), binary.BigEndian.Uint32(b[4:]); got != want {
		return 0, nil, walHdr + int(size), fmt.Errorf("checksum mismatch (stored %08x, computed %08x): %w", want, got, ErrCorrupt)
	}
	return body[0], body[1:], walHdr + int(size), nil
}

// intactAfter returns the offset of the first intact record that starts
// anywhere in b, or -1. Most offsets are rejected by their length alone.
func intactAfter(b []byte) int {
	for j := 0; j+walHdr < len(b); j++ {
		size := binary.BigEndian.Uint32(b[j:])
		if size == 0 || uint64(size) > uint64(len(b)-j-walHdr) {
			continue
		}
		body := b[j+walHdr : j+walHdr+int(size)]
		if body[0] < walRecHeader || body[0] > walRecSealed {
			continue
		}
		if crc32c(body) == binary.BigEndian.Uint32(b[j+4:]) {
			return j
		}
	}
	return -1
}

// listSegments returns the sequence numbers of dir's segments, in order.
func listSegments(dir string) ([]uint64, error) {
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range names {
		n := e.Name()
		if !strings.HasSuffix(n, ".wal") {
			continue
		}
		var seq uint64
		if _, err := fmt.Sscanf(n, "%016x.wal", &seq); err != nil || walName(seq) != n {
			return nil, fmt.Errorf("unexpected file %s in %s: %w", n, dir, ErrCorrupt)
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// createWAL makes a new log in dir (which must not hold segments) with
// one empty segment, durably.
func createWAL(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("raft: create %s: %w", dir, err)
	}
	seqs, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("raft: create log: %w", err)
	}
	if len(seqs) > 0 {
		return fmt.Errorf("raft: create log: %s already holds segments: %w", dir, ErrCorrupt)
	}
	if err := writeSegment(dir, 1, nil); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("raft: create log: %w", err)
	}
	return nil
}

// writeSegment creates segment seq in dir holding its header and then
// recs (framed records), synced, with the directory entry synced too.
func writeSegment(dir string, seq uint64, recs []byte) error {
	path := filepath.Join(dir, walName(seq))
	buf, _ := appendRecord(nil, walRecHeader, nil, headerPayload(seq))
	buf = append(buf, recs...)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("raft: create log segment: %w", err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("raft: write log segment %s: %w", path, err)
	}
	return nil
}

func readSize(path string) (int64, error) {
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// tailIsZero returns the length of the file at path and whether every
// byte from off on is zero (the preallocated space after the last record).
func tailIsZero(path string, off int64) (int64, bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	if off > int64(len(b)) {
		return int64(len(b)), false, nil
	}
	for _, c := range b[off:] {
		if c != 0 {
			return int64(len(b)), false, nil
		}
	}
	return int64(len(b)), true, nil
}

func truncateSynced(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("raft: cut log segment %s: %w", path, err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raft: cut log segment %s: %w", path, err)
	}
	return nil
}
