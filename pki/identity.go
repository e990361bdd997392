package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/apiary-io/apiary/swarm/api"
)

// Role is the role a node acts in. It is the OU of the node's certificate,
// set by the CA; nothing a node sends can change it.
type Role string

const (
	// RoleManager: raft member, runs the control plane and may sign.
	RoleManager Role = "apiary-manager"
	// RoleWorker: runs tasks, talks to managers only through the
	// worker-facing methods.
	RoleWorker Role = "apiary-worker"
	// RoleAnonymous never appears in a certificate. In a Policy it allows
	// callers that present no certificate at all (joining nodes, which
	// authenticate with a join token inside the request instead).
	RoleAnonymous Role = "anonymous"
	// RoleClient: a user's certificate (apiaryctl swarm ca
	// --client-bundle), and the certificate a node's Docker Engine API
	// listener presents. It names no node: no node policy lists it, so it
	// reaches nothing of the cluster's gRPC services; the Docker API's
	// TLS listener accepts it (and refuses workers').
	RoleClient Role = "apiary-client"
)

// Valid reports whether r is a role a certificate can carry.
func (r Role) Valid() bool { return r == RoleManager || r == RoleWorker || r == RoleClient }

// APIRole maps the certificate role to the object model's role.
func (r Role) APIRole() api.NodeRole {
	if r == RoleManager {
		return api.NodeRoleManager
	}
	return api.NodeRoleWorker
}

// RoleFromAPI maps the object model's role to the certificate role.
func RoleFromAPI(r api.NodeRole) (Role, error) {
	switch r {
	case api.NodeRoleManager:
		return RoleManager, nil
	case api.NodeRoleWorker:
		return RoleWorker, nil
	}
	return "", fmt.Errorf("pki: unknown node role %q", r)
}

// Identity is what a verified node certificate says about its holder.
type Identity struct {
	NodeID    string
	Role      Role
	ClusterID string
	// IssuerKeyID is the hex subject key ID of the CA key that signed the
	// certificate (its authority key ID). Root rotation uses it to tell
	// which nodes already hold a certificate from the new root.
	IssuerKeyID string
	Serial      string
	NotBefore   time.Time
	NotAfter    time.Time
}

// identityFromCert reads an Identity out of a node certificate. It does not
// verify the certificate: callers pass only certificates that are verified
// (or that they are about to verify).
func identityFromCert(c *x509.Certificate) (Identity, error) {
	s := c.Subject
	if s.CommonName == "" {
		return Identity{}, fmt.Errorf("%w: certificate has no node ID (CN)", ErrBadCertificate)
	}
	if len(s.OrganizationalUnit) != 1 || !Role(s.OrganizationalUnit[0]).Valid() {
		return Identity{}, fmt.Errorf("%w: certificate of %q has no valid role (OU %q)", ErrBadCertificate, s.CommonName, s.OrganizationalUnit)
	}
	if len(s.Organization) != 1 || s.Organization[0] == "" {
		return Identity{}, fmt.Errorf("%w: certificate of %q has no cluster ID (O %q)", ErrBadCertificate, s.CommonName, s.Organization)
	}
	return Identity{
		NodeID:      s.CommonName,
		Role:        Role(s.OrganizationalUnit[0]),
		ClusterID:   s.Organization[0],
		IssuerKeyID: hex.EncodeToString(c.AuthorityKeyId),
		Serial:      c.SerialNumber.Text(16),
		NotBefore:   c.NotBefore,
		NotAfter:    c.NotAfter,
	}, nil
}

// PeerIdentity extracts the identity of the peer of a TLS connection whose
// certificate the TLS stack verified (the server side of a config from
// NodeIdentity.ServerTLSConfig). A connection state without verified chains
// is refused rather than trusted: an unverified certificate says nothing.
func PeerIdentity(state tls.ConnectionState) (Identity, error) {
	if len(state.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("pki: peer presented no certificate: %w", ErrNotAuthenticated)
	}
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return Identity{}, fmt.Errorf("pki: peer certificate was not verified against the cluster CA: %w", ErrNotAuthenticated)
	}
	id, err := identityFromCert(state.VerifiedChains[0][0])
	if err != nil {
		return Identity{}, fmt.Errorf("pki: peer identity: %w", err)
	}
	return id, nil
}

// PeerIdentityFromContext is PeerIdentity for the peer of a gRPC call.
func PeerIdentityFromContext(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, fmt.Errorf("pki: no gRPC peer in context: %w", ErrNotAuthenticated)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, fmt.Errorf("pki: gRPC peer %v did not connect over TLS: %w", p.Addr, ErrNotAuthenticated)
	}
	return PeerIdentity(info.State)
}

type identityKey struct{}

// IdentityFromContext returns the caller identity the Authorizer placed in
// the context of an authenticated call. ok is false for anonymous callers
// and outside an authorized call.
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// contextWithIdentity is unexported on purpose: only code in this package
// (the authorizer, the local issuer) may vouch for an identity.
func contextWithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}
