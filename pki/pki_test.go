package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

func TestIssueAndVerify(t *testing.T) {
	_, ca := newTestCA(t, 0)
	mgr := newTestNode(t, ca, RoleManager)
	wrk := newTestNode(t, ca, RoleWorker)

	leaf := wrk.Leaf()
	id := wrk.Identity()
	if leaf.Subject.CommonName != id.NodeID || !slices.Equal(leaf.Subject.OrganizationalUnit, []string{string(RoleWorker)}) ||
		!slices.Equal(leaf.Subject.Organization, []string{testClusterID}) {
		t.Fatalf("subject %v, identity %+v", leaf.Subject, id)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("node key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := leaf.NotAfter.Sub(time.Now()); life < api.DefaultNodeCertExpiry-time.Hour || life > api.DefaultNodeCertExpiry {
		t.Fatalf("default lifetime: expires in %v, want ~90 days", life)
	}
	root, err := ParseRootCA(mustCA(t, ca).RootCert, mustCA(t, ca).RootKey)
	if err != nil {
		t.Fatal(err)
	}
	if pub, ok := root.Cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() || !root.Cert.IsCA {
		t.Fatalf("root is not an ECDSA P-256 CA")
	}

	// Mutual TLS both ways; the server reads the client's identity from the
	// verified chain, the client verifies the server against its bundle.
	for _, c := range []struct{ server, client *NodeIdentity }{{mgr, wrk}, {wrk, mgr}, {mgr, mgr}} {
		st, err := handshake(c.server.ServerTLSConfig(), c.client.ClientTLSConfig(""))
		if err != nil {
			t.Fatalf("%s -> %s: %v", c.client.Identity().Role, c.server.Identity().Role, err)
		}
		got, err := PeerIdentity(st)
		if err != nil {
			t.Fatal(err)
		}
		want := c.client.Identity()
		if got.NodeID != want.NodeID || got.Role != want.Role || got.ClusterID != testClusterID {
			t.Fatalf("server saw %+v, want %+v", got, want)
		}
		if st.Version != 0x0304 {
			t.Fatalf("TLS version %x, want 1.3", st.Version)
		}
	}
	// A worker dialing with ServerRole=manager refuses a worker server.
	if _, err := handshake(wrk.ServerTLSConfig(), mgr.ClientTLSConfig(RoleManager)); err == nil || !strings.Contains(err.Error(), "expected apiary-manager") {
		t.Fatalf("want role refusal, got %v", err)
	}
	// The server requires a client certificate.
	noCert := JoinClientTLSConfig(root.Digest)
	if _, err := handshake(mgr.ServerTLSConfig(), noCert); err == nil {
		t.Fatal("server accepted a client without a certificate")
	}
}

func mustCA(t testing.TB, ca *CAServer) CARecord {
	t.Helper()
	rec, err := ca.state.CA(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestRejectCertificateFromAnotherCA(t *testing.T) {
	_, ca := newTestCA(t, 0)
	_, other := newTestCA(t, 0) // same cluster ID, different root
	mine := newTestNode(t, ca, RoleManager)
	theirs := newTestNode(t, other, RoleManager)

	if _, err := handshake(mine.ServerTLSConfig(), theirs.ClientTLSConfig("")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("server accepted a client from another CA: %v", err)
	}
	if _, err := handshake(theirs.ServerTLSConfig(), mine.ClientTLSConfig("")); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("client accepted a server from another CA: %v", err)
	}
}

func TestRejectExpiredCertificate(t *testing.T) {
	t.Parallel()
	st, good := newTestCA(t, time.Hour)
	valid := newTestNode(t, good, RoleManager)
	// Certificates of this CA live two seconds; wait until one is expired.
	short := NewCAServer(st, CAServerOptions{Logger: testutil.DiscardLogger()})
	if err := st.UpdateCA(context.Background(), func(r *CARecord) error { r.NodeCertExpiry = 2 * time.Second; return nil }); err != nil {
		t.Fatal(err)
	}
	expired := newTestNode(t, short, RoleWorker)
	time.Sleep(time.Until(expired.Leaf().NotAfter) + 1100*time.Millisecond)
	if !expired.Leaf().NotAfter.Before(time.Now()) {
		t.Fatalf("test certificate not expired: %v", expired.Leaf().NotAfter)
	}
	if _, err := handshake(valid.ServerTLSConfig(), expired.ClientTLSConfig("")); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("server accepted an expired client certificate: %v", err)
	}
	if _, err := handshake(expired.ServerTLSConfig(), valid.ClientTLSConfig("")); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("client accepted an expired server certificate: %v", err)
	}
	// It still loads from disk, so the node can tell it must rejoin.
	if n, err := LoadNodeIdentity(expired.DataDir()); err != nil || !n.Leaf().NotAfter.Before(time.Now()) {
		t.Fatalf("load expired identity: %v", err)
	}
}

