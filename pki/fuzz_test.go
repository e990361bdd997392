package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/apiary-io/apiary/internal/testutil"
)

// Fuzz targets of what the pki reads from outside: join tokens, the CSRs
// a joining or renewing node sends the CA, root certificates (--ca-cert,
// the CA record) and the material a joiner receives from the CA.

// fuzzCA is one CA record for every fuzz target of the package: making a
// root costs a key generation, which must not run per input.
var fuzzCA = sync.OnceValues(func() (CARecord, error) { return NewCARecord(testClusterID, 0) })

func fuzzRecord(f *testing.F) CARecord {
	rec, err := fuzzCA()
	if err != nil {
		f.Fatal(err)
	}
	return rec
}

// FuzzParseJoinToken: a token that parses prints back to itself, and the
// CA's check of any string returns a role or an error, never panics; the
// cluster's own tokens grant their roles.
func FuzzParseJoinToken(f *testing.F) {
	rec := fuzzRecord(f)
	worker, err := rec.JoinToken(RoleWorker)
	if err != nil {
		f.Fatal(err)
	}
	manager, err := rec.JoinToken(RoleManager)
	if err != nil {
		f.Fatal(err)
	}
	root, err := rec.Root()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		worker, manager, " " + worker + "\n", strings.ToUpper(worker),
		"APTKN-2-" + root.Digest + "-" + rec.WorkerSecret,
		"APTKN-1-" + root.Digest + "-" + rec.WorkerSecret + "-x",
		"APTKN-1-" + strings.Repeat("0", digestLen) + "-" + rec.WorkerSecret,
		"APTKN-1--", "SWMTKN-1-abc-def", "", "-", "APTKN-1-" + root.Digest + "-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		role, verr := rec.ValidateJoinToken(s)
		if verr == nil && role != RoleWorker && role != RoleManager {
			t.Fatalf("ValidateJoinToken(%q) granted role %q", s, role)
		}
		tok, err := ParseJoinToken(s)
		if err != nil {
			if verr == nil {
				t.Fatalf("ValidateJoinToken(%q) accepted a token that does not parse: %v", s, err)
			}
			if !errors.Is(err, ErrTokenMalformed) && !errors.Is(err, ErrTokenVersion) {
				t.Fatalf("ParseJoinToken(%q): %v wraps neither sentinel", s, err)
			}
			return
		}
		if got := tok.String(); got != strings.TrimSpace(s) {
			t.Fatalf("ParseJoinToken(%q) prints as %q", s, got)
		}
		if again, err := ParseJoinToken(tok.String()); err != nil || again != tok {
			t.Fatalf("token %q parses to %+v, %v", tok.String(), again, err)
		}
		switch {
		case tok.Secret == rec.ManagerSecret && tok.RootDigest == root.Digest:
			if verr != nil || role != RoleManager {
				t.Fatalf("the manager token %q gave %q, %v", s, role, verr)
			}
		case tok.Secret == rec.WorkerSecret && tok.RootDigest == root.Digest:
			if verr != nil || role != RoleWorker {
				t.Fatalf("the worker token %q gave %q, %v", s, role, verr)
			}
		default:
			if verr == nil {
				t.Fatalf("ValidateJoinToken(%q) granted %q to a token that is not the cluster's", s, role)
			}
		}
	})
}

