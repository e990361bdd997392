package gossip

import (
	"crypto/sha256"
	"sync"
)

// verifiedCache remembers the entries this member has checked, so that a
// copy it checked before costs a hash rather than a signature check and
// the Admit hook. Copies come back: gossip delivers each entry several
// times, concurrently, before the first is applied; and the entries of a
// node declared dead are dropped and fetched again when it is back, all of
// them at once. A node starved of CPU is the one most often declared dead,
// and checking its thousands of entries again (an ECDSA verification and
// an assignment proof each, about 0.1 ms) starved the others in turn.
//
// The key is a hash of everything signed (the entry's fields and its
// owner's certificate digest) and the signature: a copy with any byte
// changed misses. The certificate chain is still checked on every copy
// (Config.Verifier), so a revoked or rotated root refuses cached entries
// too. Bound: maxVerified keys (about 3 MB); when full, one key is dropped
// per key added.
type verifiedCache struct {
	mu   sync.Mutex
	seen map[[sha256.Size]byte]verifiedAs
}

// verifiedAs says what a cached entry passed.
type verifiedAs uint8

const (
	signatureChecked verifiedAs = 1 << iota
	admitted
)

// maxVerified bounds the cache: every entry a member may hold, twice.
const maxVerified = 2 * MaxEntries

func verifiedKey(signed, sig []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(signed)
	h.Write(sig)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (c *verifiedCache) get(k [sha256.Size]byte) verifiedAs {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[k]
}

func (c *verifiedCache) add(k [sha256.Size]byte, as verifiedAs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[[sha256.Size]byte]verifiedAs{}
	}
	if _, ok := c.seen[k]; !ok && len(c.seen) >= maxVerified {
		for old := range c.seen { // an arbitrary one
			delete(c.seen, old)
			break
		}
	}
	c.seen[k] |= as
}