func TestCASetsNamesWhateverTheCSRAsks(t *testing.T) {
	st, ca := newTestCA(t, time.Hour)
	rec := mustCA(t, ca)
	workerTok, _ := rec.JoinToken(RoleWorker)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bc, _ := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{true})
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: "some-manager-id", OrganizationalUnit: []string{string(RoleManager)}, Organization: []string{"other-cluster"}},
		DNSNames:        []string{"evil.example"},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	resp, err := ca.IssueNodeCertificate(context.Background(), &IssueRequest{CSR: csrPEM, Token: workerTok})
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := parseCertsPEM(resp.CertificateChain)
	leaf := certs[0]
	id, _ := identityFromCert(leaf)
	if id.Role != RoleWorker || id.ClusterID != testClusterID || id.NodeID == "some-manager-id" || id.NodeID != resp.NodeID {
		t.Fatalf("CA honoured the CSR's names: %+v", id)
	}
	if leaf.IsCA || slices.Contains(leaf.DNSNames, "evil.example") || !slices.Equal(leaf.DNSNames, []string{id.NodeID, string(RoleWorker)}) {
		t.Fatalf("CA honoured the CSR's extensions: CA=%v SANs=%v", leaf.IsCA, leaf.DNSNames)
	}
	if r, ok := st.DesiredRole(id.NodeID); !ok || r != RoleWorker {
		t.Fatalf("new node not registered: %v %v", r, ok)
	}
	// A joiner cannot pick its node ID.
	if _, err := ca.IssueNodeCertificate(context.Background(), &IssueRequest{CSR: csrPEM, Token: workerTok, NodeID: "chosen"}); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("joiner chose its node ID: %v", err)
	}
	// Garbage CSR.
	if _, err := ca.IssueNodeCertificate(context.Background(), &IssueRequest{CSR: []byte("nope"), Token: workerTok}); !errors.Is(err, ErrBadCSR) {
		t.Fatalf("bad CSR: %v", err)
	}
	// Neither token nor certificate.
	if _, err := ca.IssueNodeCertificate(context.Background(), &IssueRequest{CSR: csrPEM}); !errors.Is(err, ErrNotAuthenticated) {
		t.Fatalf("no credentials: %v", err)
	}
}

func TestJoinTokenParseValidateRotate(t *testing.T) {
	_, ca := newTestCA(t, 0)
	rec := mustCA(t, ca)
	worker, manager, err := ca.JoinTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if worker == manager || !strings.HasPrefix(worker, "APTKN-1-") {
		t.Fatalf("tokens %q %q", worker, manager)
	}
	tok, err := ParseJoinToken(worker)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := rec.Root()
	if tok.RootDigest != root.Digest || tok.String() != worker {
		t.Fatalf("token digest %s, root %s", tok.RootDigest, root.Digest)
	}
	for _, c := range []struct {
		tok  string
		role Role
		err  error
	}{
		{worker, RoleWorker, nil},
		{manager, RoleManager, nil},
		{"", "", ErrTokenMalformed},
		{"SWMTKN-1-" + tok.RootDigest + "-" + tok.Secret, "", ErrTokenMalformed},
		{"APTKN-1-" + tok.RootDigest, "", ErrTokenMalformed},
		{"APTKN-1-" + strings.ToUpper(tok.RootDigest) + "-" + tok.Secret, "", ErrTokenMalformed},
		{"APTKN-1-" + tok.RootDigest + "-" + tok.Secret[1:], "", ErrTokenMalformed},
		{"APTKN-2-" + tok.RootDigest + "-" + tok.Secret, "", ErrTokenVersion},
		{JoinToken{RootDigest: strings.Repeat("1", digestLen), Secret: tok.Secret}.String(), "", ErrTokenWrongCA},
		{JoinToken{RootDigest: tok.RootDigest, Secret: strings.Repeat("z", secretLen)}.String(), "", ErrTokenInvalid},
	} {
		role, err := rec.ValidateJoinToken(c.tok)
		if !errors.Is(err, c.err) || role != c.role {
			t.Errorf("ValidateJoinToken(%q) = %q, %v; want %q, %v", c.tok, role, err, c.role, c.err)
		}
		if err != nil && err.Error() == "" {
			t.Errorf("empty error message")
		}
	}

	// Rotation: the old worker token stops working, the manager one does not.
	newWorker, err := ca.RotateJoinToken(context.Background(), RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	rec = mustCA(t, ca)
	if _, err := rec.ValidateJoinToken(worker); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("rotated token accepted: %v", err)
	}
	if r, err := rec.ValidateJoinToken(newWorker); err != nil || r != RoleWorker {
		t.Fatalf("new token: %v %v", r, err)
	}
	if r, err := rec.ValidateJoinToken(manager); err != nil || r != RoleManager {
		t.Fatalf("manager token after worker rotation: %v %v", r, err)
	}
}

