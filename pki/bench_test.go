package pki

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkIssueNodeCertificate measures CA throughput: certificates signed
// (cfssl local signer, ECDSA P-256) per second, from a ready CSR.
//   - renew: the CAServer called in process on the renewal path;
//   - join: the same with a join token (token check, new node ID);
//   - grpc: a renewal over a mutual TLS gRPC connection on loopback,
//     including the JSON codec and the Authorizer.
func BenchmarkIssueNodeCertificate(b *testing.B) {
	st, ca := newTestCA(b, 0)
	node := newTestNode(b, ca, RoleWorker)
	_, csrPEM, err := newKeyAndCSR()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	run := func(b *testing.B, issuer CertificateIssuer, req *IssueRequest) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			if _, err := issuer.IssueNodeCertificate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "certs/s")
	}
	b.Run("renew", func(b *testing.B) {
		run(b, ca.LocalIssuer(node), &IssueRequest{CSR: csrPEM})
	})
	b.Run("join", func(b *testing.B) {
		worker, _, _ := ca.JoinTokens(ctx)
		run(b, ca, &IssueRequest{CSR: csrPEM, Token: worker})
	})
	b.Run("grpc", func(b *testing.B) {
		mgr := newTestNode(b, ca, RoleManager)
		srv := startServer(b, mgr, ca, st)
		run(b, NewCAClient(dial(b, node, srv.addr)), &IssueRequest{CSR: csrPEM})
	})
}

// BenchmarkMutualTLSHandshake measures one TLS 1.3 handshake with client
// certificates both sides verify (ECDSA P-256 node certificates):
//   - pipe: both ends in process over net.Pipe, i.e. the CPU cost of the
//     handshake for client and server together;
//   - loopback: a new TCP connection on 127.0.0.1, handshake and a one-byte
//     round trip, i.e. the latency of a fresh connection.
func BenchmarkMutualTLSHandshake(b *testing.B) {
	_, ca := newTestCA(b, 0)
	server := newTestNode(b, ca, RoleManager).ServerTLSConfig()
	client := newTestNode(b, ca, RoleWorker).ClientTLSConfig(RoleManager)

	b.Run("pipe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c1, c2 := net.Pipe()
			errc := make(chan error, 1)
			go func() { errc <- tls.Server(c1, server).Handshake() }()
			if err := tls.Client(c2, client).Handshake(); err != nil {
				b.Fatal(err)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			c1.Close()
			c2.Close()
		}
	})
	b.Run("loopback", func(b *testing.B) {
		lis, err := tls.Listen("tcp", "127.0.0.1:0", server)
		if err != nil {
			b.Fatal(err)
		}
		defer lis.Close()
		go func() {
			for {
				c, err := lis.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
			}
		}()
		b.ReportAllocs()
		for b.Loop() {
			c, err := tls.Dial("tcp", lis.Addr().String(), client)
			if err != nil {
				b.Fatal(err)
			}
			if err := roundTrip(c); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}
