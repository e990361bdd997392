package pki

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cloudflare/cfssl/helpers"
)

// IssueRequest asks the CA for a node certificate.
type IssueRequest struct {
	// CSR is the PEM certificate request for the node's new key. Its names
	// are ignored: the CA sets CN, OU and O.
	CSR []byte `json:"csr"`
	// Token is the join token of a node that has no certificate yet. A node
	// renewing over mutual TLS leaves it empty.
	Token string `json:"token,omitempty"`
	// NodeID, if set, must be the caller's own (renewal). A joining node
	// cannot pick its ID: the CA assigns a fresh one, so a token holder can
	// never obtain a certificate naming an existing node.
	NodeID string `json:"node_id,omitempty"`
	// Availability is what a joining node asks to be created with
	// (docker swarm join --availability): active, pause or drain; "" is
	// active. A renewal's is ignored: the node exists.
	Availability string `json:"availability,omitempty"`
}

// IssueResponse carries the new certificate and the roots to trust.
type IssueResponse struct {
	NodeID string `json:"node_id"`
	Role   Role   `json:"role"`
	// CertificateChain is PEM: the leaf, then intermediates (the
	// cross-signed root during a root rotation).
	CertificateChain []byte `json:"certificate_chain"`
	// RootBundle is PEM: every root the node must trust now.
	RootBundle []byte `json:"root_bundle"`
}

// CertificateIssuer issues node certificates: the CA's gRPC client
// (NewCAClient), or a CAServer in process (CAServer.LocalIssuer).
//
//go:generate go run github.com/apiary-io/apiary/internal/rpcgen -type CertificateIssuer -service apiary.pki.NodeCA
type CertificateIssuer interface {
	IssueNodeCertificate(ctx context.Context, req *IssueRequest) (*IssueResponse, error)
}

// CAServerOptions tune a CAServer.
type CAServerOptions struct {
	Logger *slog.Logger
	// Now is the CA's clock (tests issue already-expired certificates with
	// a clock in the past).
	Now func() time.Time
	// HTTPClient reaches the external CA; nil builds one from the record.
	HTTPClient *http.Client
}

// CAServer is the cluster CA as run by a manager. It keeps no state of its
// own beyond a cache: everything lives in the ClusterState, so every manager
// can run one and they agree.
type CAServer struct {
	state  ClusterState
	logger *slog.Logger
	now    func() time.Time
	http   *http.Client

	mu       sync.Mutex
	cacheKey string
	cache    *signingSet
}

var _ CertificateIssuer = (*CAServer)(nil)

// NewCAServer returns a CA over state.
func NewCAServer(state ClusterState, opts CAServerOptions) *CAServer {
	s := &CAServer{state: state, logger: opts.Logger, now: opts.Now, http: opts.HTTPClient}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// IssueNodeCertificate signs a node certificate. A caller with a verified
// cluster certificate renews: it keeps its node ID and gets the role the
// cluster records for it (its current role unless promoted or demoted). A
// caller without one joins: the token decides the role and the CA assigns
// the node ID. In neither case does the request choose the role.
func (s *CAServer) IssueNodeCertificate(ctx context.Context, req *IssueRequest) (*IssueResponse, error) {
	rec, err := s.state.CA(ctx)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA state: %w", err)
	}
	subj := nodeSubject{ClusterID: rec.ClusterID}
	caller, authenticated := callerIdentity(ctx)
	if authenticated {
		switch {
		case caller.ClusterID != rec.ClusterID:
			return nil, fmt.Errorf("%w: certificate of node %s is for cluster %s, this is %s", ErrPermissionDenied, caller.NodeID, caller.ClusterID, rec.ClusterID)
		case req.NodeID != "" && req.NodeID != caller.NodeID:
			return nil, fmt.Errorf("%w: node %s may renew only its own certificate, not %s's", ErrPermissionDenied, caller.NodeID, req.NodeID)
		case s.state.IsRemoved(caller.NodeID):
			return nil, fmt.Errorf("pki: renew certificate of node %s: %w", caller.NodeID, ErrNodeRemoved)
		}
		subj.NodeID, subj.Role = caller.NodeID, caller.Role
		if r, ok := s.state.DesiredRole(caller.NodeID); ok && r.Valid() {
			subj.Role = r
		}
	} else {
		if req.Token == "" {
			return nil, fmt.Errorf("pki: issue node certificate: %w", ErrNotAuthenticated)
		}
		role, err := rec.ValidateJoinToken(req.Token)
		if err != nil {
			return nil, fmt.Errorf("pki: CA refused join: %w", err)
		}
		if req.NodeID != "" {
			return nil, fmt.Errorf("%w: a joining node cannot choose its node ID (%s); the CA assigns one", ErrPermissionDenied, req.NodeID)
		}
		switch req.Availability {
		case "", "active", "pause", "drain":
		default:
			return nil, fmt.Errorf("pki: join: availability %q: want active, pause or drain", req.Availability)
		}
		subj.NodeID, subj.Role = NewNodeID(), role
	}
	resp, err := s.issue(ctx, &rec, subj, req.CSR, req.Availability)
	if err != nil {
		return nil, err
	}
	if authenticated {
		s.logger.Debug("pki: renewed node certificate", "node", subj.NodeID, "role", subj.Role)
	} else {
		s.logger.Info("pki: issued certificate to joining node", "node", subj.NodeID, "role", subj.Role)
	}
	return resp, nil
}

