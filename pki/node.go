package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Files of a node identity, in <dataDir>/certificates, all mode 0600.
const (
	certDir     = "certificates"
	keyFile     = "node.key"
	certFile    = "node.crt" // leaf, then intermediates
	bundleFile  = "ca.crt"   // trusted roots
	pendingExt  = ".new"
	filePerm    = 0o600
	certDirPerm = 0o700
)

// NodeIdentity is a node's key, certificate chain and trusted roots. It is
// safe for concurrent use; renewal swaps all three atomically, and the TLS
// configs it hands out read the current ones at each handshake, so
// connections open before a renewal keep going and new ones use the new
// certificate.
type NodeIdentity struct {
	dir string
	mu  sync.Mutex // serialises Update: persist, then swap
	cur atomic.Pointer[material]
	// sealer seals the key file (keyfile.go); nil keeps it plain.
	sealer KeySealer
}

// material is one immutable generation of a node's identity.
type material struct {
	id                          Identity
	leaf                        *x509.Certificate
	keyPEM, chainPEM, bundlePEM []byte
	roots                       []*x509.Certificate
	pool                        *x509.CertPool
	cert                        *tls.Certificate // leaf + intermediates
	certWithRoots               *tls.Certificate // + roots, for joiners to pin
	serverCfg, joinCfg          *tls.Config
}

// NewNodeIdentityFromPEM builds an identity from PEM material and, when
// dataDir is not empty, persists it there.
func NewNodeIdentityFromPEM(keyPEM, chainPEM, bundlePEM []byte, dataDir string) (*NodeIdentity, error) {
	n := &NodeIdentity{dir: dataDir}
	m, err := n.build(keyPEM, chainPEM, bundlePEM)
	if err != nil {
		return nil, err
	}
	if dataDir != "" {
		if err := save(dataDir, m, nil); err != nil {
			return nil, err
		}
	}
	n.cur.Store(m)
	return n, nil
}

// LoadNodeIdentity reads the identity persisted in dataDir: a restarting
// node comes back with the node ID, role and certificate it had. An expired
// certificate still loads (check NotAfter): such a node must join again.
func LoadNodeIdentity(dataDir string) (*NodeIdentity, error) {
	return loadNodeIdentity(dataDir, nil)
}

func loadNodeIdentity(dataDir string, s KeySealer) (*NodeIdentity, error) {
	dir := filepath.Join(dataDir, certDir)
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("pki: load node identity: %w", err)
		}
		return b, nil
	}
	keyFileData, err := read(keyFile)
	if err != nil {
		return nil, err
	}
	keyPEM, _, err := openKeyPEM(keyFileData, s)
	if err != nil {
		return nil, fmt.Errorf("pki: load node identity from %s: %w", dir, err)
	}
	chainPEM, err := read(certFile)
	if err != nil {
		return nil, err
	}
	bundlePEM, err := read(bundleFile)
	if err != nil {
		return nil, err
	}
	n := &NodeIdentity{dir: dataDir, sealer: s}
	m, err := n.build(keyPEM, chainPEM, bundlePEM)
	if err != nil {
		// A crash between the two renames of save leaves the new key with
		// the old certificate; the new certificate is still pending.
		pending, perr := os.ReadFile(filepath.Join(dir, certFile+pendingExt))
		if perr != nil {
			return nil, fmt.Errorf("pki: load node identity from %s: %w", dir, err)
		}
		m2, err2 := n.build(keyPEM, pending, bundlePEM)
		if err2 != nil {
			return nil, fmt.Errorf("pki: load node identity from %s: %w", dir, err)
		}
		if err := os.Rename(filepath.Join(dir, certFile+pendingExt), filepath.Join(dir, certFile)); err != nil {
			return nil, fmt.Errorf("pki: complete interrupted certificate save: %w", err)
		}
		m = m2
	}
	n.cur.Store(m)
	return n, nil
}

