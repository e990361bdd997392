package pki

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"testing"
	"time"
)

func TestIssueClientCertificate(t *testing.T) {
	_, ca := newTestCA(t, time.Hour)
	_, csr, err := newKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ca.IssueClientCertificate(context.Background(), csr, []string{"127.0.0.1", "node-1.example"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(resp.CertificateChain)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identityFromCert(leaf)
	if err != nil || id.Role != RoleClient || resp.Role != RoleClient {
		t.Fatalf("identity %+v, %v; want role %s", id, err, RoleClient)
	}
	if !slices.Contains(leaf.DNSNames, "node-1.example") || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	for _, bad := range [][]string{{"bad host!"}, make([]string, MaxCertificateHosts+1)} {
		if _, err := ca.IssueClientCertificate(context.Background(), csr, bad); err == nil {
			t.Errorf("hosts %q accepted", bad)
		}
	}
}