func callerIdentity(ctx context.Context) (Identity, bool) {
	if id, ok := IdentityFromContext(ctx); ok {
		return id, true
	}
	// Without the Authorizer in front, read the TLS peer directly. A peer
	// without a verified certificate is anonymous, i.e. must have a token.
	if id, err := PeerIdentityFromContext(ctx); err == nil {
		return id, true
	}
	return Identity{}, false
}

// issue signs csrPEM for subj under rec, checks the result and records it
// (a joining node with the availability it asked for).
func (s *CAServer) issue(ctx context.Context, rec *CARecord, subj nodeSubject, csrPEM []byte, availability string) (*IssueResponse, error) {
	req, err := parseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: issue certificate for node %s: %w", subj.NodeID, err)
	}
	set, err := s.signingSet(rec)
	if err != nil {
		return nil, err
	}
	now := s.now()
	expiry := rec.Expiry()
	// Backdate a little for clock skew between nodes, but never by a large
	// share of a short lifetime (tests use seconds).
	backdate := min(5*time.Minute, expiry/10)
	leafPEM, err := set.signer.sign(ctx, csrPEM, subj, now.Add(-backdate), now.Add(expiry))
	if err != nil {
		return nil, err
	}
	leaf, err := checkIssued(leafPEM, req, subj, set, now)
	if err != nil {
		return nil, err
	}
	id, _ := identityFromCert(leaf)
	if err := s.state.RecordCertificate(ctx, NodeCert{NodeID: id.NodeID, Role: id.Role, IssuerKeyID: id.IssuerKeyID, Serial: id.Serial, NotAfter: leaf.NotAfter,
		Availability: availability}); err != nil {
		return nil, fmt.Errorf("pki: record certificate of node %s: %w", subj.NodeID, err)
	}
	chain := append(encodeCertsPEM([]*x509.Certificate{leaf}), encodeCertsPEM(set.intermediates)...)
	return &IssueResponse{NodeID: subj.NodeID, Role: subj.Role, CertificateChain: chain, RootBundle: set.rootsPEM}, nil
}

// checkIssued verifies what a signer returned before anyone relies on it:
// it matters most for an external CA, whose policy we do not control.
func checkIssued(leafPEM []byte, req *x509.CertificateRequest, subj nodeSubject, set *signingSet, now time.Time) (*x509.Certificate, error) {
	leaf, err := helpers.ParseCertificatePEM(leafPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: signer returned an unparsable certificate for node %s: %w", subj.NodeID, err)
	}
	fail := func(why string) error {
		return fmt.Errorf("%w: signer returned a certificate for node %s that %s", ErrBadCertificate, subj.NodeID, why)
	}
	if leaf.IsCA {
		return nil, fail("is a CA")
	}
	if !publicKeysEqual(leaf.PublicKey, req.PublicKey) {
		return nil, fail("is not for the requested key")
	}
	id, err := identityFromCert(leaf)
	if err != nil || id.NodeID != subj.NodeID || id.Role != subj.Role || id.ClusterID != subj.ClusterID {
		return nil, fail(fmt.Sprintf("names the wrong subject (%q)", leaf.Subject.String()))
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return nil, fail("lacks server or client authentication usage")
	}
	if !set.external {
		// The local signer's x509.CreateCertificate already verified its
		// signature with the CA key; the chain is ours. Skipping a second
		// verification saves a fifth of the cost of issuance.
		return leaf, nil
	}
	inter := x509.NewCertPool()
	for _, c := range set.intermediates {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: set.pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fail("does not chain to the cluster root: " + err.Error())
	}
	return leaf, nil
}

