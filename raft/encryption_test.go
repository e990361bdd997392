package raft

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/apiary-io/apiary/internal/seal"
)

// testEnc is the encryption the storage tests open their dirs with
// (openTestStorage); plainAndSealed runs a test without and with a key.
var testEnc Encryption

// fuzzKey seals FuzzWALSealed's log.
var fuzzKey = seal.NewRandomKey()

func openTestStorage(dir string) (*DiskStorage, error) {
	return OpenEncryptedDiskStorage(dir, testEnc)
}

func plainAndSealed(t *testing.T, test func(t *testing.T)) {
	t.Run("plain", test)
	t.Run("sealed", func(t *testing.T) {
		testEnc = Encryption{Key: seal.NewRandomKey()}
		defer func() { testEnc = Encryption{} }()
		test(t)
	})
}

// filesContaining returns the files under dir that hold any of needles.
func filesContaining(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				found = append(found, fmt.Sprintf("%s holds %q", p, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// secretDir writes a log whose entries hold a known secret and a
// snapshot whose data does, with enc, and returns the entries and the
// snapshot data.
func secretDir(t *testing.T, dir string, enc Encryption, secret string) ([]*raftpb.Entry, []byte) {
	t.Helper()
	s, err := OpenEncryptedDiskStorage(dir, enc)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 40; i++ {
		ents = append(ents, entry(i, 1, fmt.Sprintf("%d:%s", i, secret)))
	}
	if err := s.Save(hardState(1, 1, 40), ents, nil, true); err != nil {
		t.Fatal(err)
	}
	// A snapshot larger than a chunk, so that chunks are tested.
	data := bytes.Repeat([]byte("state "+secret+" "), (snapChunk/len(secret))*2)
	sink, err := s.NewSnapshotSink(30, 1)
	if err != nil {
		t.Fatal(err)
	}
	sink.Write(data)
	size, crc, err := sink.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSnapshot(30, &raftpb.ConfState{Voters: []uint64{1}}, snapRef{size, crc}.encode()); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(25); err != nil {
		t.Fatal(err)
	}
	return ents, data
}

// checkDir opens dir with enc and checks that it holds the log (from the
// compaction point on) and the snapshot data written by secretDir.
func checkDir(t *testing.T, dir string, enc Encryption, ents []*raftpb.Entry, data []byte) *DiskStorage {
	t.Helper()
	s, err := OpenEncryptedDiskStorage(dir, enc)
	if err != nil {
		t.Fatal(err)
	}
	got, hs := loadedLog(t, s)
	last := ents[len(ents)-1].GetIndex()
	if len(got) == 0 || hs.GetCommit() != last {
		t.Fatalf("%d entries, hard state %v", len(got), hs)
	}
	samePrefix(t, "reopened", got, ents[got[0].GetIndex()-1:])
	if got[len(got)-1].GetIndex() != last {
		t.Fatalf("log ends at %d, want %d", got[len(got)-1].GetIndex(), last)
	}
	r, err := s.OpenSnapshot(30, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("snapshot data: %d bytes (want %d), %v", len(b), len(data), err)
	}
	return s
}

// A sealed data dir holds no byte of what was written in plaintext, in
// any file (the log, raft.db, the snapshot files); it opens with its key,
// and is refused with ErrKey without one or with another key, changing
// nothing.
func TestSealedDirHoldsNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	secret := "s3cr3t-bytes-0f-the-cluster"
	key := seal.NewRandomKey()
	ents, data := secretDir(t, dir, Encryption{Key: key}, secret)
	needles := [][]byte{[]byte(secret), []byte(base64.StdEncoding.EncodeToString([]byte(secret))), []byte("state s3cr3t")}
	if found := filesContaining(t, dir, needles...); len(found) > 0 {
		t.Fatalf("plaintext at rest: %v", found)
	}
	checkDir(t, dir, Encryption{Key: key}, ents, data).Close()
	before := dirDigest(t, dir)
	for name, enc := range map[string]Encryption{"no key": {}, "another key": {Key: seal.NewRandomKey()}, "another key, old": {Key: seal.NewRandomKey(), Old: []Cipher{seal.NewRandomKey()}}} {
		s, err := OpenEncryptedDiskStorage(dir, enc)
		if err == nil {
			s.Close()
			t.Fatalf("%s: opened", name)
		}
		if !errors.Is(err, ErrKey) {
			t.Fatalf("%s: %v, want ErrKey", name, err)
		}
		if after := dirDigest(t, dir); after != before {
			t.Fatalf("%s: refusing changed the dir:\n%s\n%s", name, before, after)
		}
	}
	if !HasState(dir) {
		t.Fatal("HasState says an encrypted dir with a log is empty")
	}
}

// dirDigest lists dir's files with their sizes and contents' checksums.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		c, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "%s %d %08x\n", strings.TrimPrefix(p, dir), len(c), crc32c(c))
		return nil
	})
	return b.String()
}

