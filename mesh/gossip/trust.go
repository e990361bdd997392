package gossip

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Identity is what a node signs its entries with: the private key of its
// node certificate and that certificate's chain (DER, leaf first). Only
// ECDSA and Ed25519 keys are accepted (an RSA signature would not fit in a
// gossip packet beside the entry; see MaxSignatureSize).
type Identity struct {
	Signer crypto.Signer
	Chain  [][]byte
}

// IdentityFromTLS takes the identity from a TLS certificate, such as
// pki.NodeIdentity.Certificate().
func IdentityFromTLS(c *tls.Certificate) (Identity, error) {
	if c == nil || len(c.Certificate) == 0 {
		return Identity{}, errors.New("gossip: TLS certificate has no chain")
	}
	s, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return Identity{}, fmt.Errorf("gossip: TLS certificate's private key (%T) cannot sign", c.PrivateKey)
	}
	return Identity{Signer: s, Chain: c.Certificate}, nil
}

// Verifier decides which certificates are trusted. The caller implements it
// to follow its CA (and root rotation); NewCertPoolVerifier is the default.
type Verifier interface {
	// VerifyChain checks a node certificate chain (leaf first) and returns
	// the node ID the leaf certifies. It is called for every entry that
	// would change the local state, so it should cache.
	VerifyChain(chain []*x509.Certificate) (nodeID string, err error)
}

// verifierCacheTTL bounds how long a verified chain is trusted without
// verifying it again (expiry is still checked on every use).
const verifierCacheTTL = time.Minute

// CertPoolVerifier verifies chains against a pool of root CAs and reads the
// node ID from the leaf's CommonName, as Apiary's node certificates carry it
// (pki: CN = node ID, OU = role, O = cluster ID).
type CertPoolVerifier struct {
	mu    sync.Mutex
	roots *x509.CertPool
	cache map[[32]byte]verified
	now   func() time.Time
}

type verified struct {
	nodeID   string
	notAfter time.Time // the leaf's
	until    time.Time // cache expiry
}

// NewCertPoolVerifier trusts chains that lead to one of roots.
func NewCertPoolVerifier(roots *x509.CertPool) *CertPoolVerifier {
	return &CertPoolVerifier{roots: roots, cache: map[[32]byte]verified{}, now: time.Now}
}

// SetRoots replaces the trusted roots (root CA rotation); chains verified
// under the old roots are verified again on their next use.
func (v *CertPoolVerifier) SetRoots(roots *x509.CertPool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.roots = roots
	clear(v.cache)
}

// VerifyChain implements Verifier.
func (v *CertPoolVerifier) VerifyChain(chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("empty certificate chain")
	}
	leaf := chain[0]
	fp := sha256.Sum256(leaf.Raw)
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if c, ok := v.cache[fp]; ok && now.Before(c.until) && now.Before(c.notAfter) {
		return c.nodeID, nil
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return "", err
	}
	id := leaf.Subject.CommonName
	if id == "" {
		return "", errors.New("certificate has no node ID (CommonName)")
	}
	if len(v.cache) >= MaxNodes*MaxCertsPerNode {
		clear(v.cache)
	}
	v.cache[fp] = verified{nodeID: id, notAfter: leaf.NotAfter, until: now.Add(verifierCacheTTL)}
	return id, nil
}

// signer is the node's current identity, parsed.
type signer struct {
	key   crypto.Signer
	chain []*x509.Certificate
	der   [][]byte
	fp    [32]byte
}

func newSigner(id Identity) (*signer, error) {
	if id.Signer == nil {
		return nil, errors.New("gossip: Identity.Signer is nil")
	}
	if len(id.Chain) == 0 || len(id.Chain) > MaxChainLen {
		return nil, fmt.Errorf("gossip: Identity.Chain has %d certificates, want 1..%d", len(id.Chain), MaxChainLen)
	}
	s := &signer{key: id.Signer}
	for i, d := range id.Chain {
		if len(d) > MaxCertSize {
			return nil, fmt.Errorf("gossip: Identity.Chain[%d] is %d bytes, more than the %d allowed", i, len(d), MaxCertSize)
		}
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("gossip: Identity.Chain[%d]: %w", i, err)
		}
		s.chain = append(s.chain, c)
		s.der = append(s.der, d)
	}
	switch id.Signer.Public().(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("gossip: Identity.Signer has a %T key; only ECDSA and Ed25519 are supported", id.Signer.Public())
	}
	if !publicKeysEqual(id.Signer.Public(), s.chain[0].PublicKey) {
		return nil, errors.New("gossip: Identity.Signer does not hold the key of Identity.Chain[0]")
	}
	s.fp = sha256.Sum256(id.Chain[0])
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

func (s *signer) sign(msg []byte) ([]byte, error) {
	if _, ok := s.key.Public().(ed25519.PublicKey); ok {
		return s.key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	d := sha256.Sum256(msg)
	return s.key.Sign(rand.Reader, d[:], crypto.SHA256)
}

// checkSignature verifies sig over msg with leaf's key.
func checkSignature(leaf *x509.Certificate, msg, sig []byte) error {
	alg := x509.ECDSAWithSHA256
	if leaf.PublicKeyAlgorithm == x509.Ed25519 {
		alg = x509.PureEd25519
	} else if leaf.PublicKeyAlgorithm != x509.ECDSA {
		return fmt.Errorf("unsupported key algorithm %v", leaf.PublicKeyAlgorithm)
	}
	return leaf.CheckSignature(alg, msg, sig)
}

func parseChain(der [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(der))
	for _, d := range der {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
