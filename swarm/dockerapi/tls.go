package dockerapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
)

// The TCP listener with mutual TLS (`DOCKER_HOST=tcp://...`,
// `DOCKER_TLS_VERIFY=1`): it presents a certificate of the cluster CA
// whose SANs are the node's addresses and hostname (the client role: it
// names no node, so it opens nothing of the cluster's gRPC services), asks
// every client for a certificate of the cluster CA, and serves only the
// client role (apiaryctl swarm ca --client-bundle) and managers; a
// worker's certificate is verified (it is the cluster's) but each request
// answers 403, in Docker's words, and changes nothing.

// CertIssuer signs the listener's certificate: the control API's
// IssueClientCertificate (*client.Client has it).
type CertIssuer interface {
	IssueClientCertificate(ctx context.Context, csr []byte, hosts []string) (*control.ClientCertificate, error)
}

// TLSConfig configures a ServerTLS. Start from DefaultTLSConfig; Issuer
// and Hosts are required.
type TLSConfig struct {
	Issuer CertIssuer
	// Hosts are the SANs of the listener's certificate: the addresses
	// and names clients dial (at most pki.MaxCertificateHosts).
	Hosts  []string
	Logger *slog.Logger
	// Refresh is the longest a certificate is kept before a new one is
	// asked for (sooner at half its lifetime): a new one also brings the
	// cluster's current roots, which a root rotation changes.
	Refresh time.Duration
	// Retry is the wait after a failed renewal (the manager may be
	// electing a leader).
	Retry time.Duration
}

// DefaultTLSConfig: refresh hourly, retry every 10 s.
func DefaultTLSConfig() TLSConfig {
	return TLSConfig{Refresh: time.Hour, Retry: 10 * time.Second}
}

// ServerTLS holds the listener's certificate and the roots it trusts,
// renewed by Run.
type ServerTLS struct {
	cfg TLSConfig
	log *slog.Logger
	cur atomic.Pointer[serverMaterial]
}

type serverMaterial struct {
	cert  *tls.Certificate
	roots *x509.CertPool
	// renewAt is when Run asks for the next certificate.
	renewAt time.Time
}

// NewServerTLS checks cfg; Renew asks for the first certificate, Run
// for the next ones. Until there is one, handshakes fail: a worker's
// listener (its control socket cannot issue) serves once it is promoted.
func NewServerTLS(cfg TLSConfig) (*ServerTLS, error) {
	def := DefaultTLSConfig()
	if cfg.Issuer == nil || len(cfg.Hosts) == 0 {
		return nil, errors.New("dockerapi: TLSConfig.Issuer and Hosts are required")
	}
	if err := pki.CheckCertificateHosts(cfg.Hosts); err != nil {
		return nil, fmt.Errorf("dockerapi: the TLS listener's hosts: %w", err)
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = def.Refresh
	}
	if cfg.Retry <= 0 {
		cfg.Retry = def.Retry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &ServerTLS{cfg: cfg, log: cfg.Logger}, nil
}

// Renew asks for a certificate for a fresh key, kept in memory only (a
// restart asks again), and serves it from the next handshake on.
func (s *ServerTLS) Renew(ctx context.Context) error {
	keyPEM, csrPEM, err := client.NewKeyAndCSR()
	if err != nil {
		return err
	}
	cc, err := s.cfg.Issuer.IssueClientCertificate(ctx, csrPEM, s.cfg.Hosts)
	if err != nil {
		return fmt.Errorf("dockerapi: the TLS listener's certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(cc.Certificate, keyPEM)
	if err != nil {
		return fmt.Errorf("dockerapi: the TLS listener's certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cc.CA) {
		return errors.New("dockerapi: the TLS listener's certificate came with no CA certificate")
	}
	now := time.Now()
	renewAt := now.Add(s.cfg.Refresh)
	if cert.Leaf != nil {
		if half := cert.Leaf.NotBefore.Add(cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore) / 2); half.Before(renewAt) {
			renewAt = half
		}
	}
	s.cur.Store(&serverMaterial{cert: &cert, roots: roots, renewAt: renewAt})
	s.log.Info("Docker API TLS certificate issued", "id", cc.ID, "hosts", s.cfg.Hosts, "not_after", cc.NotAfter, "renew_at", renewAt)
	return nil
}

// Run renews the certificate until ctx ends: at once when there is none,
// at renewAt, and after a failure every Retry (the current one, if any,
// serves meanwhile).
func (s *ServerTLS) Run(ctx context.Context) {
	failures := 0
	for {
		var wait time.Duration
		if m := s.cur.Load(); m != nil {
			wait = time.Until(m.renewAt)
		}
		if failures > 0 {
			wait = min(wait, s.cfg.Retry)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := s.Renew(ctx)
		switch {
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			return
		default:
			// A worker asks every Retry until it is promoted: say so once.
			level := slog.LevelWarn
			if failures > 0 {
				level = slog.LevelDebug
			}
			s.log.Log(ctx, level, "Docker API TLS certificate not issued; retrying", "err", err, "every", s.cfg.Retry)
			failures++
		}
	}
}

// Certificate is the certificate served now (nil before the first).
func (s *ServerTLS) Certificate() *tls.Certificate {
	if m := s.cur.Load(); m != nil {
		return m.cert
	}
	return nil
}

// Config is the listener's TLS configuration: every handshake takes the
// current certificate and roots, and a client certificate of the cluster
// CA is required.
func (s *ServerTLS) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			if m == nil {
				return nil, errNoServerCert
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*m.cert},
				ClientCAs:    m.roots,
				ClientAuth:   tls.RequireAndVerifyClientCert,
			}, nil
		},
	}
}

var errNoServerCert = errors.New("dockerapi: the TLS listener has no certificate yet (the cluster CA issues it through a manager's control API)")

// checkPeer admits a request over TLS from a client or a manager; a
// request without TLS (the Unix socket, whose permissions authenticate)
// passes.
func checkPeer(r *http.Request) error {
	if r.TLS == nil {
		return nil
	}
	id, err := pki.PeerIdentity(*r.TLS)
	if err != nil {
		return err
	}
	switch id.Role {
	case pki.RoleClient, pki.RoleManager:
		return nil
	}
	return fmt.Errorf("a certificate of role %s is refused: the Docker API takes client certificates (apiaryctl swarm ca --client-bundle) and managers'", id.Role)
}
