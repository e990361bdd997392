package swarm

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

var _ controlapi.ClientCertIssuer = nodeCA{}

// IssueClientCertificate signs a client certificate with the node's CA
// (controlapi.ClientCertIssuer). Input the CA refuses (a bad request or
// host) is the caller's error, control.ErrInvalidArgument.
func (c nodeCA) IssueClientCertificate(ctx context.Context, csr []byte, hosts []string) (*control.ClientCertificate, error) {
	if err := pki.CheckCertificateHosts(hosts); err != nil {
		return nil, fmt.Errorf("%w: %v", control.ErrInvalidArgument, err)
	}
	resp, err := c.ca.IssueClientCertificate(ctx, csr, hosts)
	if errors.Is(err, pki.ErrBadCSR) {
		return nil, fmt.Errorf("%w: csr: %v", control.ErrInvalidArgument, err)
	}
	if err != nil {
		return nil, err
	}
	out := &control.ClientCertificate{ID: resp.NodeID, Certificate: resp.CertificateChain, CA: resp.RootBundle}
	if b, _ := pem.Decode(resp.CertificateChain); b != nil {
		if leaf, err := x509.ParseCertificate(b.Bytes); err == nil {
			out.NotAfter = leaf.NotAfter
		}
	}
	return out, nil
}
