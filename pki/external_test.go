package pki

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/pki/pkitest"
)

// externalSigner starts a cfssl signer (pkitest) whose root the cluster
// never holds the key of.
func externalSigner(t *testing.T, authKey string) (*RootCA, string, *atomic.Int64) {
	t.Helper()
	ext := pkitest.StartExternalCA(t, authKey)
	root, err := ParseRootCA(ext.RootCertPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	return root, ext.URL, &ext.Calls
}

func TestExternalCASigning(t *testing.T) {
	for _, c := range []struct {
		name    string
		authKey string
	}{{"sign", ""}, {"authsign", hex.EncodeToString([]byte("0123456789abcdef"))}} {
		t.Run(c.name, func(t *testing.T) {
			root, url, calls := externalSigner(t, c.authKey)
			rec, err := NewExternalCARecord(testClusterID, root.CertPEM, ExternalCA{URL: url, AuthKey: c.authKey})
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.RootKey) != 0 {
				t.Fatal("external CA record holds a root key")
			}
			st := NewMemState(rec)
			ca := NewCAServer(st, CAServerOptions{Logger: testutil.DiscardLogger()})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			mgr := newTestNode(t, ca, RoleManager)
			srv := startServer(t, mgr, ca, st)
			worker, _, _ := ca.JoinTokens(ctx)
			if tok, _ := ParseJoinToken(worker); tok.RootDigest != root.Digest {
				t.Fatalf("token pins %s, want the external root %s", tok.RootDigest, root.Digest)
			}
			w, err := Join(ctx, srv.addr, worker, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if got := calls.Load(); got != 2 {
				t.Fatalf("external signer saw %d requests, want 2 (manager, worker)", got)
			}
			leaf := w.Leaf()
			if err := leaf.CheckSignatureFrom(root.Cert); err != nil {
				t.Fatalf("worker certificate not signed by the external root: %v", err)
			}
			id := w.Identity()
			if id.Role != RoleWorker || id.ClusterID != testClusterID || leaf.Subject.CommonName != id.NodeID {
				t.Fatalf("external certificate subject: %v", leaf.Subject)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: poolOf(root.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatal(err)
			}
			if r, err := callEcho(ctx, dial(t, w, srv.addr), methodAny); err != nil || r.NodeID != id.NodeID {
				t.Fatalf("mutual TLS with externally signed certificates: %+v %v", r, err)
			}
			// Renewal goes through the external CA too.
			if err := w.Renew(ctx, NewCAClient(dial(t, w, srv.addr))); err != nil || calls.Load() != 3 {
				t.Fatalf("renew via external CA: %v (%d calls)", err, calls.Load())
			}
			// The root of an external CA is rotated there, not here.
			if _, err := ca.StartRootRotation(ctx); err == nil {
				t.Fatal("rotation of an external root accepted")
			}
		})
	}
}

func TestExternalCARefusalIsClear(t *testing.T) {
	root, url, _ := externalSigner(t, hex.EncodeToString([]byte("right key")))
	rec, err := NewExternalCARecord(testClusterID, root.CertPEM, ExternalCA{URL: url, AuthKey: hex.EncodeToString([]byte("wrong key"))})
	if err != nil {
		t.Fatal(err)
	}
	ca := NewCAServer(NewMemState(rec), CAServerOptions{Logger: testutil.DiscardLogger()})
	_, err = ca.NewNodeIdentity(context.Background(), NewNodeID(), RoleManager, "")
	if err == nil || !strings.Contains(err.Error(), "external CA") || !strings.Contains(err.Error(), "invalid token") {
		t.Fatalf("want a clear external CA refusal, got %v", err)
	}
	// A signer that is down fails fast with the caller's context.
	rec.External.URL = "http://127.0.0.1:1"
	ca = NewCAServer(NewMemState(rec), CAServerOptions{Logger: testutil.DiscardLogger()})
	if _, err := ca.NewNodeIdentity(context.Background(), NewNodeID(), RoleManager, ""); err == nil || errors.Is(err, ErrBadCertificate) {
		t.Fatalf("unreachable external CA: %v", err)
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
