package pki

import (
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// A manager's node key is kept sealed (encrypted and authenticated) in
// certificates/node.key, under the key swarm/encryption keeps for the
// node's data at rest; a worker's stays a plain PEM file, 0600 (as
// Swarm's: a worker holds no cluster state to protect, and a key beside
// its key would add nothing).

// KeySealer seals and opens the node key file: internal/seal's Key.
type KeySealer interface {
	Seal(dst, plain, ad []byte) []byte
	Open(dst, sealed, ad []byte) ([]byte, error)
}

// sealedKeyType is the PEM type of a sealed node key. It must not say
// "PRIVATE KEY": scanners (and this repository's tests) look for that.
const sealedKeyType = "APIARY SEALED NODE KEY"

var keyFileAD = []byte("apiary-node-key/1")

// ErrKeySealed: the node key is sealed and no key (or another key) was
// given to open it: the node is locked.
var ErrKeySealed = errors.New("pki: the node key is encrypted with a key that was not given")

// sealKeyPEM returns what node.key holds for keyPEM under s (keyPEM
// itself without s).
func sealKeyPEM(keyPEM []byte, s KeySealer) []byte {
	if s == nil {
		return keyPEM
	}
	return pem.EncodeToMemory(&pem.Block{Type: sealedKeyType, Bytes: s.Seal(nil, keyPEM, keyFileAD)})
}

// openKeyPEM returns the key PEM in what node.key holds, and whether it
// was sealed.
func openKeyPEM(file []byte, s KeySealer) ([]byte, bool, error) {
	b, _ := pem.Decode(file)
	if b == nil || b.Type != sealedKeyType {
		return file, false, nil
	}
	if s == nil {
		return nil, true, fmt.Errorf("%w (none given)", ErrKeySealed)
	}
	plain, err := s.Open(nil, b.Bytes, keyFileAD)
	if err != nil {
		return nil, true, ErrKeySealed
	}
	return plain, true, nil
}

// LoadSealedNodeIdentity is LoadNodeIdentity for a node whose key file is
// sealed with s. A plain key file (a manager of a version without
// encryption) loads too, and is left as it is until SetKeySealer: the
// caller checks the identity before anything is written. Later saves
// (renewals) seal with s. A key file sealed under another key is
// ErrKeySealed.
func LoadSealedNodeIdentity(dataDir string, s KeySealer) (*NodeIdentity, error) {
	return loadNodeIdentity(dataDir, s)
}

// SetKeySealer seals the node key file with s from now on (nil: a plain
// file, a demoted manager's), rewriting it at once.
func (n *NodeIdentity) SetKeySealer(s KeySealer) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sealer = s
	if n.dir == "" {
		return nil
	}
	dir := filepath.Join(n.dir, certDir)
	if err := writeFileAtomic(dir, keyFile, sealKeyPEM(n.cur.Load().keyPEM, s)); err != nil {
		return err
	}
	return syncDir(dir)
}

// KeyFileSealed reports whether dataDir's node key file is sealed.
func KeyFileSealed(dataDir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, certDir, keyFile))
	if err != nil {
		return false, fmt.Errorf("pki: node key: %w", err)
	}
	_, sealed, _ := openKeyPEM(b, nil)
	return sealed, nil
}

// ReadNodeKeyPEM returns the node key in dataDir as PEM, opened with s
// when it is sealed.
func ReadNodeKeyPEM(dataDir string, s KeySealer) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, certDir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: node key: %w", err)
	}
	p, _, err := openKeyPEM(b, s)
	return p, err
}
