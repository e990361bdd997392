package pki_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/apiary-io/apiary/pki"
)

// A cluster CA, its join tokens, and a node certificate it signs.
func Example() {
	// The CA record is what a cluster replicates: root key, token secrets,
	// certificate expiry.
	rec, err := pki.NewCARecord("cluster-1", 90*24*time.Hour)
	if err != nil {
		fmt.Println(err)
		return
	}
	root, err := rec.Root()
	if err != nil {
		fmt.Println(err)
		return
	}

	// A token pins the root (a joiner trusts only a manager under it) and
	// carries the role's secret.
	token, _ := rec.JoinToken(pki.RoleWorker)
	parsed, err := pki.ParseJoinToken(token)
	fmt.Println("parses:", err == nil, "pins the root:", parsed.RootDigest == root.Digest)
	role, err := rec.ValidateJoinToken(token)
	fmt.Println("grants:", role, err)
	_ = rec.RotateJoinToken(pki.RoleWorker)
	_, err = rec.ValidateJoinToken(token)
	fmt.Println("after rotation:", errors.Is(err, pki.ErrTokenInvalid))

	// The CA signs a node certificate: CN node ID, OU role, O cluster.
	ca := pki.NewCAServer(pki.NewMemState(rec), pki.CAServerOptions{Logger: slog.New(slog.DiscardHandler)})
	node, err := ca.NewNodeIdentity(context.Background(), "node-1", pki.RoleManager, "") // "": not saved to disk
	if err != nil {
		fmt.Println(err)
		return
	}
	leaf := node.Leaf()
	fmt.Println(leaf.Subject.CommonName, leaf.Subject.OrganizationalUnit, leaf.Subject.Organization)
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	fmt.Println("verifies under the root:", err == nil)
	// Output:
	// parses: true pins the root: true
	// grants: apiary-worker <nil>
	// after rotation: true
	// node-1 [apiary-manager] [cluster-1]
	// verifies under the root: true
}
