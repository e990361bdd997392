package raft

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
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/apiary-io/apiary/internal/testutil"
)

// recorder is a Handler that keeps what it receives.
type recorder struct {
	mu      sync.Mutex
	msgs    []*raftpb.Message
	snap    []byte
	removed []uint64
	refuse  bool
}

func (r *recorder) Step(_ context.Context, m *raftpb.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse {
		return ErrRemoved
	}
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) ReceiveSnapshot(_ context.Context, m *raftpb.Message, data io.Reader) error {
	b, err := io.ReadAll(data)
	r.mu.Lock()
	r.snap = b
	r.mu.Unlock()
	return err
}

func (r *recorder) ReportUnreachable(uint64) {}

func (r *recorder) ReportRemoved(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, id)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "manager"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
	}
}

// Messages and a chunked snapshot cross a mutual-TLS gRPC transport; the
// Authorize hook sees the claimed sender; a refusal because the sender was
// removed reaches the sender's handler.
func TestGRPCTransportTLS(t *testing.T) {
	cfg := selfSignedTLS(t)
	var authorized sync.Map
	mk := func() (*GRPCTransport, *recorder) {
		tr, err := NewGRPCTransport(GRPCConfig{ListenAddr: "127.0.0.1:0", TLS: cfg, ChunkSize: 1000, Logger: testLogger(t),
			Authorize: func(ctx context.Context, from uint64) error {
				authorized.Store(from, true)
				if from == 66 {
					return errors.New("not a manager")
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		r := &recorder{}
		return tr, r
	}
	a, ra := mk()
	b, rb := mk()
	defer a.Stop()
	defer b.Stop()
	a.Start(1, ra)
	b.Start(2, rb)
	a.AddPeer(2, b.Addr())
	b.AddPeer(1, a.Addr())

	for i := 0; i < 10; i++ {
		a.Send([]*raftpb.Message{{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(1)), To: new(uint64(2)), Term: new(uint64(i))}})
	}
	testutil.Eventually(t, 10*time.Second, "messages over TLS", func() bool { return rb.count() == 10 })
	if _, ok := authorized.Load(uint64(1)); !ok {
		t.Fatal("Authorize was not called with the sender's ID")
	}

	data := make([]byte, 10_500) // 11 chunks of 1000 bytes
	rand.Read(data)
	m := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2))}
	if err := a.SendSnapshot(context.Background(), m, bytesReader(data)); err != nil {
		t.Fatal(err)
	}
	rb.mu.Lock()
	got := rb.snap
	rb.mu.Unlock()
	if string(got) != string(data) {
		t.Fatalf("snapshot data: %d bytes, want %d", len(got), len(data))
	}

	rb.mu.Lock()
	rb.refuse = true
	rb.mu.Unlock()
	a.Send([]*raftpb.Message{{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(1)), To: new(uint64(2))}})
	testutil.Eventually(t, 10*time.Second, "the removed sender to be told", func() bool {
		ra.mu.Lock()
		defer ra.mu.Unlock()
		return len(ra.removed) > 0 && ra.removed[0] == 2
	})

	// A plaintext client cannot talk to a TLS server.
	c, _ := NewGRPCTransport(GRPCConfig{ListenAddr: "127.0.0.1:0", Logger: testLogger(t)})
	defer c.Stop()
	c.Start(3, &recorder{})
	c.AddPeer(2, b.Addr())
	before := rb.count()
	err := c.SendSnapshot(context.Background(), &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(uint64(3)), To: new(uint64(2))}, bytesReader([]byte("x")))
	if err == nil || rb.count() != before {
		t.Fatalf("plaintext peer got through: %v", err)
	}
}

type bytesReaderT struct {
	b []byte
}

func bytesReader(b []byte) io.Reader { return &bytesReaderT{b} }

func (r *bytesReaderT) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// The in-memory network drops, delays and partitions as told.
func TestMemNetworkControls(t *testing.T) {
	nw := NewNetwork()
	defer nw.Close()
	ta, tb := nw.Transport(1), nw.Transport(2)
	ra, rb := &recorder{}, &recorder{}
	ta.Start(1, ra)
	tb.Start(2, rb)
	send := func(n int) {
		for i := 0; i < n; i++ {
			ta.Send([]*raftpb.Message{{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(1)), To: new(uint64(2))}})
		}
	}
	send(5)
	testutil.Eventually(t, 5*time.Second, "delivery", func() bool { return rb.count() == 5 })

	nw.Partition([]uint64{1}, []uint64{2})
	send(5)
	if err := ta.SendSnapshot(context.Background(), &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: new(uint64(1)), To: new(uint64(2))}, bytesReader([]byte("x"))); err == nil {
		t.Fatal("snapshot crossed a partition")
	}
	nw.Heal()
	nw.SetDelay(1, 2, 200*time.Millisecond, 0)
	start := time.Now()
	send(1)
	testutil.Eventually(t, 5*time.Second, "delayed delivery", func() bool { return rb.count() == 6 })
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("delivered after %v, want >= 200ms", d)
	}
	nw.Heal()
	nw.SetDrop(0, 0, 1)
	send(20)
	nw.Heal()
	send(1)
	testutil.Eventually(t, 5*time.Second, "delivery after heal", func() bool { return rb.count() == 7 })
}
