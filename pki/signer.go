package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cloudflare/cfssl/api"
	"github.com/cloudflare/cfssl/auth"
	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
)

// nodeSubject is what the CA writes into a node certificate, whatever the
// CSR asked for.
type nodeSubject struct {
	NodeID    string
	Role      Role
	ClusterID string
	// Extra are more SANs (DNS names or IP addresses): a Docker API
	// listener's addresses and hostname (IssueClientCertificate).
	Extra []string
}

func (s nodeSubject) cfssl() *signer.Subject {
	return &signer.Subject{CN: s.NodeID, Names: []csr.Name{{O: s.ClusterID, OU: string(s.Role)}}}
}

// hosts are the DNS SANs: the node ID and the role, so that a stock TLS
// client can check "is this a manager" by ServerName as Swarm's do.
func (s nodeSubject) hosts() []string {
	return append([]string{s.NodeID, string(s.Role)}, s.Extra...)
}

// leafSigner turns a CSR into a leaf certificate (PEM, leaf only).
type leafSigner interface {
	sign(ctx context.Context, csrPEM []byte, subj nodeSubject, notBefore, notAfter time.Time) ([]byte, error)
}

// signingSet is everything the CA needs to issue under one CARecord.
type signingSet struct {
	signer        leafSigner
	intermediates []*x509.Certificate // appended after the leaf
	roots         []*x509.Certificate // the trust bundle
	rootsPEM      []byte
	pool          *x509.CertPool
	keyID         string // hex subject key ID of the signing key
	external      bool
}

// newSigningSet prepares signing for rec: locally with cfssl under the root
// (or under the new root during a rotation, chained through the
// cross-signed intermediate), or through the external cfssl signer.
func newSigningSet(rec *CARecord, expiry time.Duration, httpClient *http.Client) (*signingSet, error) {
	roots, err := rec.TrustBundle()
	if err != nil {
		return nil, err
	}
	set := &signingSet{roots: roots, rootsPEM: encodeCertsPEM(roots), pool: x509.NewCertPool()}
	for _, r := range roots {
		set.pool.AddCert(r)
	}
	switch {
	case rec.External != nil:
		rs, err := newRemoteSigner(*rec.External, httpClient)
		if err != nil {
			return nil, err
		}
		set.signer, set.external = rs, true
		if len(rec.External.Intermediates) > 0 {
			if set.intermediates, err = parseCertsPEM(rec.External.Intermediates); err != nil {
				return nil, fmt.Errorf("pki: external CA intermediates: %w", err)
			}
		}
	case rec.Rotation != nil:
		nr, err := ParseRootCA(rec.Rotation.NewRootCert, rec.Rotation.NewRootKey)
		if err != nil {
			return nil, fmt.Errorf("pki: rotation's new root: %w", err)
		}
		cross, err := parseCertsPEM(rec.Rotation.CrossSignedCert)
		if err != nil {
			return nil, fmt.Errorf("pki: rotation's cross-signed certificate: %w", err)
		}
		if set.signer, err = newLocalSigner(nr, expiry); err != nil {
			return nil, err
		}
		set.intermediates, set.keyID = cross, hex.EncodeToString(nr.Cert.SubjectKeyId)
	default:
		root, err := rec.Root()
		if err != nil {
			return nil, err
		}
		if root.Key == nil {
			return nil, fmt.Errorf("pki: cluster %s: %w", rec.ClusterID, ErrNoSigningKey)
		}
		if set.signer, err = newLocalSigner(root, expiry); err != nil {
			return nil, err
		}
		set.keyID = hex.EncodeToString(root.Cert.SubjectKeyId)
	}
	return set, nil
}

// localSigner signs with cfssl's local signer. The profile copies only the
// public key from the CSR (CSRWhitelist): subject, SANs and extensions a
// node asks for are dropped, and the CA supplies them.
type localSigner struct{ s *local.Signer }

