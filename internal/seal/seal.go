// Package seal is the authenticated encryption Apiary uses for data at
// rest: XChaCha20-Poly1305 (golang.org/x/crypto), whose 192-bit nonces are
// drawn at random for every message. A random 96-bit nonce (AES-GCM) is
// safe for about 2^32 messages under one key; a manager's raft log seals
// one message per record for as long as its data-encryption key lives, so
// a nonce that needs no counter and no bound is the simpler guarantee.
package seal

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of a key in bytes.
const KeySize = chacha20poly1305.KeySize

// Overhead is what sealing adds to a message: the nonce and the tag.
const Overhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// ErrOpen: the sealed message was not sealed by this key with this
// associated data, or was altered since.
var ErrOpen = errors.New("message authentication failed (wrong key, or the data was altered)")

// Key seals and opens messages. It is safe for concurrent use.
type Key struct {
	raw  [KeySize]byte
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

// NewKey returns the Key of raw, which must be KeySize random bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("seal: a key has %d bytes, not %d", KeySize, len(raw))
	}
	a, err := chacha20poly1305.NewX(raw)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	k := &Key{aead: a}
	copy(k.raw[:], raw)
	return k, nil
}

// NewRandomKey returns a new key from crypto/rand.
func NewRandomKey() *Key {
	k, err := NewKey(RandomBytes(KeySize))
	if err != nil {
		panic(err) // the size is right
	}
	return k
}

// RandomBytes returns n bytes from crypto/rand.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics on a broken source)
	return b
}

// Bytes returns a copy of the key's raw bytes.
func (k *Key) Bytes() []byte { return append([]byte(nil), k.raw[:]...) }

// Equal reports whether k and o are the same key, in constant time.
func (k *Key) Equal(o *Key) bool {
	return k != nil && o != nil && subtle.ConstantTimeCompare(k.raw[:], o.raw[:]) == 1
}

// Seal appends to dst a random nonce and plain sealed with ad, and returns
// the extended slice.
func (k *Key) Seal(dst, plain, ad []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, chacha20poly1305.NonceSizeX)...)
	nonce := dst[start:]
	rand.Read(nonce)
	return k.aead.Seal(dst, nonce, plain, ad)
}

// Open appends to dst the plaintext of sealed (made by Seal with the same
// key and ad) and returns the extended slice, or ErrOpen.
func (k *Key) Open(dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("seal: %d bytes is shorter than a sealed message: %w", len(sealed), ErrOpen)
	}
	n := chacha20poly1305.NonceSizeX
	out, err := k.aead.Open(dst, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", ErrOpen)
	}
	return out, nil
}