func TestJoinOverGRPC(t *testing.T) {
	st, ca := newTestCA(t, time.Hour)
	mgr := newTestNode(t, ca, RoleManager)
	srv := startServer(t, mgr, ca, st)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	worker, manager, _ := ca.JoinTokens(ctx)

	for _, c := range []struct {
		token string
		role  Role
	}{{worker, RoleWorker}, {manager, RoleManager}} {
		dir := t.TempDir()
		n, err := Join(ctx, srv.addr, c.token, dir)
		if err != nil {
			t.Fatal(err)
		}
		id := n.Identity()
		if id.Role != c.role || id.ClusterID != testClusterID || id.NodeID == "" {
			t.Fatalf("joined as %+v, want role %s", id, c.role)
		}
		// Persisted with 0600 and loads back the same identity.
		for _, f := range []string{keyFile, certFile, bundleFile} {
			fi, err := os.Stat(filepath.Join(dir, certDir, f))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v mode %v", f, err, fi.Mode())
			}
		}
		back, err := LoadNodeIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		if back.Identity() != id || !bytes.Equal(back.Leaf().Raw, n.Leaf().Raw) {
			t.Fatalf("reloaded %+v, want %+v", back.Identity(), id)
		}
		// The new node talks to the manager over mutual TLS.
		r, err := callEcho(ctx, dial(t, back, srv.addr), methodAny)
		if err != nil || r.NodeID != id.NodeID {
			t.Fatalf("echo after join: %+v %v", r, err)
		}
	}

	// A rotated token gets a clear, typed error over the wire.
	if _, err := ca.RotateJoinToken(ctx, RoleWorker); err != nil {
		t.Fatal(err)
	}
	_, err := Join(ctx, srv.addr, worker, t.TempDir())
	if !errors.Is(err, ErrTokenInvalid) || status.Code(errors.Unwrap(err)) != codes.Unauthenticated {
		t.Fatalf("join with rotated token: %v (code %v)", err, status.Code(errors.Unwrap(err)))
	}
	if _, err := Join(ctx, srv.addr, "APTKN-9-x-y", t.TempDir()); !errors.Is(err, ErrTokenVersion) {
		t.Fatalf("join with bad token: %v", err)
	}
}

