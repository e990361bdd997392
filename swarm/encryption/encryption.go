// Package encryption keeps a manager's data-encryption key (DEK): the key
// its raft log, snapshots and node key file are sealed with (raft's
// Encryption, pki's KeySealer). The DEK is stored wrapped (sealed) by a
// key-encryption key (KEK). Without autolock the KEK is a random key in a
// 0600 file beside the data, as Swarm keeps it, so the node restarts
// alone; with autolock the KEK is the cluster's unlock key, which is kept
// nowhere on the node's disk: a restarted manager waits until it is given
// (apiaryctl swarm unlock).
//
// Files, in DATA_DIR/encryption (0700):
//
//	dek  JSON: the DEK sealed under the KEK, and whether the KEK is the
//	     unlock key (locked) or the file beside it
//	kek  the KEK, when not locked
//
// Changing the KEK (autolock on or off, a rotated unlock key) rewraps the
// DEK: the data itself is not rewritten. The DEK does not change.
package encryption

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/apiary-io/apiary/internal/seal"
)

const (
	dirName  = "encryption"
	dekFile  = "dek"
	kekFile  = "kek"
	filePerm = 0o600

	// UnlockKeyPrefix starts every unlock key: APKEY-1-<43 characters>,
	// the key's 32 bytes in unpadded base64url.
	UnlockKeyPrefix = "APKEY-1-"
)

var dekAD = []byte("apiary-dek/1")

var (
	// ErrLocked: the DEK is wrapped by the unlock key, which must be
	// given (Unlock).
	ErrLocked = errors.New("this manager is locked: its data is encrypted with the cluster's unlock key; unlock it with `apiaryctl swarm unlock` (the key is on stdin)")
	// ErrWrongKey: the unlock key given does not open the DEK.
	ErrWrongKey = errors.New("the unlock key is wrong: it does not open this manager's data (if the key was rotated while this manager was down, give the key it had then)")
	// ErrMalformedKey: the string is not an unlock key.
	ErrMalformedKey = errors.New("not an unlock key (APKEY-1-...)")
)

// NewUnlockKey returns a new random unlock key.
func NewUnlockKey() string {
	return UnlockKeyPrefix + base64.RawURLEncoding.EncodeToString(seal.RandomBytes(seal.KeySize))
}

// ParseUnlockKey returns the KEK an unlock key stands for.
func ParseUnlockKey(s string) (*seal.Key, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, UnlockKeyPrefix)
	if !ok {
		return nil, ErrMalformedKey
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) != seal.KeySize {
		return nil, ErrMalformedKey
	}
	return seal.NewKey(raw)
}

// Keys is a manager's unwrapped DEK and how it is wrapped on disk.
type Keys struct {
	dir    string
	dek    *seal.Key
	locked bool
	kek    *seal.Key // the key the DEK is wrapped with now
}

type dekJSON struct {
	Version int    `json:"Version"`
	Locked  bool   `json:"Locked"`
	DEK     []byte `json:"DEK"` // sealed under the KEK
}

func keysDir(dataDir string) string { return filepath.Join(dataDir, dirName) }

// Exists reports whether dataDir holds a DEK.
func Exists(dataDir string) bool {
	_, err := os.Stat(filepath.Join(keysDir(dataDir), dekFile))
	return err == nil
}

// IsLocked reports whether dataDir's DEK is wrapped by the unlock key.
func IsLocked(dataDir string) (bool, error) {
	d, err := readDEK(keysDir(dataDir))
	if err != nil {
		return false, err
	}
	return d.Locked, nil
}

// Create makes a new DEK in dataDir, wrapped by a new KEK in the file
// beside it (the unlocked state; Lock wraps it by an unlock key). An
// existing DEK is kept and opened instead (Open).
func Create(dataDir string) (*Keys, error) {
	if Exists(dataDir) {
		return Open(dataDir)
	}
	dir := keysDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("encryption: %w", err)
	}
	k := &Keys{dir: dir, dek: seal.NewRandomKey()}
	if err := k.wrap(nil); err != nil {
		return nil, err
	}
	return k, nil
}

// Open opens dataDir's DEK with the KEK file beside it: ErrLocked when the
// DEK is wrapped by the unlock key.
func Open(dataDir string) (*Keys, error) {
	dir := keysDir(dataDir)
	d, err := readDEK(dir)
	if err != nil {
		return nil, err
	}
	if d.Locked {
		// A KEK file left by a crash while locking opens nothing now.
		os.Remove(filepath.Join(dir, kekFile))
		return nil, ErrLocked
	}
	var errs []error
	// kek.next: a crash while unlocking, after the DEK was wrapped by
	// it and before it was renamed to kek.
	for _, name := range []string{kekFile, kekFile + ".next"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kek, err := seal.NewKey(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		k, err := open(dir, d, kek, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if name != kekFile {
			if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, kekFile)); err != nil {
				return nil, fmt.Errorf("encryption: %w", err)
			}
		}
		return k, nil
	}
	return nil, fmt.Errorf("encryption: the key file beside the data: %w", errors.Join(errs...))
}

