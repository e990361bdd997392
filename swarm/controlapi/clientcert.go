package controlapi

import (
	"context"

	"github.com/apiary-io/apiary/swarm/api/control"
)

// ClientCertIssuer is the part of the cluster's CA that signs client
// certificates (the swarm package implements it over pki.CAServer). A CA
// given in Options that lacks it answers IssueClientCertificate with
// ErrNoCA.
type ClientCertIssuer interface {
	IssueClientCertificate(ctx context.Context, csr []byte, hosts []string) (*control.ClientCertificate, error)
}

// IssueClientCertificate signs a client-role certificate for the key of
// csr, with hosts as extra SANs (see control.API). The request's size is
// checked here, before anything parses it; the CA checks the request's
// signature and key, and each host.
func (s *Server) IssueClientCertificate(ctx context.Context, csr []byte, hosts []string) (*control.ClientCertificate, error) {
	issuer, ok := s.ca.(ClientCertIssuer)
	if !ok {
		return nil, ErrNoCA
	}
	if len(csr) == 0 {
		return nil, invalid("csr is empty")
	}
	if len(csr) > control.MaxCSRSize {
		return nil, invalid("csr is %d bytes, at most %d", len(csr), control.MaxCSRSize)
	}
	return issuer.IssueClientCertificate(ctx, csr, hosts)
}