func newLocalSigner(root *RootCA, expiry time.Duration) (*localSigner, error) {
	policy := &config.Signing{
		Profiles: map[string]*config.SigningProfile{},
		Default: &config.SigningProfile{
			// ECDSA keys sign; they do not encipher, so no "key encipherment".
			Usage:        []string{"signing", "server auth", "client auth"},
			Expiry:       expiry,
			ExpiryString: expiry.String(),
			CSRWhitelist: &config.CSRWhitelist{PublicKey: true, PublicKeyAlgorithm: true, SignatureAlgorithm: true},
		},
	}
	s, err := local.NewSigner(root.Key, root.Cert, signer.DefaultSigAlgo(root.Key), policy)
	if err != nil {
		return nil, fmt.Errorf("pki: cfssl local signer for %q: %w", root.Cert.Subject.CommonName, err)
	}
	return &localSigner{s: s}, nil
}

func (l *localSigner) sign(_ context.Context, csrPEM []byte, subj nodeSubject, notBefore, notAfter time.Time) ([]byte, error) {
	cert, err := l.s.Sign(signer.SignRequest{
		Request:   string(csrPEM),
		Hosts:     subj.hosts(),
		Subject:   subj.cfssl(),
		NotBefore: notBefore,
		NotAfter:  notAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("pki: cfssl sign for node %s: %w", subj.NodeID, err)
	}
	return cert, nil
}

// remoteSigner forwards to a cfssl signer over its HTTP API. It speaks the
// API directly rather than through cfssl's api/client so that the request
// honours the caller's context (a stuck signer must not hang a join).
type remoteSigner struct {
	ext      ExternalCA
	client   *http.Client
	provider auth.Provider
}

func newRemoteSigner(ext ExternalCA, client *http.Client) (*remoteSigner, error) {
	rs := &remoteSigner{ext: ext, client: client}
	if rs.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if len(ext.CACert) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ext.CACert) {
				return nil, fmt.Errorf("pki: external CA: no certificate in CACert")
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		rs.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	if ext.AuthKey != "" {
		p, err := auth.New(ext.AuthKey, nil)
		if err != nil {
			return nil, fmt.Errorf("pki: external CA auth key: %w", err)
		}
		rs.provider = p
	}
	return rs, nil
}

// remoteSignRequest is the JSON body of cfssl's /api/v1/cfssl/sign.
type remoteSignRequest struct {
	Hosts   []string        `json:"hosts"`
	Request string          `json:"certificate_request"`
	Subject *signer.Subject `json:"subject,omitempty"`
	Profile string          `json:"profile,omitempty"`
}

func (r *remoteSigner) sign(ctx context.Context, csrPEM []byte, subj nodeSubject, _, _ time.Time) ([]byte, error) {
	body, err := json.Marshal(remoteSignRequest{Hosts: subj.hosts(), Request: string(csrPEM), Subject: subj.cfssl(), Profile: r.ext.Profile})
	if err != nil {
		return nil, fmt.Errorf("pki: external CA request: %w", err)
	}
	endpoint := "sign"
	if r.provider != nil {
		token, err := r.provider.Token(body)
		if err != nil {
			return nil, fmt.Errorf("pki: external CA auth token: %w", err)
		}
		body, err = json.Marshal(auth.AuthenticatedRequest{Timestamp: time.Now().Unix(), Token: token, Request: body})
		if err != nil {
			return nil, fmt.Errorf("pki: external CA request: %w", err)
		}
		endpoint = "authsign"
	}
	url := strings.TrimRight(r.ext.URL, "/") + "/api/v1/cfssl/" + endpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("pki: external CA %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pki: external CA %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("pki: external CA %s: read response: %w", url, err)
	}
	var out api.Response
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("pki: external CA %s: HTTP %d, undecodable response: %w", url, resp.StatusCode, err)
	}
	if !out.Success {
		msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
		if len(out.Errors) > 0 {
			msg = fmt.Sprintf("%s: %s (code %d)", msg, out.Errors[0].Message, out.Errors[0].Code)
		}
		return nil, fmt.Errorf("pki: external CA %s refused to sign for node %s: %s", url, subj.NodeID, msg)
	}
	result, _ := out.Result.(map[string]any)
	cert, _ := result["certificate"].(string)
	if cert == "" {
		return nil, fmt.Errorf("pki: external CA %s: response has no certificate", url)
	}
	return []byte(cert), nil
}