// FuzzIssueCSR sends the CA a certificate request as a joining node (with
// the worker or the manager token) or a renewing one would. A request the
// CSR checks refuse fails with ErrBadCSR and records nothing; an accepted
// one gives a certificate for exactly the requested key, with the identity
// the CA chose, chaining to the roots it returned, recorded once.
func FuzzIssueCSR(f *testing.F) {
	rec := fuzzRecord(f)
	for _, csr := range seedCSRs(f) {
		for mode := byte(0); mode < 3; mode++ {
			f.Add(mode, csr)
		}
	}
	f.Fuzz(func(t *testing.T, mode byte, csrPEM []byte) {
		st := NewMemState(rec)
		ca := NewCAServer(st, CAServerOptions{Logger: testutil.DiscardLogger()})
		ctx := context.Background()
		req := &IssueRequest{CSR: csrPEM}
		var wantRole Role
		switch mode % 3 {
		case 0:
			req.Token, _ = rec.JoinToken(RoleWorker)
			wantRole = RoleWorker
		case 1:
			req.Token, _ = rec.JoinToken(RoleManager)
			wantRole = RoleManager
		default:
			ctx = contextWithIdentity(ctx, Identity{NodeID: "renewing-node", Role: RoleWorker, ClusterID: testClusterID})
			wantRole = RoleWorker
		}
		csr, perr := parseCSR(csrPEM)
		resp, err := ca.IssueNodeCertificate(ctx, req)
		nodes, nerr := st.Nodes(ctx)
		if nerr != nil {
			t.Fatal(nerr)
		}
		if err != nil {
			if perr != nil && !errors.Is(err, ErrBadCSR) {
				t.Fatalf("a CSR refused by parseCSR (%v) failed otherwise: %v", perr, err)
			}
			if perr == nil {
				t.Fatalf("a CSR that passed parseCSR was not signed: %v", err)
			}
			if len(nodes) != 0 {
				t.Fatalf("a refused request recorded %+v", nodes)
			}
			return
		}
		if perr != nil {
			t.Fatalf("the CA signed a CSR parseCSR refuses: %v", perr)
		}
		chain, err := parseCertsPEM(resp.CertificateChain)
		if err != nil {
			t.Fatalf("issued chain: %v", err)
		}
		roots, err := parseCertsPEM(resp.RootBundle)
		if err != nil {
			t.Fatalf("issued roots: %v", err)
		}
		leaf := chain[0]
		if !publicKeysEqual(leaf.PublicKey, csr.PublicKey) {
			t.Fatal("the certificate is not for the requested key")
		}
		id, err := identityFromCert(leaf)
		if err != nil || id.NodeID != resp.NodeID || id.Role != wantRole || resp.Role != wantRole || id.ClusterID != testClusterID {
			t.Fatalf("issued identity %+v (%v), response node %s role %s, want role %s", id, err, resp.NodeID, resp.Role, wantRole)
		}
		if mode%3 == 2 && id.NodeID != "renewing-node" {
			t.Fatalf("a renewal changed the node ID to %s", id.NodeID)
		}
		pool := x509.NewCertPool()
		for _, r := range roots {
			pool.AddCert(r)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("the certificate does not chain to the returned roots: %v", err)
		}
		if len(nodes) != 1 || nodes[0].NodeID != id.NodeID || nodes[0].Serial != id.Serial {
			t.Fatalf("recorded %+v for %+v", nodes, id)
		}
	})
}

// seedCSRs are requests for the keys the CA accepts and refuses, and
// things that are not requests at all.
func seedCSRs(f *testing.F) [][]byte {
	f.Helper()
	csr := func(key crypto.Signer) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject:  pkix.Name{CommonName: "apiary-node", OrganizationalUnit: []string{"manager"}},
			DNSNames: []string{"manager", "evil.example"},
		}, key)
		if err != nil {
			f.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	var out [][]byte
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, csr(k))
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	out = append(out, csr(ed))
	for _, bits := range []int{1024, 2048} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, csr(k))
	}
	_, good, err := newKeyAndCSR()
	if err != nil {
		f.Fatal(err)
	}
	out = append(out, good)
	// A valid request with its signature damaged, and one relabelled.
	block, _ := pem.Decode(good)
	bad := append([]byte(nil), block.Bytes...)
	bad[len(bad)-3] ^= 0xff
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad}))
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: block.Bytes}))
	rec, err := fuzzCA()
	if err != nil {
		f.Fatal(err)
	}
	out = append(out, rec.RootCert, []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), nil)
	return out
}