// Unlock opens dataDir's DEK with unlockKey: ErrWrongKey if it does not
// open it. An unlocked DEK opens with its key file alone (Open).
func Unlock(dataDir, unlockKey string) (*Keys, error) {
	kek, err := ParseUnlockKey(unlockKey)
	if err != nil {
		return nil, err
	}
	dir := keysDir(dataDir)
	d, err := readDEK(dir)
	if err != nil {
		return nil, err
	}
	if !d.Locked {
		return Open(dataDir)
	}
	return open(dir, d, kek, true)
}

func open(dir string, d dekJSON, kek *seal.Key, locked bool) (*Keys, error) {
	raw, err := kek.Open(nil, d.DEK, dekAD)
	if err != nil {
		if locked {
			return nil, ErrWrongKey
		}
		return nil, fmt.Errorf("encryption: the key file beside the data does not open the DEK: %w", err)
	}
	dek, err := seal.NewKey(raw)
	if err != nil {
		return nil, fmt.Errorf("encryption: DEK: %w", err)
	}
	return &Keys{dir: dir, dek: dek, locked: locked, kek: kek}, nil
}

func readDEK(dir string) (dekJSON, error) {
	var d dekJSON
	b, err := os.ReadFile(filepath.Join(dir, dekFile))
	if err != nil {
		return d, fmt.Errorf("encryption: %w", err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("encryption: %s: %w", filepath.Join(dir, dekFile), err)
	}
	if d.Version != 1 {
		return d, fmt.Errorf("encryption: %s: version %d (this version reads 1)", filepath.Join(dir, dekFile), d.Version)
	}
	return d, nil
}

// DEK returns the data-encryption key.
func (k *Keys) DEK() *seal.Key { return k.dek }

// Locked reports whether the DEK is wrapped by an unlock key.
func (k *Keys) Locked() bool { return k.locked }

// LockedWith reports whether the DEK is wrapped by unlockKey.
func (k *Keys) LockedWith(unlockKey string) bool {
	kek, err := ParseUnlockKey(unlockKey)
	return err == nil && k.locked && k.kek.Equal(kek)
}

// Lock wraps the DEK by unlockKey and deletes the KEK file: from now on
// the node needs the key to start.
func (k *Keys) Lock(unlockKey string) error {
	kek, err := ParseUnlockKey(unlockKey)
	if err != nil {
		return err
	}
	return k.wrap(kek)
}

// Unlocked wraps the DEK by a new KEK in the file beside it (autolock
// off).
func (k *Keys) Unlocked() error { return k.wrap(nil) }

// wrap writes the DEK sealed by kek (nil: a new random KEK kept in the
// file). Locking writes the wrapped DEK before deleting the KEK file;
// unlocking writes the KEK file first: a crash in between leaves a DEK
// that either key still opens.
func (k *Keys) wrap(kek *seal.Key) error {
	locked := kek != nil
	if !locked {
		kek = seal.NewRandomKey()
		if err := writeFileAtomic(k.dir, kekFile+".new", kek.Bytes()); err != nil {
			return err
		}
	}
	b, err := json.Marshal(dekJSON{Version: 1, Locked: locked, DEK: kek.Seal(nil, k.dek.Bytes(), dekAD)})
	if err != nil {
		return err
	}
	if !locked {
		// The old KEK file opens the old wrapping until the new one is
		// in place: keep both until then.
		if err := os.Rename(filepath.Join(k.dir, kekFile+".new"), filepath.Join(k.dir, kekFile+".next")); err != nil {
			return fmt.Errorf("encryption: %w", err)
		}
	}
	if err := writeFileAtomic(k.dir, dekFile, b); err != nil {
		return err
	}
	if locked {
		if err := os.Remove(filepath.Join(k.dir, kekFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("encryption: delete the key file: %w", err)
		}
	} else if err := os.Rename(filepath.Join(k.dir, kekFile+".next"), filepath.Join(k.dir, kekFile)); err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	if err := syncDir(k.dir); err != nil {
		return err
	}
	k.locked, k.kek = locked, kek
	return nil
}

// Remove deletes dataDir's keys (a demoted manager keeps no raft data).
func Remove(dataDir string) error { return os.RemoveAll(keysDir(dataDir)) }

func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("encryption: write %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("encryption: sync %s: %w", dir, err)
	}
	return nil
}
