package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
	"github.com/cloudflare/cfssl/initca"
)

// RootCAExpiry is the lifetime of a root CA created here (Swarm's: 20 years).
// Roots are replaced by rotation, not by expiry.
const RootCAExpiry = 20 * 365 * 24 * time.Hour

// RootCA is a cluster root: its certificate, and its key where this process
// holds it (managers with a local CA; never workers, never in external mode).
type RootCA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer // nil when the key is not held
	KeyPEM  []byte
	// Digest identifies the root in join tokens: base36 SHA-256 of the DER.
	Digest string
}

// NewRootCA creates a self-signed ECDSA P-256 root with cfssl's initca. The
// CN carries a random suffix so that an old and a new root (during rotation)
// have different subjects: with equal subjects, x509 would treat the
// cross-signed certificate as self-signed and chain building would break.
func NewRootCA(clusterID string) (*RootCA, error) {
	req := &csr.CertificateRequest{
		CN:         "apiary-root-ca-" + randomBase36(8),
		Names:      []csr.Name{{O: clusterID, OU: "apiary-ca"}},
		KeyRequest: &csr.KeyRequest{A: "ecdsa", S: 256},
		CA:         &csr.CAConfig{Expiry: RootCAExpiry.String()},
	}
	certPEM, _, keyPEM, err := initca.New(req)
	if err != nil {
		return nil, fmt.Errorf("pki: create root CA with cfssl initca: %w", err)
	}
	return ParseRootCA(certPEM, keyPEM)
}

// ParseRootCA parses a root certificate and, when keyPEM is not empty, its
// key, and checks they belong together.
func ParseRootCA(certPEM, keyPEM []byte) (*RootCA, error) {
	cert, err := helpers.ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: parse root CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: root certificate %q is not a CA: %w", cert.Subject.CommonName, ErrBadCertificate)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("pki: root certificate %q is not self-signed: %w", cert.Subject.CommonName, err)
	}
	r := &RootCA{Cert: cert, CertPEM: bytes.Clone(certPEM), Digest: Digest(cert)}
	if len(keyPEM) > 0 {
		key, err := helpers.ParsePrivateKeyPEM(keyPEM)
		if err != nil {
			return nil, fmt.Errorf("pki: parse root CA key: %w", err)
		}
		if !publicKeysEqual(key.Public(), cert.PublicKey) {
			return nil, fmt.Errorf("pki: root CA key does not match certificate %q: %w", cert.Subject.CommonName, ErrBadCertificate)
		}
		r.Key, r.KeyPEM = key, bytes.Clone(keyPEM)
	}
	return r, nil
}

// Digest is the form of a certificate's fingerprint used in join tokens:
// SHA-256 of the DER, base36, zero-padded to 50 characters (as Docker's
// SWMTKN does), so a token stays a single copy-pasteable word.
func Digest(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return fmt.Sprintf("%0*s", digestLen, new(big.Int).SetBytes(sum[:]).Text(36))
}

const digestLen = 50

// CrossSign issues, with this root's key, a CA certificate for other's
// subject and public key with other's validity: the "cross-signed
// intermediate" of a root rotation. A leaf signed by other's key chains
// to this root through it, and to other directly. It is built with x509 rather
// than through a cfssl CSR because it must copy other exactly (subject, key
// ID, constraints, validity), which a signing profile would rewrite.
func (r *RootCA) CrossSign(other *x509.Certificate) (*x509.Certificate, []byte, error) {
	if r.Key == nil {
		return nil, nil, fmt.Errorf("pki: cross-sign %q: %w", other.Subject.CommonName, ErrNoSigningKey)
	}
	tmpl := *other
	// Leave it to x509 to set the authority key ID from our subject key ID.
	tmpl.AuthorityKeyId = nil
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, r.Cert, other.PublicKey, r.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: cross-sign %q with %q: %w", other.Subject.CommonName, r.Cert.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: parse cross-signed certificate: %w", err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// newKeyAndCSR makes a fresh node key and a CSR for it. The CSR carries no
// names: the CA decides every name in a node certificate.
func newKeyAndCSR() (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate node key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "apiary-node"},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create CSR: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: encode node key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// parseCSR decodes and checks a node's CSR: a valid self-signature and a key
// TLS 1.3 can use at a sane strength.
func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fmt.Errorf("%w: not a PEM certificate request", ErrBadCSR)
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	switch k := req.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: ECDSA curve %s not accepted (P-256 or P-384)", ErrBadCSR, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: RSA key of %d bits is too small", ErrBadCSR, k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: unsupported key type %T", ErrBadCSR, req.PublicKey)
	}
	return req, nil
}

// parseCertsPEM decodes every CERTIFICATE block.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pki: no PEM certificate found: %w", ErrBadCertificate)
	}
	return out, nil
}

func encodeCertsPEM(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// randomBase36 returns n random base36 characters.
func randomBase36(n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("pki: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%36] // bias is irrelevant for a name suffix
	}
	return string(b)
}

// randomSecret returns 128 random bits in base36 padded to 25 characters,
// the form of node IDs and join token secrets.
func randomSecret() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("pki: crypto/rand failed: " + err.Error())
	}
	return fmt.Sprintf("%0*s", secretLen, new(big.Int).SetBytes(b[:]).Text(36))
}

const secretLen = 25

// NewNodeID returns a fresh random node ID (128 bits, base36).
func NewNodeID() string { return randomSecret() }