// build parses and cross-checks one generation of material.
func (n *NodeIdentity) build(keyPEM, chainPEM, bundlePEM []byte) (*material, error) {
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: node key and certificate: %w", err)
	}
	chain, err := parseCertsPEM(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: node certificate chain: %w", err)
	}
	roots, err := parseCertsPEM(bundlePEM)
	if err != nil {
		return nil, fmt.Errorf("pki: node trust bundle: %w", err)
	}
	leaf := chain[0]
	id, err := identityFromCert(leaf)
	if err != nil {
		return nil, err
	}
	m := &material{id: id, leaf: leaf, keyPEM: bytes.Clone(keyPEM), chainPEM: bytes.Clone(chainPEM), bundlePEM: bytes.Clone(bundlePEM), roots: roots, pool: x509.NewCertPool()}
	for _, r := range roots {
		m.pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// Check the chain at an instant inside the leaf's validity, so that an
	// expired certificate still loads (the node then knows to rejoin).
	mid := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.pool, Intermediates: inter, CurrentTime: mid, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("%w: node %s's certificate does not chain to its trust bundle: %v", ErrBadCertificate, id.NodeID, err)
	}
	cert.Leaf = leaf
	m.cert = &cert
	withRoots := cert
	withRoots.Certificate = append([][]byte(nil), cert.Certificate...)
	for _, r := range roots {
		withRoots.Certificate = append(withRoots.Certificate, r.Raw)
	}
	m.certWithRoots = &withRoots
	m.serverCfg = n.innerServerConfig(m, tls.RequireAndVerifyClientCert, false)
	m.joinCfg = n.innerServerConfig(m, tls.VerifyClientCertIfGiven, true)
	return m, nil
}

// Update replaces the key, chain and trust bundle (after a renewal),
// persisting them first. Node ID and cluster must not change; the role may
// (promotion, demotion).
func (n *NodeIdentity) Update(keyPEM, chainPEM, bundlePEM []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, err := n.build(keyPEM, chainPEM, bundlePEM)
	if err != nil {
		return err
	}
	old := n.cur.Load()
	if m.id.NodeID != old.id.NodeID || m.id.ClusterID != old.id.ClusterID {
		return fmt.Errorf("%w: new certificate is for node %s in cluster %s, this is node %s in cluster %s",
			ErrBadCertificate, m.id.NodeID, m.id.ClusterID, old.id.NodeID, old.id.ClusterID)
	}
	if n.dir != "" {
		if err := save(n.dir, m, n.sealer); err != nil {
			return err
		}
	}
	n.cur.Store(m)
	return nil
}

// Renew gets a new certificate for a new key from issuer (over mutual TLS
// with the current certificate, or a manager's LocalIssuer) and installs it.
func (n *NodeIdentity) Renew(ctx context.Context, issuer CertificateIssuer) error {
	keyPEM, csrPEM, err := newKeyAndCSR()
	if err != nil {
		return err
	}
	id := n.Identity()
	resp, err := issuer.IssueNodeCertificate(ctx, &IssueRequest{CSR: csrPEM, NodeID: id.NodeID})
	if err != nil {
		return fmt.Errorf("pki: renew certificate of node %s: %w", id.NodeID, err)
	}
	if err := n.Update(keyPEM, resp.CertificateChain, resp.RootBundle); err != nil {
		return fmt.Errorf("pki: install renewed certificate of node %s: %w", id.NodeID, err)
	}
	return nil
}

// Identity is what the current certificate says.
func (n *NodeIdentity) Identity() Identity { return n.cur.Load().id }

// Leaf is the current certificate.
func (n *NodeIdentity) Leaf() *x509.Certificate { return n.cur.Load().leaf }

// Certificate is the current TLS certificate (leaf and intermediates).
func (n *NodeIdentity) Certificate() *tls.Certificate { return n.cur.Load().cert }

// TrustBundle is the PEM of the roots this node trusts.
func (n *NodeIdentity) TrustBundle() []byte { return bytes.Clone(n.cur.Load().bundlePEM) }

// RootDigests are the Digests of the trusted roots.
func (n *NodeIdentity) RootDigests() []string {
	var out []string
	for _, r := range n.cur.Load().roots {
		out = append(out, Digest(r))
	}
	return out
}

// DataDir is where the identity persists ("" for memory only).
func (n *NodeIdentity) DataDir() string { return n.dir }

// ServerTLSConfig is for listeners of mutual TLS: TLS 1.3, a client
// certificate from the cluster's CA required and verified. The current
// certificate and trust bundle are read per handshake (GetConfigForClient),
// so renewals and root rotations apply without restarting the listener.
func (n *NodeIdentity) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return n.cur.Load().serverCfg, nil
		},
	}
}

// JoinServerTLSConfig is ServerTLSConfig for a listener that also accepts
// joining nodes, which have no certificate: a certificate is verified if
// given but not required, and the chain sent includes the roots so that a
// joiner can find the one its token pins. Serve it only behind an
// Authorizer, which refuses anonymous callers everywhere but where the
// Policy says RoleAnonymous.
func (n *NodeIdentity) JoinServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return n.cur.Load().joinCfg, nil
		},
	}
}

