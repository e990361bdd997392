package dockerapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	docker "github.com/docker/docker/client"

	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
	"github.com/apiary-io/apiary/swarm/dockerapi"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// serveTLS serves member m's Docker API on a loopback TCP port with the
// listener's certificate from the cluster CA; it returns the address.
func serveTLS(t *testing.T, c *swarmtest.Cluster, m *swarmtest.Member, tcfg dockerapi.TLSConfig) (string, *dockerapi.ServerTLS) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cl := c.Client(m)
	tcfg.Issuer, tcfg.Hosts = cl, []string{"127.0.0.1", m.Name}
	st, err := dockerapi.NewServerTLS(tcfg)
	if err == nil {
		err = st.Renew(ctx)
	}
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cfg := dockerapi.DefaultConfig()
	cfg.Backend = cl
	cfg.Self = func() dockerapi.Self {
		return dockerapi.Self{NodeID: m.Node.NodeID(), Hostname: m.Name, Addr: m.Addr, Manager: true, Executor: "fake"}
	}
	srv, err := dockerapi.New(cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { srv.Serve(ctx, tls.NewListener(l, st.Config())); done <- struct{}{} }()
	go func() { st.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return l.Addr().String(), st
}

// clientBundle is what apiaryctl swarm ca --client-bundle writes, as a
// TLS configuration.
func clientBundle(t *testing.T, issuer dockerapi.CertIssuer) *tls.Config {
	t.Helper()
	keyPEM, csrPEM, err := client.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := issuer.IssueClientCertificate(ctxT(t), csrPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(cc.Certificate, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cc.CA) {
		t.Fatal("no CA in the bundle")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots}
}

func tlsClient(t *testing.T, addr string, cfg *tls.Config) *docker.Client {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	cli, err := docker.NewClientWithOpts(docker.WithHost("tcp://"+addr), docker.WithHTTPClient(hc), docker.WithScheme("https"), docker.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// The Docker API over mutual TLS: a client bundle from the cluster CA
// drives the cluster; the listener's certificate names 127.0.0.1 and the
// node's hostname; a worker's certificate is refused with Docker's 403
// and changes nothing; no certificate, or one of another CA, fails the
// handshake; the listener renews its certificate on its own schedule.
func TestDockerAPIOverMutualTLS(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1})
	mgr, wrk := c.Members[0], c.Members[1]
	tcfg := dockerapi.DefaultTLSConfig()
	tcfg.Refresh = 300 * time.Millisecond
	addr, st := serveTLS(t, c, mgr, tcfg)
	ctx := ctxT(t)

	bundle := clientBundle(t, c.Client(mgr))
	cli := tlsClient(t, addr, bundle)
	nodes, err := cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil || len(nodes) != 2 {
		t.Fatalf("node ls over TLS with a client bundle: %d nodes, %v", len(nodes), err)
	}
	if _, err := cli.ServiceCreate(ctx, swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "nginx"}}}, swarm.ServiceCreateOptions{}); err != nil {
		t.Fatalf("service create over TLS: %v", err)
	}
	leaf := st.Certificate().Leaf
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname(mgr.Name); err != nil {
		t.Error(err)
	}

	// A worker's own node certificate: verified by the cluster CA, but
	// its role is refused on every request.
	wcert, err := tls.LoadX509KeyPair(filepath.Join(wrk.DataDir, "certificates", "node.crt"), filepath.Join(wrk.DataDir, "certificates", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	wcli := tlsClient(t, addr, &tls.Config{Certificates: []tls.Certificate{wcert}, RootCAs: bundle.RootCAs})
	_, err = wcli.ServiceCreate(ctx, swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "evil"},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "nginx"}}}, swarm.ServiceCreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "apiary-worker is refused") {
		t.Errorf("service create with a worker's certificate: %v, want the role refused", err)
	}
	if _, err := wcli.NodeList(ctx, swarm.NodeListOptions{}); err == nil {
		t.Error("node ls with a worker's certificate succeeded")
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/v1.47/services", nil)
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{wcert}, RootCAs: bundle.RootCAs}}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(string(body), `{"message":`) {
		t.Errorf("worker's GET /services: %d %s, want 403 with a Docker error", resp.StatusCode, body)
	}
	services, err := cli.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil || len(services) != 1 || services[0].Spec.Name != "web" {
		t.Errorf("services after the worker's attempt: %+v, %v; want web alone", services, err)
	}

	// No client certificate, or one of another CA: no handshake.
	for name, cfg := range map[string]*tls.Config{
		"no certificate":   {RootCAs: bundle.RootCAs},
		"another CA's":     {RootCAs: bundle.RootCAs, Certificates: []tls.Certificate{selfSigned(t)}},
		"a client bundle ": {RootCAs: bundle.RootCAs, Certificates: bundle.Certificates},
	} {
		conn, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			// TLS 1.3 reports the server's refusal on the first read.
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.Write([]byte("GET /_ping HTTP/1.0\r\n\r\n"))
			if err == nil {
				_, err = conn.Read(make([]byte, 1))
			}
			conn.Close()
		}
		if refused := err != nil && !errors.Is(err, io.EOF); refused != (name != "a client bundle ") {
			t.Errorf("%s: handshake and read: %v", name, err)
		}
	}

	// The listener renews its certificate (Refresh 300 ms here) and keeps
	// serving.
	first := leaf.SerialNumber
	waitFor(t, "the listener to renew its certificate", func() (bool, string) {
		return st.Certificate().Leaf.SerialNumber.Cmp(first) != 0, "serial unchanged"
	})
	if _, err := tlsClient(t, addr, bundle).NodeList(ctx, swarm.NodeListOptions{}); err != nil {
		t.Errorf("node ls after renewal: %v", err)
	}
}

// IssueClientCertificate's bad input is ErrInvalidArgument naming what;
// a worker cannot issue.
func TestIssueClientCertificateInput(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1})
	cl, ctx := c.Client(c.Members[0]), ctxT(t)
	_, csr, err := client.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		csr   []byte
		hosts []string
		want  string
	}{
		"empty":    {nil, nil, "csr is empty"},
		"oversize": {make([]byte, control.MaxCSRSize+1), nil, "at most"},
		"garbage":  {[]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), nil, "csr"},
		"bad host": {csr, []string{"ok.example", "bad host!"}, "hosts[1]"},
		"too many": {csr, make([]string, 17), "hosts"},
	} {
		_, err := cl.IssueClientCertificate(ctx, tc.csr, tc.hosts)
		if !errors.Is(err, control.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want invalid argument naming %q", name, err, tc.want)
		}
	}
	if _, err := c.Client(c.Members[1]).IssueClientCertificate(ctx, csr, nil); !errors.Is(err, control.ErrNotManager) {
		t.Errorf("on a worker: %v, want ErrNotManager", err)
	}
}

// selfSigned is a client certificate of no cluster's CA.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x", OrganizationalUnit: []string{"apiary-manager"}, Organization: []string{"y"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
