// Package pkitest holds test helpers for clusters that use package pki: an
// external CA to sign their certificates.
package pkitest

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudflare/cfssl/api/signhandler"
	"github.com/cloudflare/cfssl/auth"
	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
	"github.com/cloudflare/cfssl/initca"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
)

// ExternalCA is a cfssl signer serving cfssl's own sign handlers, as
// `cfssl serve` mounts them (/api/v1/cfssl/sign, or authsign when it was
// started with an auth key), on a loopback httptest server. It signs with a
// root whose key the cluster never holds.
type ExternalCA struct {
	// URL is the signer's base URL.
	URL string
	// RootCertPEM is the root it signs under.
	RootCertPEM []byte
	// Calls counts the requests it received.
	Calls atomic.Int64
}

// StartExternalCA starts a signer that issues 1-hour certificates; authKey
// (hex) makes it require cfssl's HMAC tokens. It stops when the test ends.
func StartExternalCA(t testing.TB, authKey string) *ExternalCA {
	t.Helper()
	certPEM, _, keyPEM, err := initca.New(&csr.CertificateRequest{
		CN:         "external-root",
		Names:      []csr.Name{{O: "external-org", OU: "external-ca"}},
		KeyRequest: &csr.KeyRequest{A: "ecdsa", S: 256},
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := helpers.ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := helpers.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	profile := &config.SigningProfile{Usage: []string{"signing", "server auth", "client auth"}, Expiry: time.Hour, ExpiryString: "1h"}
	if authKey != "" {
		if profile.Provider, err = auth.New(authKey, nil); err != nil {
			t.Fatal(err)
		}
	}
	s, err := local.NewSigner(key, cert, signer.DefaultSigAlgo(key), &config.Signing{Profiles: map[string]*config.SigningProfile{}, Default: profile})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if authKey == "" {
		h, err := signhandler.NewHandlerFromSigner(s)
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle("/api/v1/cfssl/sign", h)
	} else {
		h, err := signhandler.NewAuthHandlerFromSigner(s)
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle("/api/v1/cfssl/authsign", h)
	}
	ext := &ExternalCA{RootCertPEM: certPEM}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ext.Calls.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ext.URL = srv.URL
	return ext
}