func (n *NodeIdentity) innerServerConfig(m *material, auth tls.ClientAuthType, withRoots bool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: auth,
		ClientCAs:  m.pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if withRoots {
				return n.cur.Load().certWithRoots, nil
			}
			return n.cur.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 {
				return nil // no certificate, allowed by ClientAuth (joiners)
			}
			id, err := identityFromCert(cs.VerifiedChains[0][0])
			if err != nil {
				return err
			}
			if own := m.id.ClusterID; id.ClusterID != own {
				return fmt.Errorf("%w: client %s belongs to cluster %s, not %s", ErrBadCertificate, id.NodeID, id.ClusterID, own)
			}
			return nil
		},
		// Resumption would skip verification against the trust bundle in
		// force at reconnection time (after a root rotation dropped a root).
		// Connections are long-lived gRPC channels: a full handshake per
		// connection costs little.
		SessionTicketsDisabled: true,
	}
}

// ClientTLSConfig is for dialing another node over mutual TLS. serverRole,
// if not empty, is the role the server's certificate must carry (workers
// dial managers only). The server is verified in VerifyConnection against
// the trust bundle current at that handshake: tls.Config.RootCAs cannot
// change after a long-lived dialer copied the config, and a root rotation
// changes the bundle. No name is checked: nodes are addressed by IP, and
// their identity is the node ID and role in the certificate.
func (n *NodeIdentity) ClientTLSConfig(serverRole Role) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verification is VerifyConnection's, below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return n.cur.Load().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := n.VerifyPeer(cs)
			if err != nil {
				return err
			}
			if serverRole != "" && id.Role != serverRole {
				return fmt.Errorf("%w: server %s has role %s, expected %s", ErrBadCertificate, id.NodeID, id.Role, serverRole)
			}
			return nil
		},
	}
}

// ClientTLSConfigForNode is ClientTLSConfig for dialing one node, whatever
// its role: the server's certificate must name nodeID. An address a node
// reported about itself is only a hint; the certificate says who answers.
func (n *NodeIdentity) ClientTLSConfigForNode(nodeID string) *tls.Config {
	cfg := n.ClientTLSConfig("")
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			return err
		}
		id, err := n.VerifyPeer(cs)
		if err != nil {
			return err
		}
		if id.NodeID != nodeID {
			return fmt.Errorf("%w: expected node %s, the server is node %s", ErrBadCertificate, nodeID, id.NodeID)
		}
		return nil
	}
	return cfg
}

// VerifyPeer verifies the certificates a peer presented against this node's
// current trust bundle and cluster, and returns the peer's identity. It
// works on either side of a connection (PeerIdentity needs the TLS stack to
// have verified, which the client side of ClientTLSConfig does not).
func (n *NodeIdentity) VerifyPeer(cs tls.ConnectionState) (Identity, error) {
	m := n.cur.Load()
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("pki: peer presented no certificate: %w", ErrNotAuthenticated)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.pool, Intermediates: inter, CurrentTime: time.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		return Identity{}, fmt.Errorf("%w: peer %q: %v", ErrBadCertificate, leaf.Subject.CommonName, err)
	}
	id, err := identityFromCert(leaf)
	if err != nil {
		return Identity{}, err
	}
	if id.ClusterID != m.id.ClusterID {
		return Identity{}, fmt.Errorf("%w: peer %s belongs to cluster %s, not %s", ErrBadCertificate, id.NodeID, id.ClusterID, m.id.ClusterID)
	}
	return id, nil
}

// save persists m under dataDir. The bundle goes first: it only grows or
// keeps the root the current certificate chains to. Key and certificate are
// written aside, then renamed key first; LoadNodeIdentity completes a save
// interrupted between the two renames.
func save(dataDir string, m *material, s KeySealer) error {
	dir := filepath.Join(dataDir, certDir)
	if err := os.MkdirAll(dir, certDirPerm); err != nil {
		return fmt.Errorf("pki: create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, certDirPerm); err != nil {
		return fmt.Errorf("pki: chmod %s: %w", dir, err)
	}
	if err := writeFileAtomic(dir, bundleFile, m.bundlePEM); err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(dir, keyFile+pendingExt), sealKeyPEM(m.keyPEM, s)); err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(dir, certFile+pendingExt), m.chainPEM); err != nil {
		return err
	}
	for _, name := range []string{keyFile, certFile} {
		if err := os.Rename(filepath.Join(dir, name+pendingExt), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pki: install %s: %w", name, err)
		}
	}
	return syncDir(dir)
}

func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+pendingExt)
	if err := writeFileSync(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("pki: install %s: %w", name, err)
	}
	return nil
}

// writeFileSync writes data with mode 0600 (also when the file existed with
// a wider mode) and fsyncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(filePerm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("pki: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("pki: sync %s: %w", dir, err)
	}
	return nil
}