// signingSet returns the signing material for rec, cached while the record's
// CA fields do not change (parsing keys and building the cfssl signer per
// request would dominate issuance cost).
func (s *CAServer) signingSet(rec *CARecord) (*signingSet, error) {
	key := cacheKey(rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache != nil && s.cacheKey == key {
		return s.cache, nil
	}
	set, err := newSigningSet(rec, rec.Expiry(), s.http)
	if err != nil {
		return nil, err
	}
	s.cache, s.cacheKey = set, key
	return set, nil
}

func cacheKey(rec *CARecord) string {
	k := string(rec.RootCert) + "\x00" + string(rec.RootKey) + "\x00" + rec.Expiry().String()
	if r := rec.Rotation; r != nil {
		k += "\x00" + string(r.NewRootCert) + "\x00" + string(r.NewRootKey) + "\x00" + string(r.CrossSignedCert)
	}
	if e := rec.External; e != nil {
		k += fmt.Sprintf("\x00%s\x00%s\x00%s\x00%s\x00%s", e.URL, e.AuthKey, e.Profile, e.Intermediates, e.CACert)
	}
	return k
}

// NewNodeIdentity issues, without a token, a certificate for nodeID in role
// and returns the identity (persisted in dataDir unless empty). It is for
// the node that initialises the cluster, which has nobody to join, and for
// swarm code that has already authorised the node by other means.
func (s *CAServer) NewNodeIdentity(ctx context.Context, nodeID string, role Role, dataDir string) (*NodeIdentity, error) {
	if nodeID == "" || !role.Valid() {
		return nil, fmt.Errorf("pki: new node identity: need a node ID and a valid role (got %q, %q)", nodeID, role)
	}
	rec, err := s.state.CA(ctx)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA state: %w", err)
	}
	keyPEM, csrPEM, err := newKeyAndCSR()
	if err != nil {
		return nil, err
	}
	resp, err := s.issue(ctx, &rec, nodeSubject{NodeID: nodeID, Role: role, ClusterID: rec.ClusterID}, csrPEM, "")
	if err != nil {
		return nil, err
	}
	return NewNodeIdentityFromPEM(keyPEM, resp.CertificateChain, resp.RootBundle, dataDir)
}

// LocalIssuer lets a manager renew its own certificate through its own CA
// without a network round trip: requests carry node's current identity, as
// if it had called over mutual TLS.
func (s *CAServer) LocalIssuer(node *NodeIdentity) CertificateIssuer {
	return localIssuer{ca: s, node: node}
}

type localIssuer struct {
	ca   *CAServer
	node *NodeIdentity
}

func (l localIssuer) IssueNodeCertificate(ctx context.Context, req *IssueRequest) (*IssueResponse, error) {
	return l.ca.IssueNodeCertificate(contextWithIdentity(ctx, l.node.Identity()), req)
}

// JoinTokens returns the current worker and manager join tokens.
func (s *CAServer) JoinTokens(ctx context.Context) (worker, manager string, err error) {
	rec, err := s.state.CA(ctx)
	if err != nil {
		return "", "", fmt.Errorf("pki: read CA state: %w", err)
	}
	if worker, err = rec.JoinToken(RoleWorker); err != nil {
		return "", "", err
	}
	manager, err = rec.JoinToken(RoleManager)
	return worker, manager, err
}

// RotateJoinToken replaces role's join token and returns the new one; the
// old one is refused from now on. Certificates already issued stay valid.
func (s *CAServer) RotateJoinToken(ctx context.Context, role Role) (string, error) {
	var tok string
	err := s.state.UpdateCA(ctx, func(rec *CARecord) error {
		if err := rec.RotateJoinToken(role); err != nil {
			return err
		}
		var err error
		tok, err = rec.JoinToken(role)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("pki: rotate %s join token: %w", role, err)
	}
	s.logger.Info("pki: rotated join token", "role", role)
	return tok, nil
}

// TrustBundle returns the roots nodes must trust now (PEM).
func (s *CAServer) TrustBundle(ctx context.Context) ([]byte, error) {
	rec, err := s.state.CA(ctx)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA state: %w", err)
	}
	roots, err := rec.TrustBundle()
	if err != nil {
		return nil, err
	}
	return encodeCertsPEM(roots), nil
}
