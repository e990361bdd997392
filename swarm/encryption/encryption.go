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
// Changing the KEK rewraps the DEK. A change to a new unlock key (autolock
// turned on, or the unlock key rotated) also rotates the DEK (Rotate): a
// copy of the data dir taken before, with the key file or the old unlock
// key, opens the old DEK, and must open nothing written after. The new
// DEK is written first as pending, wrapped beside the old one by the new
// KEK; the caller rewrites its data under it (raft's Rekey, the node key
// file) and then commits it (CommitDEK), dropping the old. A node that
// crashes in between finds both in the dek file and finishes the
// rotation as it starts (DEK is the pending one, OldDEKs the other).
// Turning autolock off only rewraps: a new DEK would sit beside the data
// as the old one does.
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
	dir     string
	dek     *seal.Key
	pending *seal.Key // a DEK being rotated to (Rotate), nil otherwise
	locked  bool
	kek     *seal.Key // the key the DEK is wrapped with now
}

type dekJSON struct {
	Version int    `json:"Version"`
	Locked  bool   `json:"Locked"`
	DEK     []byte `json:"DEK"` // sealed under the KEK
	// Pending is the DEK being rotated to, sealed under the KEK: the data
	// may be under either until CommitDEK.
	Pending []byte `json:"Pending,omitempty"`
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
	k := &Keys{dir: dir, dek: dek, locked: locked, kek: kek}
	if d.Pending != nil {
		// Written in the same file by the same KEK: a failure here is
		// damage, not a wrong key.
		raw, err := kek.Open(nil, d.Pending, dekAD)
		if err == nil {
			k.pending, err = seal.NewKey(raw)
		}
		if err != nil {
			return nil, fmt.Errorf("encryption: the pending DEK in %s does not open: %w", filepath.Join(dir, dekFile), err)
		}
	}
	return k, nil
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

// DEK returns the data-encryption key to write with: the pending one while
// a rotation is unfinished (OldDEKs then opens what is not rewritten yet).
func (k *Keys) DEK() *seal.Key {
	if k.pending != nil {
		return k.pending
	}
	return k.dek
}

// OldDEKs returns the DEK being rotated away from while a rotation is
// unfinished: data may still be sealed with it.
func (k *Keys) OldDEKs() []*seal.Key {
	if k.pending != nil {
		return []*seal.Key{k.dek}
	}
	return nil
}

// Rotating reports whether a DEK rotation is unfinished (CommitDEK).
func (k *Keys) Rotating() bool { return k.pending != nil }

// Sealer seals with DEK and opens with it or OldDEKs: the node key file's
// (pki.KeySealer), which may be under either while a rotation is
// unfinished.
func (k *Keys) Sealer() *Sealer { return &Sealer{cur: k.DEK(), old: k.OldDEKs()} }

// Sealer is Keys.Sealer.
type Sealer struct {
	cur *seal.Key
	old []*seal.Key
}

// Seal seals with the current DEK.
func (s *Sealer) Seal(dst, plain, ad []byte) []byte { return s.cur.Seal(dst, plain, ad) }

// Open opens with the current DEK or an old one.
func (s *Sealer) Open(dst, sealed, ad []byte) ([]byte, error) {
	out, err := s.cur.Open(dst, sealed, ad)
	for _, o := range s.old {
		if err == nil {
			break
		}
		out, err = o.Open(dst, sealed, ad)
	}
	return out, err
}

// Rotate starts a DEK rotation and wraps both DEKs by unlockKey, deleting
// the key file (autolock on, or a rotated unlock key): a new DEK is made
// and kept pending (DEK returns it). The caller rewrites the data under it,
// then calls CommitDEK. A rotation already pending is resumed, not
// restarted: data may be under its DEK already.
func (k *Keys) Rotate(unlockKey string) error {
	kek, err := ParseUnlockKey(unlockKey)
	if err != nil {
		return err
	}
	pending := k.pending
	if pending == nil {
		pending = seal.NewRandomKey()
	}
	return k.write(kek, k.dek, pending)
}

// CommitDEK ends a rotation: the pending DEK becomes the DEK, and the old
// one is dropped from the dek file. The caller has rewritten everything
// the old one sealed.
func (k *Keys) CommitDEK() error {
	if k.pending == nil {
		return nil
	}
	kek := k.kek
	if !k.locked {
		kek = nil
	}
	return k.write(kek, k.pending, nil)
}

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

// wrap writes the DEK (and a pending one) sealed by kek (nil: a new random
// KEK kept in the file).
func (k *Keys) wrap(kek *seal.Key) error { return k.write(kek, k.dek, k.pending) }

// write writes dek and pending sealed by kek (nil: a new random KEK kept
// in the file). Locking writes the wrapped DEK before deleting the KEK
// file; unlocking writes the KEK file first: a crash in between leaves a
// DEK that either key still opens. The dek file is replaced whole (a
// rename), so a crash leaves the old pair or the new one.
func (k *Keys) write(kek *seal.Key, dek, pending *seal.Key) error {
	locked := kek != nil
	if !locked {
		kek = seal.NewRandomKey()
		if err := writeFileAtomic(k.dir, kekFile+".new", kek.Bytes()); err != nil {
			return err
		}
	}
	d := dekJSON{Version: 1, Locked: locked, DEK: kek.Seal(nil, dek.Bytes(), dekAD)}
	if pending != nil {
		d.Pending = kek.Seal(nil, pending.Bytes(), dekAD)
	}
	b, err := json.Marshal(d)
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
	k.locked, k.kek, k.dek, k.pending = locked, kek, dek, pending
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
