package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// CARecord is the cluster's replicated CA state. The swarm package stores it
// in the cluster object, so every manager holds the root key and any of them
// (not only the first) can sign, including a newly elected leader. It is
// plain data with JSON tags so the store can serialise it.
type CARecord struct {
	ClusterID string `json:"cluster_id"`
	// RootCert is the current root (PEM). During a rotation it is the old
	// root, still trusted, no longer signing.
	RootCert []byte `json:"root_cert"`
	// RootKey is the root key (PEM); empty in external CA mode.
	RootKey []byte `json:"root_key,omitempty"`
	// Rotation is set while a root rotation is in progress.
	Rotation *RootRotation `json:"rotation,omitempty"`
	// External, when set, makes the CA forward CSRs to a cfssl remote
	// signer instead of signing with RootKey.
	External *ExternalCA `json:"external,omitempty"`
	// WorkerSecret and ManagerSecret are the join token secrets.
	WorkerSecret  string `json:"worker_secret"`
	ManagerSecret string `json:"manager_secret"`
	// NodeCertExpiry is the lifetime of node certificates; zero means
	// api.DefaultNodeCertExpiry (90 days). The CA reads it with the
	// record for every certificate it issues: a ClusterState may fill it
	// from elsewhere (swarm's comes from the cluster spec, where users
	// change it).
	NodeCertExpiry time.Duration `json:"node_cert_expiry"`
}

// RootRotation is the in-progress part of a root rotation: the new root, its
// key, and the new root cross-signed by the old one.
type RootRotation struct {
	NewRootCert     []byte    `json:"new_root_cert"`
	NewRootKey      []byte    `json:"new_root_key"`
	CrossSignedCert []byte    `json:"cross_signed_cert"`
	StartedAt       time.Time `json:"started_at"`
}

// ExternalCA configures forwarding to a cfssl signer (`cfssl serve`).
type ExternalCA struct {
	// URL is the signer's base URL, e.g. https://ca.example:8888; the CA
	// posts to URL/api/v1/cfssl/sign (or authsign with AuthKey).
	URL string `json:"url"`
	// AuthKey, if set, is cfssl's standard HMAC key (hex, or "env:NAME",
	// "file:PATH"): requests go to authsign with a token.
	AuthKey string `json:"auth_key,omitempty"`
	// Profile is the cfssl signing profile to request; empty for default.
	// The external CA's profile decides the certificate lifetime.
	Profile string `json:"profile,omitempty"`
	// Intermediates (PEM) are appended to issued leaves when the external
	// CA signs with an intermediate rather than with the root.
	Intermediates []byte `json:"intermediates,omitempty"`
	// CACert (PEM) verifies the signer's HTTPS certificate; empty uses the
	// system roots.
	CACert []byte `json:"ca_cert,omitempty"`
}

// NewCARecord creates the CA state of a new cluster: a root made with cfssl
// and fresh join token secrets. expiry zero means 90 days.
func NewCARecord(clusterID string, expiry time.Duration) (CARecord, error) {
	root, err := NewRootCA(clusterID)
	if err != nil {
		return CARecord{}, err
	}
	return CARecord{
		ClusterID:      clusterID,
		RootCert:       root.CertPEM,
		RootKey:        root.KeyPEM,
		WorkerSecret:   randomSecret(),
		ManagerSecret:  randomSecret(),
		NodeCertExpiry: expiry,
	}, nil
}

// NewExternalCARecord creates the CA state of a cluster whose certificates
// an external cfssl signer issues under rootCertPEM. No key is held here.
func NewExternalCARecord(clusterID string, rootCertPEM []byte, ext ExternalCA) (CARecord, error) {
	if _, err := ParseRootCA(rootCertPEM, nil); err != nil {
		return CARecord{}, err
	}
	if ext.URL == "" {
		return CARecord{}, fmt.Errorf("pki: external CA: URL is required")
	}
	return CARecord{
		ClusterID:     clusterID,
		RootCert:      bytes.Clone(rootCertPEM),
		External:      &ext,
		WorkerSecret:  randomSecret(),
		ManagerSecret: randomSecret(),
	}, nil
}

// Copy returns a deep copy.
func (r *CARecord) Copy() CARecord {
	c := *r
	c.RootCert, c.RootKey = bytes.Clone(r.RootCert), bytes.Clone(r.RootKey)
	if r.Rotation != nil {
		rot := *r.Rotation
		rot.NewRootCert, rot.NewRootKey, rot.CrossSignedCert = bytes.Clone(rot.NewRootCert), bytes.Clone(rot.NewRootKey), bytes.Clone(rot.CrossSignedCert)
		c.Rotation = &rot
	}
	if r.External != nil {
		e := *r.External
		e.Intermediates, e.CACert = bytes.Clone(e.Intermediates), bytes.Clone(e.CACert)
		c.External = &e
	}
	return c
}

