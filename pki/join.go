package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Join obtains a node identity from the CA of the manager at addr, using a
// join token, and persists it in dataDir (unless empty).
//
// The joiner has no certificate and trusts nothing yet except the token. It
// connects without a client certificate and, during the TLS handshake,
// looks in the manager's chain for the root whose digest the token pins; a
// manager that cannot show that root is refused before the handshake ends,
// so the token (a secret) is never sent to it. Then it sends a CSR with the
// token and receives a certificate for the role the token grants, chained
// to the pinned root.
func Join(ctx context.Context, addr, token, dataDir string) (*NodeIdentity, error) {
	return JoinWith(ctx, addr, token, dataDir, JoinOptions{})
}

// JoinOptions are what a joining node asks of the cluster besides its
// certificate.
type JoinOptions struct {
	// Availability is the node's availability from the start (active,
	// pause or drain; "" is active), as docker swarm join --availability:
	// a drained node never runs a task, not even between joining and a
	// `node update`.
	Availability string
}

// JoinWith is Join with options.
func JoinWith(ctx context.Context, addr, token, dataDir string, opts JoinOptions) (*NodeIdentity, error) {
	tok, err := ParseJoinToken(token)
	if err != nil {
		return nil, fmt.Errorf("pki: join %s: %w", addr, err)
	}
	pin := newPinVerifier(tok.RootDigest)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(pin.config())))
	if err != nil {
		return nil, fmt.Errorf("pki: join %s: %w", addr, err)
	}
	defer conn.Close()
	keyPEM, csrPEM, err := newKeyAndCSR()
	if err != nil {
		return nil, err
	}
	resp, err := NewCAClient(conn).IssueNodeCertificate(ctx, &IssueRequest{CSR: csrPEM, Token: token, Availability: opts.Availability})
	if err != nil {
		// The gRPC error only carries the handshake failure as text; return
		// the pinning error itself so callers can test for it.
		if perr := pin.failure(); perr != nil {
			return nil, fmt.Errorf("pki: join %s: %w", addr, perr)
		}
		return nil, fmt.Errorf("pki: join %s: %w", addr, err)
	}
	// The CA's answer must chain to the pinned root, not merely to some root
	// in the bundle it sent along.
	chain, err := parseCertsPEM(resp.CertificateChain)
	if err != nil {
		return nil, fmt.Errorf("pki: join %s: certificate from CA: %w", addr, err)
	}
	roots, err := parseCertsPEM(resp.RootBundle)
	if err != nil {
		return nil, fmt.Errorf("pki: join %s: roots from CA: %w", addr, err)
	}
	if err := verifyPinned(chain, roots, tok.RootDigest, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, fmt.Errorf("pki: join %s: issued certificate: %w", addr, err)
	}
	n, err := NewNodeIdentityFromPEM(keyPEM, resp.CertificateChain, resp.RootBundle, dataDir)
	if err != nil {
		return nil, fmt.Errorf("pki: join %s: %w", addr, err)
	}
	return n, nil
}

// JoinClientTLSConfig is the TLS config of a joiner: no client certificate,
// and the server accepted only if its chain contains a CA certificate with
// the pinned digest to which its leaf (a manager's) verifies.
func JoinClientTLSConfig(rootDigest string) *tls.Config {
	return newPinVerifier(rootDigest).config()
}

type pinVerifier struct {
	digest string
	mu     sync.Mutex
	err    error
}

func newPinVerifier(digest string) *pinVerifier { return &pinVerifier{digest: digest} }

func (p *pinVerifier) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Standard verification cannot work: the joiner has no roots. The
		// pin in VerifyConnection replaces it, and runs before the client's
		// Finished message, so nothing is sent to a refused server.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := verifyPinned(cs.PeerCertificates, cs.PeerCertificates, p.digest, x509.ExtKeyUsageServerAuth)
			if err == nil {
				var id Identity
				if id, err = identityFromCert(cs.PeerCertificates[0]); err == nil && id.Role != RoleManager {
					err = fmt.Errorf("%w: server %s is a %s, only managers issue certificates", ErrCAPinMismatch, id.NodeID, id.Role)
				}
			}
			if err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
			}
			return err
		},
	}
}

func (p *pinVerifier) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// verifyPinned checks that chain[0] verifies, for usage, to the CA
// certificate among candidates whose digest is digest (a self-signed root).
func verifyPinned(chain, candidates []*x509.Certificate, digest string, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate presented", ErrCAPinMismatch)
	}
	var pinned *x509.Certificate
	var seen []string
	for _, c := range candidates {
		d := Digest(c)
		if d == digest && c.IsCA && c.CheckSignatureFrom(c) == nil {
			pinned = c
			break
		}
		if c.IsCA {
			seen = append(seen, d[:12]+"…")
		}
	}
	if pinned == nil {
		return fmt.Errorf("%w: token pins CA %s…, peer presented CA(s) %v", ErrCAPinMismatch, digest[:12], seen)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pinned)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("%w: certificate %q does not chain to the pinned CA: %v", ErrCAPinMismatch, chain[0].Subject.CommonName, err)
	}
	return nil
}