// FuzzParseRootCA reads a root certificate and key as --ca-cert and the CA
// record provide them. An accepted root is a self-signed CA whose digest
// fits a join token, and an accepted key is the certificate's.
func FuzzParseRootCA(f *testing.F) {
	rec := fuzzRecord(f)
	other, err := NewRootCA("other")
	if err != nil {
		f.Fatal(err)
	}
	_, leaf, err := newKeyAndCSR()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rec.RootCert, rec.RootKey)
	f.Add(rec.RootCert, []byte(nil))
	f.Add(rec.RootCert, other.KeyPEM)
	f.Add(other.CertPEM, other.KeyPEM)
	f.Add(append(append([]byte(nil), rec.RootCert...), other.CertPEM...), rec.RootKey)
	f.Add(leaf, []byte(nil))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), []byte("junk"))
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		r, err := ParseRootCA(certPEM, keyPEM)
		if err != nil {
			return
		}
		if !r.Cert.IsCA || r.Cert.CheckSignatureFrom(r.Cert) != nil {
			t.Fatal("accepted a root that is not a self-signed CA")
		}
		if (r.Key == nil) != (len(keyPEM) == 0) {
			t.Fatalf("key given: %v, key held: %v", len(keyPEM) > 0, r.Key != nil)
		}
		if r.Key != nil && !publicKeysEqual(r.Key.Public(), r.Cert.PublicKey) {
			t.Fatal("accepted a key that is not the certificate's")
		}
		tok := JoinToken{RootDigest: r.Digest, Secret: randomSecret()}
		if back, err := ParseJoinToken(tok.String()); err != nil || back != tok {
			t.Fatalf("digest %q does not fit a join token: %v", r.Digest, err)
		}
	})
}

// FuzzJoinResponse reads what a joining node receives from the CA, as Join
// does: the chain must verify to the root the token pins before the node
// builds its identity from it. An identity built is the leaf's, for the
// joiner's key.
func FuzzJoinResponse(f *testing.F) {
	rec := fuzzRecord(f)
	root, err := rec.Root()
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, csrPEM, err := newKeyAndCSR()
	if err != nil {
		f.Fatal(err)
	}
	token, _ := rec.JoinToken(RoleWorker)
	ca := NewCAServer(NewMemState(rec), CAServerOptions{Logger: testutil.DiscardLogger()})
	resp, err := ca.IssueNodeCertificate(context.Background(), &IssueRequest{CSR: csrPEM, Token: token})
	if err != nil {
		f.Fatal(err)
	}
	other, err := NewCARecord("other", 0)
	if err != nil {
		f.Fatal(err)
	}
	otherCA := NewCAServer(NewMemState(other), CAServerOptions{Logger: testutil.DiscardLogger()})
	otherToken, _ := other.JoinToken(RoleManager)
	foreign, err := otherCA.IssueNodeCertificate(context.Background(), &IssueRequest{CSR: csrPEM, Token: otherToken})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(resp.CertificateChain, resp.RootBundle)
	f.Add(foreign.CertificateChain, foreign.RootBundle)
	f.Add(foreign.CertificateChain, append(append([]byte(nil), foreign.RootBundle...), resp.RootBundle...))
	f.Add(resp.RootBundle, resp.RootBundle)
	f.Add(resp.CertificateChain, []byte(nil))
	f.Fuzz(func(t *testing.T, chainPEM, bundlePEM []byte) {
		chain, err := parseCertsPEM(chainPEM)
		if err != nil {
			return
		}
		roots, err := parseCertsPEM(bundlePEM)
		if err != nil {
			return
		}
		if err := verifyPinned(chain, roots, root.Digest, x509.ExtKeyUsageClientAuth); err != nil {
			if !errors.Is(err, ErrCAPinMismatch) {
				t.Fatalf("verifyPinned: %v is not ErrCAPinMismatch", err)
			}
			return
		}
		pinned := x509.NewCertPool()
		pinned.AddCert(root.Cert)
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pinned, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("verifyPinned accepted a chain that does not verify to the pinned root: %v", err)
		}
		n, err := NewNodeIdentityFromPEM(keyPEM, chainPEM, bundlePEM, "")
		if err != nil {
			return
		}
		id, err := identityFromCert(n.Leaf())
		if err != nil || id != n.Identity() {
			t.Fatalf("identity %+v, its leaf says %+v (%v)", n.Identity(), id, err)
		}
		if len(n.RootDigests()) == 0 || n.ServerTLSConfig() == nil || n.ClientTLSConfig(RoleManager) == nil {
			t.Fatal("an identity without roots or TLS configurations")
		}
	})
}
