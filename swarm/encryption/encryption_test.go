package encryption

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The DEK survives every wrapping: unlocked (key file), locked by an
// unlock key (no key file; the key opens it, another is ErrWrongKey), a
// rotated key (the old one refused), unlocked again.
func TestWrapping(t *testing.T) {
	d := t.TempDir()
	k, err := Create(d)
	if err != nil {
		t.Fatal(err)
	}
	dek := k.DEK().Bytes()
	same := func(k *Keys) {
		t.Helper()
		if !bytes.Equal(k.DEK().Bytes(), dek) {
			t.Fatal("the DEK changed")
		}
	}
	k2, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	same(k2)
	key1 := NewUnlockKey()
	if err := k.Lock(key1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, dirName, kekFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("locked, the key file is still there: %v", err)
	}
	if _, err := Open(d); !errors.Is(err, ErrLocked) {
		t.Fatalf("open locked: %v", err)
	}
	if locked, _ := IsLocked(d); !locked {
		t.Fatal("IsLocked says no")
	}
	if _, err := Unlock(d, NewUnlockKey()); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := Unlock(d, "SWMKEY-1-abc"); !errors.Is(err, ErrMalformedKey) {
		t.Fatalf("malformed key: %v", err)
	}
	k3, err := Unlock(d, " "+key1+"\n")
	if err != nil {
		t.Fatal(err)
	}
	same(k3)
	if !k3.LockedWith(key1) {
		t.Fatal("LockedWith the key it was unlocked with says no")
	}
	key2 := NewUnlockKey()
	if err := k3.Lock(key2); err != nil {
		t.Fatal(err)
	}
	if _, err := Unlock(d, key1); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("the old key after a rotation: %v", err)
	}
	k4, err := Unlock(d, key2)
	if err != nil {
		t.Fatal(err)
	}
	same(k4)
	if err := k4.Unlocked(); err != nil {
		t.Fatal(err)
	}
	k5, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	same(k5)
	// The DEK is never in a file in the clear.
	for _, name := range []string{dekFile, kekFile} {
		b, _ := os.ReadFile(filepath.Join(d, dirName, name))
		if bytes.Contains(b, dek) {
			t.Fatalf("%s holds the DEK", name)
		}
	}
}

// A crash while unlocking, after the DEK was wrapped by the new key file
// and before it took the old one's name, leaves a DEK that opens.
func TestUnlockCrash(t *testing.T) {
	d := t.TempDir()
	k, err := Create(d)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(filepath.Join(d, dirName, kekFile))
	if err := k.Unlocked(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(d, dirName)
	os.Rename(filepath.Join(dir, kekFile), filepath.Join(dir, kekFile+".next"))
	os.WriteFile(filepath.Join(dir, kekFile), old, 0o600)
	k2, err := Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k2.DEK().Bytes(), k.DEK().Bytes()) {
		t.Fatal("another DEK")
	}
	if _, err := Open(d); err != nil {
		t.Fatalf("after the repair: %v", err)
	}
}

// Rotate makes a new DEK, pending beside the old one under the unlock key
// until CommitDEK: a crash before the commit (the dir reopened) finds
// both, and resuming keeps the same pending DEK; after the commit only the
// new one is left. A copy of the dir taken before, with its key file,
// opens the old DEK only.
func TestRotate(t *testing.T) {
	d := t.TempDir()
	k, err := Create(d)
	if err != nil {
		t.Fatal(err)
	}
	old := k.DEK().Bytes()
	before := t.TempDir()
	if err := os.CopyFS(filepath.Join(before, dirName), os.DirFS(filepath.Join(d, dirName))); err != nil {
		t.Fatal(err)
	}
	key := NewUnlockKey()
	if err := k.Rotate(key); err != nil {
		t.Fatal(err)
	}
	next := k.DEK().Bytes()
	if bytes.Equal(next, old) || !k.Rotating() || len(k.OldDEKs()) != 1 || !bytes.Equal(k.OldDEKs()[0].Bytes(), old) {
		t.Fatalf("after Rotate: rotating %v, %d old keys, the DEK changed %v", k.Rotating(), len(k.OldDEKs()), !bytes.Equal(next, old))
	}
	if _, err := os.Stat(filepath.Join(d, dirName, kekFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rotating to an unlock key left the key file: %v", err)
	}
	// A crash here: the node reopens with both, and resumes.
	k2, err := Unlock(d, key)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Rotating() || !bytes.Equal(k2.DEK().Bytes(), next) || !bytes.Equal(k2.OldDEKs()[0].Bytes(), old) {
		t.Fatal("reopened mid-rotation: not the pending DEK and the old one")
	}
	// The node key file sealed by either opens.
	s := k2.Sealer()
	for _, sealed := range [][]byte{k.OldDEKs()[0].Seal(nil, []byte("x"), nil), k.DEK().Seal(nil, []byte("x"), nil)} {
		if p, err := s.Open(nil, sealed, nil); err != nil || string(p) != "x" {
			t.Fatalf("the sealer mid-rotation: %q %v", p, err)
		}
	}
	if err := k2.Rotate(key); err != nil || !bytes.Equal(k2.DEK().Bytes(), next) {
		t.Fatalf("resuming made another DEK (%v)", err)
	}
	if err := k2.CommitDEK(); err != nil {
		t.Fatal(err)
	}
	k3, err := Unlock(d, key)
	if err != nil {
		t.Fatal(err)
	}
	if k3.Rotating() || k3.OldDEKs() != nil || !bytes.Equal(k3.DEK().Bytes(), next) {
		t.Fatal("after CommitDEK: not the new DEK alone")
	}
	if _, err := k3.Sealer().Open(nil, k.OldDEKs()[0].Seal(nil, []byte("x"), nil), nil); err == nil {
		t.Fatal("after CommitDEK the old DEK still opens through the sealer")
	}
	kb, err := Open(before)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kb.DEK().Bytes(), old) {
		t.Fatal("the copy taken before opens something other than the old DEK")
	}
	// Autolock off after it: the new DEK is kept, rewrapped.
	if err := k3.Unlocked(); err != nil {
		t.Fatal(err)
	}
	k4, err := Open(d)
	if err != nil || !bytes.Equal(k4.DEK().Bytes(), next) {
		t.Fatalf("unlocked after the rotation: %v", err)
	}
}