// Expiry is the node certificate lifetime in force.
func (r *CARecord) Expiry() time.Duration {
	if r.NodeCertExpiry > 0 {
		return r.NodeCertExpiry
	}
	return api.DefaultNodeCertExpiry
}

// Root parses the current root (with its key when held).
func (r *CARecord) Root() (*RootCA, error) {
	root, err := ParseRootCA(r.RootCert, r.RootKey)
	if err != nil {
		return nil, fmt.Errorf("pki: cluster %s CA record: %w", r.ClusterID, err)
	}
	return root, nil
}

// TrustBundle is the set of roots a node must trust now: the current root,
// plus the new root while a rotation is in progress.
func (r *CARecord) TrustBundle() ([]*x509.Certificate, error) {
	roots, err := parseCertsPEM(r.RootCert)
	if err != nil {
		return nil, fmt.Errorf("pki: cluster %s root: %w", r.ClusterID, err)
	}
	if r.Rotation != nil {
		nr, err := parseCertsPEM(r.Rotation.NewRootCert)
		if err != nil {
			return nil, fmt.Errorf("pki: cluster %s new root: %w", r.ClusterID, err)
		}
		roots = append(roots, nr...)
	}
	return roots, nil
}

func (r *CARecord) trustedDigests() ([]string, error) {
	roots, err := r.TrustBundle()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(roots))
	for i, c := range roots {
		out[i] = Digest(c)
	}
	return out, nil
}

// NodeCert records the certificate the CA last issued to a node.
type NodeCert struct {
	NodeID      string
	Role        Role
	IssuerKeyID string // hex subject key ID of the signing CA key
	Serial      string
	NotAfter    time.Time
	// Availability is what a joining node asked to be created with
	// (IssueRequest.Availability); "" for renewals and for active.
	Availability string
}

// RemovedNodes is the one question the Authorizer asks the cluster.
type RemovedNodes interface {
	// IsRemoved reports whether nodeID was removed from the cluster; its
	// certificate is then refused even while unexpired.
	IsRemoved(nodeID string) bool
}

// ClusterState is the replicated state the CA needs. The swarm package
// implements it over the store (so writes go through raft); MemState is the
// in-memory implementation for tests and single-process use.
type ClusterState interface {
	RemovedNodes
	// CA returns a copy of the CA record.
	CA(ctx context.Context) (CARecord, error)
	// UpdateCA applies fn to the current record and stores the result as one
	// atomic write. fn may run more than once (optimistic concurrency); if it
	// returns an error nothing is written.
	UpdateCA(ctx context.Context, fn func(*CARecord) error) error
	// DesiredRole is the role the cluster wants nodeID to have (after a
	// promotion or demotion); ok is false for a node it does not know.
	DesiredRole(nodeID string) (role Role, ok bool)
	// RecordCertificate notes the certificate just issued to a node; for a
	// new node this is its registration.
	RecordCertificate(ctx context.Context, c NodeCert) error
	// Nodes lists the members (removed nodes excluded) with the last
	// certificate issued to each.
	Nodes(ctx context.Context) ([]NodeCert, error)
}

// MemState is an in-memory ClusterState.
type MemState struct {
	mu      sync.Mutex
	rec     CARecord
	nodes   map[string]NodeCert
	roles   map[string]Role
	removed map[string]bool
}

var _ ClusterState = (*MemState)(nil)

// NewMemState holds rec.
func NewMemState(rec CARecord) *MemState {
	return &MemState{rec: rec.Copy(), nodes: map[string]NodeCert{}, roles: map[string]Role{}, removed: map[string]bool{}}
}

// CA implements ClusterState.
func (m *MemState) CA(context.Context) (CARecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rec.Copy(), nil
}

// UpdateCA implements ClusterState.
func (m *MemState) UpdateCA(_ context.Context, fn func(*CARecord) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.rec.Copy()
	if err := fn(&rec); err != nil {
		return err
	}
	m.rec = rec
	return nil
}

// IsRemoved implements RemovedNodes.
func (m *MemState) IsRemoved(nodeID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.removed[nodeID]
}

// DesiredRole implements ClusterState.
func (m *MemState) DesiredRole(nodeID string) (Role, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.roles[nodeID]; ok {
		return r, true
	}
	n, ok := m.nodes[nodeID]
	return n.Role, ok
}

// RecordCertificate implements ClusterState.
func (m *MemState) RecordCertificate(_ context.Context, c NodeCert) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nodes[c.NodeID] = c
	return nil
}

// Nodes implements ClusterState.
func (m *MemState) Nodes(context.Context) ([]NodeCert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]NodeCert, 0, len(m.nodes))
	for id, n := range m.nodes {
		if !m.removed[id] {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, nil
}

// RemoveNode marks nodeID removed.
func (m *MemState) RemoveNode(nodeID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed[nodeID] = true
}

// SetRole sets the role the cluster wants for nodeID (promote/demote).
func (m *MemState) SetRole(nodeID string, role Role) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roles[nodeID] = role
}