func TestJoinRefusesManagerWithAnotherCA(t *testing.T) {
	_, realCA := newTestCA(t, time.Hour)
	fakeState, fakeCA := newTestCA(t, time.Hour)
	fake := newTestNode(t, fakeCA, RoleManager)
	srv := startServer(t, fake, fakeCA, fakeState)

	worker, _, _ := realCA.JoinTokens(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Join(ctx, srv.addr, worker, t.TempDir())
	if !errors.Is(err, ErrCAPinMismatch) {
		t.Fatalf("join with a manager of another CA: %v", err)
	}
	if n := srv.requests.Load(); n != 0 {
		t.Fatalf("the impostor received %d requests; the token must never be sent", n)
	}
	t.Logf("refused: %v", err)
}

func TestJoinRefusesWorkerAsCA(t *testing.T) {
	st, ca := newTestCA(t, time.Hour)
	wrk := newTestNode(t, ca, RoleWorker)
	srv := startServer(t, wrk, ca, st)
	worker, _, _ := ca.JoinTokens(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Join(ctx, srv.addr, worker, ""); !errors.Is(err, ErrCAPinMismatch) || srv.requests.Load() != 0 {
		t.Fatalf("joined through a worker: %v (%d requests)", err, srv.requests.Load())
	}
}

func TestAuthorizerRoles(t *testing.T) {
	st, ca := newTestCA(t, time.Hour)
	mgr := newTestNode(t, ca, RoleManager)
	wrk := newTestNode(t, ca, RoleWorker)
	srv := startServer(t, mgr, ca, st)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mconn, wconn := dial(t, mgr, srv.addr), dial(t, wrk, srv.addr)

	if r, err := callEcho(ctx, mconn, methodManager); err != nil || r.NodeID != mgr.Identity().NodeID || r.Role != RoleManager {
		t.Fatalf("manager calling manager method: %+v %v", r, err)
	}
	_, err := callEcho(ctx, wconn, methodManager)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "has role apiary-worker") {
		t.Fatalf("worker calling manager method: %v", err)
	}
	t.Logf("worker refused: %v", err)
	if r, err := callEcho(ctx, wconn, methodAny); err != nil || r.Role != RoleWorker {
		t.Fatalf("worker calling shared method: %+v %v", r, err)
	}
	// Streams too.
	for _, c := range []struct {
		conn *grpc.ClientConn
		code codes.Code
	}{{mconn, codes.OK}, {wconn, codes.PermissionDenied}} {
		s, err := c.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, methodManagerStr, grpc.CallContentSubtype(CodecName))
		if err == nil {
			err = s.SendMsg(&struct{}{})
		}
		if err == nil {
			err = s.CloseSend()
		}
		var r echoReply
		if err == nil {
			err = s.RecvMsg(&r)
		}
		if status.Code(err) != c.code {
			t.Fatalf("stream: got %v, want %v", err, c.code)
		}
	}
	// Methods missing from the policy are refused, even to managers.
	if _, err := callEcho(ctx, mconn, methodUnlisted); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("unlisted method: %v", err)
	}
	// A caller without a certificate reaches the CA only.
	digest := mgr.RootDigests()[0]
	anon, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(credentials.NewTLS(JoinClientTLSConfig(digest))))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := callEcho(ctx, anon, methodAny); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous caller on a worker method: %v", err)
	}
	if _, err := NewCAClient(anon).IssueNodeCertificate(ctx, &IssueRequest{CSR: []byte("x"), Token: "bad"}); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("anonymous caller on the CA: %v", err)
	}
}

func TestRemovedNodeRefused(t *testing.T) {
	st, ca := newTestCA(t, time.Hour)
	mgr := newTestNode(t, ca, RoleManager)
	wrk := newTestNode(t, ca, RoleWorker)
	srv := startServer(t, mgr, ca, st)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := dial(t, wrk, srv.addr)
	if _, err := callEcho(ctx, conn, methodAny); err != nil {
		t.Fatal(err)
	}
	st.RemoveNode(wrk.Identity().NodeID)
	_, err := callEcho(ctx, conn, methodAny)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("removed node's call: %v", err)
	}
	// Its still-valid certificate cannot be renewed either.
	if err := wrk.Renew(ctx, NewCAClient(conn)); !errors.Is(err, ErrNodeRemoved) {
		t.Fatalf("removed node renewed: %v", err)
	}
	if err := wrk.Renew(ctx, ca.LocalIssuer(wrk)); !errors.Is(err, ErrNodeRemoved) {
		t.Fatalf("removed node renewed locally: %v", err)
	}
	if !wrk.Leaf().NotAfter.After(time.Now()) {
		t.Fatal("the point is that the certificate is still valid")
	}
}

