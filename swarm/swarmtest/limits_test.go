package swarmtest_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/rpc"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// declaredCall starts a gRPC call to method on addr by hand, over HTTP/2,
// whose one request message declares (in its length prefix) size bytes,
// and then sends zeros for as long as the server lets it. It returns the
// status the server answered with and how many bytes of the message had
// been sent when the answer came: a server that refuses before reading
// answers after a flow-control window's worth at most, whatever size says.
func declaredCall(t *testing.T, addr, method string, cert func(*tls.CertificateRequestInfo) (*tls.Certificate, error), size uint32) (codes.Code, int64) {
	t.Helper()
	tr := &http2.Transport{TLSClientConfig: &tls.Config{
		MinVersion:           tls.VersionTLS13,
		InsecureSkipVerify:   true, // the server's identity is not what is tested
		GetClientCertificate: cert,
	}}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	var sent atomic.Int64
	go func() {
		prefix := make([]byte, 5)
		binary.BigEndian.PutUint32(prefix[1:], size)
		if _, err := pw.Write(prefix); err != nil {
			return
		}
		zeros := make([]byte, 16<<10)
		for int64(size) > sent.Load() {
			n, err := pw.Write(zeros)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
		pw.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+method, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc+apiary-json")
	req.Header.Set("TE", "trailers")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	answeredAfter := sent.Load()
	defer resp.Body.Close()
	pr.CloseWithError(io.ErrClosedPipe)
	st := resp.Header.Get("Grpc-Status")
	if st == "" {
		_, _ = io.Copy(io.Discard, resp.Body)
		st = resp.Trailer.Get("Grpc-Status")
	}
	code, err := strconv.Atoi(st)
	if err != nil {
		t.Fatalf("%s: no grpc-status in the answer (headers %v, trailers %v)", method, resp.Header, resp.Trailer)
	}
	return codes.Code(code), answeredAfter
}

// Callers meet the limits of their class before the server reads their
// request (issue 12, item 3): a caller without a certificate declaring a
// 100 MiB certificate request, or calling a method it may not call, a
// worker declaring a 100 MiB registration, and a manager declaring a
// 100 MiB raft frame are all refused after at most a flow-control window
// of it was sent; none of it is buffered.
func TestLargeMessagesRefusedBeforeTheyAreRead(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1})
	var worker, manager *swarmtest.Member
	for _, m := range c.Members {
		if m.Manager {
			manager = m
		} else {
			worker = m
		}
	}
	certOf := func(m *swarmtest.Member) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		id := identityOf(t, m)
		return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return id.Certificate(), nil }
	}
	const huge = 100 << 20
	// What one connection can have sent before the answer: the server's
	// flow-control window for the class (64 KiB for joiners and workers,
	// rpc.StreamWindow for managers), plus what the client's writer had in
	// hand.
	const small, large = 64<<10 + 64<<10, rpc.StreamWindow + 64<<10
	cases := []struct {
		name   string
		method string
		cert   func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
		want   codes.Code
		window int64
	}{
		{"anonymous certificate request", pki.MethodIssueNodeCertificate, nil, codes.ResourceExhausted, small},
		{"anonymous dispatcher call", "/apiary.Dispatcher/Register", nil, codes.Unauthenticated, small},
		{"anonymous raft frame", "/apiary.raft.v1.Raft/Stream", nil, codes.Unauthenticated, small},
		{"anonymous control call", "/apiary.Control/CreateService", nil, codes.Unauthenticated, small},
		{"worker registration", "/apiary.Dispatcher/Register", certOf(worker), codes.ResourceExhausted, small},
		{"worker raft frame", "/apiary.raft.v1.Raft/Stream", certOf(worker), codes.PermissionDenied, small},
		{"manager raft frame", "/apiary.raft.v1.Raft/Stream", certOf(manager), codes.ResourceExhausted, large},
	}
	for _, tc := range cases {
		code, sent := declaredCall(t, manager.Addr, tc.method, tc.cert, huge)
		if code != tc.want {
			t.Errorf("%s: answered %s, want %s", tc.name, code, tc.want)
		}
		if sent > tc.window {
			t.Errorf("%s: answered only after %d bytes of the message were sent (at most %d expected)", tc.name, sent, tc.window)
		}
		t.Logf("%s: %s after %d of %d bytes", tc.name, code, sent, huge)
	}
}
