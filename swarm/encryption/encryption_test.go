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