// A data dir written without a key (an older version's) is sealed when
// it is first opened with one, and keeps every entry and its snapshot;
// a rotation (a new key, the old one given as Old) rewrites it under the
// new key, after which the old key alone is refused; opening with no key
// and the key as Old turns encryption off.
func TestRekeyOnOpen(t *testing.T) {
	dir := t.TempDir()
	secret := "plaintext-from-an-older-version"
	ents, data := secretDir(t, dir, Encryption{}, secret)
	if found := filesContaining(t, dir, []byte(secret)); len(found) == 0 {
		t.Fatal("the plaintext dir does not hold the secret: the test proves nothing")
	}
	k1, k2 := seal.NewRandomKey(), seal.NewRandomKey()
	s := checkDir(t, dir, Encryption{Key: k1}, ents, data)
	if !s.Rekeyed() {
		t.Fatal("a plaintext dir opened with a key was not rewritten")
	}
	// It goes on under the key.
	if err := s.Save(hardState(1, 1, 41), []*raftpb.Entry{entry(41, 1, "41:"+secret)}, nil, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	ents = append(ents, entry(41, 1, "41:"+secret))
	if found := filesContaining(t, dir, []byte(secret)); len(found) > 0 {
		t.Fatalf("plaintext left after sealing: %v", found)
	}
	for _, n := range []string{"wal.tmp", "wal.old"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left behind: %v", n, err)
		}
	}
	s, err := OpenEncryptedDiskStorage(dir, Encryption{Key: k1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rekeyed() {
		t.Fatal("a sealed dir was rewritten again under the same key")
	}
	s.Close()

	// Rotation.
	s, err = OpenEncryptedDiskStorage(dir, Encryption{Key: k2, Old: []Cipher{k1}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Rekeyed() {
		t.Fatal("not rewritten under the new key")
	}
	got, _ := loadedLog(t, s)
	samePrefix(t, "rotated", got, ents[got[0].GetIndex()-1:])
	s.Close()
	if _, err := OpenEncryptedDiskStorage(dir, Encryption{Key: k1}); !errors.Is(err, ErrKey) {
		t.Fatalf("the old key after the rotation: %v, want ErrKey", err)
	}
	checkDir(t, dir, Encryption{Key: k2}, ents, data).Close()

	// Off.
	s, err = OpenEncryptedDiskStorage(dir, Encryption{Old: []Cipher{k2}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Rekeyed() {
		t.Fatal("not rewritten in plaintext")
	}
	s.Close()
	checkDir(t, dir, Encryption{}, ents, data).Close()
}

// A crash in the middle of a rewrite leaves a dir that opens with every
// entry: before the swap (wal.tmp beside wal), and between its two
// renames (wal.old and wal.tmp, no wal).
func TestRekeyCrash(t *testing.T) {
	plain := t.TempDir()
	ents, data := secretDir(t, plain, Encryption{}, "crash")
	key := seal.NewRandomKey()
	sealed := copyDir(t, plain)
	checkDir(t, sealed, Encryption{Key: key}, ents, data).Close()
	for name, arrange := range map[string]func(d string){
		"before the swap": func(d string) {
			os.CopyFS(filepath.Join(d, "wal.tmp"), os.DirFS(filepath.Join(sealed, "wal")))
		},
		"half a temporary log": func(d string) {
			os.MkdirAll(filepath.Join(d, "wal.tmp"), 0o700)
			os.WriteFile(filepath.Join(d, "wal.tmp", walName(1)), []byte("half"), 0o600)
		},
		"between the renames": func(d string) {
			os.Rename(filepath.Join(d, "wal"), filepath.Join(d, "wal.old"))
			os.CopyFS(filepath.Join(d, "wal.tmp"), os.DirFS(filepath.Join(sealed, "wal")))
		},
		"after the renames": func(d string) {
			os.Rename(filepath.Join(d, "wal"), filepath.Join(d, "wal.old"))
			os.CopyFS(filepath.Join(d, "wal"), os.DirFS(filepath.Join(sealed, "wal")))
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := copyDir(t, plain)
			arrange(d)
			checkDir(t, d, Encryption{Key: key}, ents, data).Close()
			for _, n := range []string{"wal.tmp", "wal.old"} {
				if _, err := os.Stat(filepath.Join(d, n)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s left behind: %v", n, err)
				}
			}
			if found := filesContaining(t, filepath.Join(d, "wal"), []byte("crash")); len(found) > 0 {
				t.Fatalf("plaintext left: %v", found)
			}
		})
	}
}

// A sealed snapshot file cut short, with a chunk altered, with chunks
// swapped or with bytes appended is refused as damage, not read as a
// shorter snapshot.
func TestSealedSnapshotDamage(t *testing.T) {
	dir := t.TempDir()
	key := seal.NewRandomKey()
	secretDir(t, dir, Encryption{Key: key}, "damage")
	snap := filepath.Join("snap", fmt.Sprintf("%016x-%016x.snap", 1, 30))
	orig, err := os.ReadFile(filepath.Join(dir, snap))
	if err != nil {
		t.Fatal(err)
	}
	first := len(snapSealMagic) + 4 + int(uint32(orig[len(snapSealMagic)])<<24|uint32(orig[len(snapSealMagic)+1])<<16|uint32(orig[len(snapSealMagic)+2])<<8|uint32(orig[len(snapSealMagic)+3]))
	for name, damage := range map[string]func([]byte) []byte{
		"cut at a chunk boundary": func(b []byte) []byte { return b[:first] },
		"cut in a chunk":          func(b []byte) []byte { return b[:first+100] },
		"a flipped bit":           func(b []byte) []byte { b[first/2] ^= 1; return b },
		"appended":                func(b []byte) []byte { return append(b, 0) },
		"chunks swapped": func(b []byte) []byte {
			second := b[first:]
			n := 4 + int(uint32(second[0])<<24|uint32(second[1])<<16|uint32(second[2])<<8|uint32(second[3]))
			out := slices.Clone(b[:len(snapSealMagic)])
			out = append(out, second[:n]...)
			out = append(out, b[len(snapSealMagic):first]...)
			return append(out, second[n:]...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := copyDir(t, dir)
			if err := os.WriteFile(filepath.Join(d, snap), damage(slices.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenEncryptedDiskStorage(d, Encryption{Key: key})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v, want ErrCorrupt", err)
			}
		})
	}
}

// A cluster whose members each seal with a key of their own: snapshots
// sent from one member to another are sealed under the receiver's key,
// every member restarts with its own, and a member given another's key
// is refused.
func TestClusterOwnKeys(t *testing.T) {
	keys := map[string]*seal.Key{}
	c := newCluster(t, memNet, 3, func(cfg *Config) {
		smallSnapshots(cfg)
		if keys[cfg.DataDir] == nil {
			keys[cfg.DataDir] = seal.NewRandomKey()
		}
		cfg.Encryption = Encryption{Key: keys[cfg.DataDir]}
	})
	lead := c.leader(c.ids, 20*time.Second)
	follower := without(c.ids, lead)[0]
	c.kill(follower)
	var idx uint64
	secret := strings.Repeat("topsecret", 20)
	for i := 0; i < 120; i++ {
		idx = c.mustPut(lead, fmt.Sprintf("k%03d", i), secret)
	}
	// The follower comes back behind the leader's compacted log: it
	// is sent a snapshot.
	c.restart(follower)
	c.converged(c.ids, idx, 20*time.Second)
	c.restartAll()
	lead = c.leader(c.ids, 20*time.Second)
	idx = c.mustPut(lead, "after", "restart")
	c.converged(c.ids, idx, 20*time.Second)
	if v, _ := c.fsm(follower).get("k119"); v != secret {
		t.Fatalf("follower: k119 = %q", v)
	}
	if found := filesContaining(t, c.base, []byte("topsecret")); len(found) > 0 {
		t.Fatalf("plaintext at rest: %v", found)
	}
	c.stopAll()
	a, b := filepath.Join(c.base, "m1"), filepath.Join(c.base, "m2")
	if _, err := OpenEncryptedDiskStorage(a, Encryption{Key: keys[b]}); !errors.Is(err, ErrKey) {
		t.Fatalf("member 1 opened with member 2's key: %v", err)
	}
}

// A data dir of the first format (the log in raft.db) opened with a key
// keeps nothing of its log in plaintext: not in wal/, and not in the free
// pages of raft.db, which is rewritten.
func TestMigrateFormat1Sealed(t *testing.T) {
	d := copyDir(t, filepath.Join("testdata", "format1", "m1"))
	want, _, _ := openedState(t, copyDir(t, d))
	marker := []byte("k75=v75")
	if len(filesContaining(t, d, marker)) == 0 {
		t.Fatal("the fixture does not hold the marker: the test proves nothing")
	}
	key := seal.NewRandomKey()
	s, err := OpenEncryptedDiskStorage(d, Encryption{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := loadedLog(t, s)
	s.Close()
	samePrefix(t, "migrated", got, want)
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	if f := filesContaining(t, d, marker); len(f) > 0 {
		t.Fatalf("plaintext left: %v", f)
	}
	if _, err := os.Stat(filepath.Join(d, "raft.db.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("raft.db.tmp left behind: %v", err)
	}
}
