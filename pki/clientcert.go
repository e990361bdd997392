package pki

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"regexp"
	"time"
)

// MaxCertificateHosts bounds the extra SANs of a client certificate, and
// maxHostLength each one (a DNS name's limit).
const (
	MaxCertificateHosts = 16
	maxHostLength       = 253
)

var hostPattern = regexp.MustCompile(`^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// CheckCertificateHosts checks the extra SANs IssueClientCertificate is
// asked for: at most MaxCertificateHosts, each an IP address or a DNS name
// (ErrBadCertificate says which is not).
func CheckCertificateHosts(hosts []string) error {
	if len(hosts) > MaxCertificateHosts {
		return fmt.Errorf("%w: %d hosts, at most %d", ErrBadCertificate, len(hosts), MaxCertificateHosts)
	}
	for i, h := range hosts {
		if len(h) > maxHostLength || net.ParseIP(h) == nil && !hostPattern.MatchString(h) {
			return fmt.Errorf("%w: hosts[%d] %q is neither an IP address nor a DNS name", ErrBadCertificate, i, h)
		}
	}
	return nil
}

// IssueClientCertificate signs a certificate of role RoleClient for the
// key of csrPEM, under a fresh ID, with hosts (DNS names or IP
// addresses) as extra SANs: a user's client bundle (no hosts), or the
// server certificate of a node's Docker Engine API listener (its
// addresses and hostname). It is called in the manager's process on
// behalf of a user of the control API; no node gets one through the
// CA service, and the certificate is not recorded as a node's.
func (s *CAServer) IssueClientCertificate(ctx context.Context, csrPEM []byte, hosts []string) (*IssueResponse, error) {
	if err := CheckCertificateHosts(hosts); err != nil {
		return nil, err
	}
	rec, err := s.state.CA(ctx)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA state: %w", err)
	}
	req, err := parseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: issue client certificate: %w", err)
	}
	set, err := s.signingSet(&rec)
	if err != nil {
		return nil, err
	}
	subj := nodeSubject{NodeID: NewNodeID(), Role: RoleClient, ClusterID: rec.ClusterID, Extra: hosts}
	now := s.now()
	expiry := rec.Expiry()
	leafPEM, err := set.signer.sign(ctx, csrPEM, subj, now.Add(-min(5*time.Minute, expiry/10)), now.Add(expiry))
	if err != nil {
		return nil, err
	}
	leaf, err := checkIssued(leafPEM, req, subj, set, now)
	if err != nil {
		return nil, err
	}
	chain := append(encodeCertsPEM([]*x509.Certificate{leaf}), encodeCertsPEM(set.intermediates)...)
	s.logger.Info("pki: issued a client certificate", "id", subj.NodeID, "hosts", hosts)
	return &IssueResponse{NodeID: subj.NodeID, Role: RoleClient, CertificateChain: chain, RootBundle: set.rootsPEM}, nil
}
