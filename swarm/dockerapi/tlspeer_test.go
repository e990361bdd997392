package dockerapi

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"testing"
)

// checkPeer admits the client and manager roles over TLS and the Unix
// socket (no TLS); a worker, an unverified certificate or none are
// refused.
func TestCheckPeer(t *testing.T) {
	cert := func(role string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: "id", OrganizationalUnit: []string{role}, Organization: []string{"cluster"}}}
	}
	verified := func(c *x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	for name, tc := range map[string]struct {
		state *tls.ConnectionState
		ok    bool
	}{
		"unix socket":  {nil, true},
		"client":       {verified(cert("apiary-client")), true},
		"manager":      {verified(cert("apiary-manager")), true},
		"worker":       {verified(cert("apiary-worker")), false},
		"unknown role": {verified(cert("admin")), false},
		"unverified":   {&tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert("apiary-client")}}, false},
		"none":         {&tls.ConnectionState{}, false},
	} {
		if err := checkPeer(&http.Request{TLS: tc.state}); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", name, err, tc.ok)
		}
	}
}
