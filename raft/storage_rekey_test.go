package raft

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/apiary-io/apiary/internal/seal"
)

// Rekey rotates a storage's key while it is written and read: entries
// saved during the rotation, a snapshot being written under the old key
// as it starts and committed after it, and a snapshot read meanwhile are
// all kept; afterwards every record and snapshot file opens with the new
// key and none with the old one, and the directory opens with the new key
// alone.
func TestRekeyOnline(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := seal.NewRandomKey(), seal.NewRandomKey()
	ents, data := secretDir(t, dir, Encryption{Key: k1}, "online")
	s, err := OpenEncryptedDiskStorage(dir, Encryption{Key: k1})
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot being received under k1 when the rotation starts.
	late := bytes.Repeat([]byte("late snapshot "), snapChunk/7)
	sink, err := s.NewSnapshotSink(35, 1)
	if err != nil {
		t.Fatal(err)
	}
	sink.Write(late[:len(late)/2])
	// A reader of the current snapshot, open across the rotation.
	rc, err := s.OpenSnapshot(30, 1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	saveErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(41); i <= 80; i++ {
			e := entry(i, 1, fmt.Sprintf("%d:online", i))
			if err := s.Save(hardState(1, 1, i), []*raftpb.Entry{e}, nil, true); err != nil {
				saveErr <- err
				return
			}
		}
	}()
	if err := s.Rekey(k2); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	select {
	case err := <-saveErr:
		t.Fatalf("a save during the rotation: %v", err)
	default:
	}
	for i := uint64(41); i <= 80; i++ {
		ents = append(ents, entry(i, 1, fmt.Sprintf("%d:online", i)))
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("a snapshot read across the rotation: %d bytes, %v", len(b), err)
	}
	sink.Write(late[len(late)/2:])
	if _, _, err := sink.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	if _, err := OpenEncryptedDiskStorage(copyDir(t, dir), Encryption{Key: k1}); !errors.Is(err, ErrKey) {
		t.Fatalf("the old key after the rotation: %v, want ErrKey", err)
	}
	for _, f := range sealedWith(t, dir, k1) {
		t.Errorf("%s opens with the old key", f)
	}
	if got := sealedWith(t, dir, k2); len(got) < 3 {
		t.Fatalf("the scan finds %v under the new key (want a segment and two snapshots): it proves nothing", got)
	}
	s = checkDir(t, dir, Encryption{Key: k2}, ents, data)
	defer s.Close()
	if s.Rekeyed() {
		t.Fatal("opened with the new key alone, the directory still needed rewriting")
	}
	r, err := s.OpenSnapshot(35, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, err := io.ReadAll(r); err != nil || !bytes.Equal(b, late) {
		t.Fatalf("the snapshot committed after the rotation: %d bytes, %v", len(b), err)
	}
	for _, n := range []string{"wal.tmp", "wal.old"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", n, err)
		}
	}
}

// sealedWith returns the files under dir (log segments and snapshot
// files) of which anything opens with key.
func sealedWith(t *testing.T, dir string, key Cipher) []string {
	t.Helper()
	var found []string
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal"))
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) > 0 {
			typ, payload, n, err := readRecord(b)
			if err != nil || n == 0 {
				break
			}
			b = b[n:]
			if typ != walRecSealed {
				continue
			}
			if _, err := key.Open(nil, payload, walRecordAD); err == nil {
				found = append(found, p)
				break
			}
		}
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "*"))
	for _, p := range snaps {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := openSnapshotReader(bufio.NewReader(f), &opener{enc: Encryption{Key: key}}, p)
		if err == nil {
			_, err = io.ReadAll(r)
		}
		f.Close()
		if err == nil {
			found = append(found, p)
		}
	}
	return found
}

// BenchmarkRekey rotates the key of a storage holding a log of 5,000
// entries of 2 KiB (10 MB, the order of a snapshot interval's worth) and
// no snapshot file: the time raft's writes wait for (the log is rewritten
// holding the storage lock; snapshot files are not, and are left out).
func BenchmarkRekey(b *testing.B) {
	dir := b.TempDir()
	s, err := OpenEncryptedDiskStorage(dir, Encryption{Key: seal.NewRandomKey()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := string(bytes.Repeat([]byte("x"), 2048))
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 5000; i++ {
		ents = append(ents, entry(i, 1, data))
	}
	if err := s.Save(hardState(1, 1, 5000), ents, nil, true); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(ents) * len(data)))
	b.ResetTimer()
	for b.Loop() {
		if err := s.Rekey(seal.NewRandomKey()); err != nil {
			b.Fatal(err)
		}
	}
}