func TestRenewalKeepsIdentityAndFollowsRoleChange(t *testing.T) {
	st, ca := newTestCA(t, time.Hour)
	mgr := newTestNode(t, ca, RoleManager)
	wrk := newTestNode(t, ca, RoleWorker)
	srv := startServer(t, mgr, ca, st)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := dial(t, wrk, srv.addr)
	before := wrk.Identity()
	if err := wrk.Renew(ctx, NewCAClient(conn)); err != nil {
		t.Fatal(err)
	}
	after := wrk.Identity()
	if after.NodeID != before.NodeID || after.Role != RoleWorker || after.Serial == before.Serial {
		t.Fatalf("renewal: before %+v after %+v", before, after)
	}
	// A renewing node cannot ask for another node's certificate.
	_, csrPEM, _ := newKeyAndCSR()
	if _, err := NewCAClient(conn).IssueNodeCertificate(ctx, &IssueRequest{CSR: csrPEM, NodeID: mgr.Identity().NodeID}); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("renewed as another node: %v", err)
	}
	// Promotion is the cluster's decision, applied at the next renewal.
	st.SetRole(after.NodeID, RoleManager)
	if err := wrk.Renew(ctx, NewCAClient(conn)); err != nil {
		t.Fatal(err)
	}
	if r := wrk.Identity().Role; r != RoleManager {
		t.Fatalf("after promotion: %s", r)
	}
	back, err := LoadNodeIdentity(wrk.DataDir())
	if err != nil || back.Identity() != wrk.Identity() {
		t.Fatalf("persisted renewal: %v", err)
	}
}

func TestLoadCompletesInterruptedSave(t *testing.T) {
	_, ca := newTestCA(t, time.Hour)
	n := newTestNode(t, ca, RoleWorker)
	dir := filepath.Join(n.DataDir(), certDir)
	oldCert, _ := os.ReadFile(filepath.Join(dir, certFile))
	if err := n.Renew(context.Background(), ca.LocalIssuer(n)); err != nil {
		t.Fatal(err)
	}
	// Simulate a crash after the key was renamed but before the certificate.
	newCert, _ := os.ReadFile(filepath.Join(dir, certFile))
	_ = os.WriteFile(filepath.Join(dir, certFile+pendingExt), newCert, 0o600)
	_ = os.WriteFile(filepath.Join(dir, certFile), oldCert, 0o600)
	back, err := LoadNodeIdentity(n.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	if back.Identity().Serial != n.Identity().Serial {
		t.Fatalf("recovered serial %s, want %s", back.Identity().Serial, n.Identity().Serial)
	}
}

func TestRoleMapping(t *testing.T) {
	for _, r := range []Role{RoleManager, RoleWorker} {
		back, err := RoleFromAPI(r.APIRole())
		if err != nil || back != r {
			t.Fatalf("%s: %v %v", r, back, err)
		}
	}
	if _, err := RoleFromAPI("admin"); err == nil {
		t.Fatal("unknown role accepted")
	}
}

func TestCFSSLLogsGoToSlog(t *testing.T) {
	var buf bytes.Buffer
	SetCFSSLLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer SetCFSSLLogger(nil)
	cflog.Warning("from cfssl")
	if s := buf.String(); !strings.Contains(s, "from cfssl") || !strings.Contains(s, "component=cfssl") || !strings.Contains(s, "WARN") {
		t.Fatalf("cfssl log not routed: %q", s)
	}
}

// otherJSON stands for the JSON codec another package forces on a whole
// server (swarm/rpc does, under its own name): the CA service must work there.
type otherJSON struct{}

func (otherJSON) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (otherJSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (otherJSON) Name() string                       { return "other-json" }

func TestCAServiceOnServerWithForcedJSONCodec(t *testing.T) {
	st, ca := newTestCA(t, time.Hour)
	mgr := newTestNode(t, ca, RoleManager)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	az := NewAuthorizer(CAPolicy(), st, testutil.DiscardLogger())
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(mgr.JoinServerTLSConfig())), grpc.ForceServerCodec(otherJSON{}),
		grpc.UnaryInterceptor(az.UnaryServerInterceptor()))
	RegisterCAService(srv, ca)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	worker, _, _ := ca.JoinTokens(ctx)
	n, err := Join(ctx, lis.Addr().String(), worker, "")
	if err != nil || n.Identity().Role != RoleWorker {
		t.Fatalf("join through a forced-codec server: %v", err)
	}
	if err := n.Renew(ctx, NewCAClient(dial(t, n, lis.Addr().String()))); err != nil {
		t.Fatal(err)
	}
	if _, err := Join(ctx, lis.Addr().String(), "APTKN-1-"+strings.Repeat("0", digestLen)+"-"+strings.Repeat("0", secretLen), ""); !errors.Is(err, ErrCAPinMismatch) {
		t.Fatalf("pin error: %v", err)
	}
	if _, err := ca.RotateJoinToken(ctx, RoleWorker); err != nil {
		t.Fatal(err)
	}
	if _, err := Join(ctx, lis.Addr().String(), worker, ""); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("typed error through a forced-codec server: %v", err)
	}
}
