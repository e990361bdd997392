package pki

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// meshNode is a test node with a raw mutual-TLS echo listener.
type meshNode struct {
	name string
	id   *NodeIdentity
	addr string
	// issuer renews this node: a manager's own CA, or the CA client over a
	// worker's gRPC connection to a manager.
	issuer CertificateIssuer
}

func serveEcho(t *testing.T, n *NodeIdentity) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", n.ServerTLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return lis.Addr().String()
}

// ping dials to over mutual TLS and round-trips a byte; the read proves the
// server accepted the client certificate too.
func ping(from *NodeIdentity, to string) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", to, from.ClientTLSConfig(""))
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c)
}

func roundTrip(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{42}); err != nil {
		return err
	}
	b := make([]byte, 1)
	_, err := io.ReadFull(c, b)
	return err
}

func allPairs(t *testing.T, step string, nodes []*meshNode) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			if err := ping(a.id, b.addr); err != nil {
				t.Fatalf("%s: %s cannot talk to %s: %v", step, a.name, b.name, err)
			}
		}
	}
}

// TestRootRotation rotates the root of a running set of nodes (two
// managers, each with its own CAServer over the shared replicated state, and
// workers) and checks at every step that every node can open a mutual TLS
// connection to every other, and that connections opened before the
// rotation survive it.
func TestRootRotation(t *testing.T) {
	st, ca1 := newTestCA(t, time.Hour)
	ca2 := NewCAServer(st, CAServerOptions{Logger: testutil.DiscardLogger()}) // a second manager, same state
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var nodes []*meshNode
	add := func(name string, id *NodeIdentity, issuer CertificateIssuer) *meshNode {
		n := &meshNode{name: name, id: id, addr: serveEcho(t, id), issuer: issuer}
		nodes = append(nodes, n)
		return n
	}
	m1id := newTestNode(t, ca1, RoleManager)
	m2id := newTestNode(t, ca2, RoleManager)
	m1 := add("m1", m1id, ca1.LocalIssuer(m1id))
	m2 := add("m2", m2id, ca2.LocalIssuer(m2id))
	grpc1, grpc2 := startServer(t, m1id, ca1, st), startServer(t, m2id, ca2, st)
	for i := range 3 {
		w := newTestNode(t, ca1, RoleWorker)
		mgrAddr := []string{grpc1.addr, grpc2.addr}[i%2]
		add(fmt.Sprintf("w%d", i+1), w, NewCAClient(dial(t, w, mgrAddr)))
	}
	gone := newTestNode(t, ca1, RoleWorker) // will be removed mid-rotation
	oldWorkerToken, _, _ := ca1.JoinTokens(ctx)
	staleKey, staleChain, staleBundle := nodes[2].id.cur.Load().keyPEM, nodes[2].id.cur.Load().chainPEM, nodes[2].id.TrustBundle()
	oldRootDigest := m1.id.RootDigests()[0]

	allPairs(t, "before rotation", nodes)
	// Long-lived connections opened now must survive the whole rotation.
	type persistent struct {
		from, to string
		c        net.Conn
	}
	var keep []persistent
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				c, err := tls.Dial("tcp", b.addr, a.id.ClientTLSConfig(""))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				keep = append(keep, persistent{a.name, b.name, c})
			}
		}
	}

	// Start: new root B, cross-signed by A.
	stStart, err := ca1.StartRootRotation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca2.StartRootRotation(ctx); !errors.Is(err, ErrRotationInProgress) {
		t.Fatalf("second rotation: %v", err)
	}
	if stStart.OldRootDigest != oldRootDigest || stStart.NewRootDigest == oldRootDigest {
		t.Fatalf("rotation status %+v", stStart)
	}
	allPairs(t, "rotation started, nobody renewed", nodes)
	if s, _ := ca1.ReconcileRootRotation(ctx); s.Finished || len(s.Pending) != len(nodes)+1 {
		t.Fatalf("reconcile before any renewal: %+v", s)
	}

	// A node joining mid-rotation pins A (its token's digest) and gets a
	// B leaf chained through the cross-signed intermediate.
	joinedID, err := Join(ctx, grpc2.addr, oldWorkerToken, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	joined := add("joined", joinedID, NewCAClient(dial(t, joinedID, grpc1.addr)))
	if len(joinedID.RootDigests()) != 2 {
		t.Fatalf("joiner's trust bundle: %v", joinedID.RootDigests())
	}
	allPairs(t, "node joined mid-rotation", nodes)

	st.RemoveNode(gone.Identity().NodeID) // never renews; must not block the rotation

	// Renew one node at a time; everyone keeps talking after each renewal.
	for i, n := range []*meshNode{nodes[2], m2, nodes[3], m1, nodes[4]} {
		if err := n.id.Renew(ctx, n.issuer); err != nil {
			t.Fatalf("renew %s during rotation: %v", n.name, err)
		}
		chain, _ := parseCertsPEM(n.id.cur.Load().chainPEM)
		if len(chain) != 2 || Digest(chain[0]) == Digest(chain[1]) || len(n.id.RootDigests()) != 2 {
			t.Fatalf("%s during rotation: chain of %d, roots %v", n.name, len(chain), n.id.RootDigests())
		}
		allPairs(t, fmt.Sprintf("rotation: %s renewed", n.name), nodes)
		s, err := ca2.ReconcileRootRotation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if last := i == 4; s.Finished != last {
			t.Fatalf("after %s renewed: %+v", n.name, s)
		}
	}
	if s, _ := ca1.RootRotationStatus(ctx); s.InProgress {
		t.Fatalf("rotation still in progress: %+v", s)
	}
	allPairs(t, "rotation finished, nodes still trust {A,B}", nodes)

	// Tokens now pin B; a token from before the rotation is refused with a
	// clear error, a current one works.
	newWorkerToken, _, _ := ca1.JoinTokens(ctx)
	if tok, _ := ParseJoinToken(newWorkerToken); tok.RootDigest != stStart.NewRootDigest {
		t.Fatalf("token after rotation pins %s, want %s", tok.RootDigest, stStart.NewRootDigest)
	}
	if _, err := Join(ctx, grpc1.addr, oldWorkerToken, ""); !errors.Is(err, ErrTokenWrongCA) {
		t.Fatalf("join with pre-rotation token: %v", err)
	}
	if _, err := Join(ctx, grpc1.addr, newWorkerToken, ""); err != nil {
		t.Fatalf("join with post-rotation token: %v", err)
	}

	// Nodes learn the final bundle {B} at their next renewal, one by one.
	for _, n := range nodes {
		if err := n.id.Renew(ctx, n.issuer); err != nil {
			t.Fatalf("renew %s after rotation: %v", n.name, err)
		}
		chain, _ := parseCertsPEM(n.id.cur.Load().chainPEM)
		if len(chain) != 1 || !slices.Equal(n.id.RootDigests(), []string{stStart.NewRootDigest}) {
			t.Fatalf("%s after rotation: chain of %d, roots %v", n.name, len(chain), n.id.RootDigests())
		}
		allPairs(t, fmt.Sprintf("after rotation: %s renewed", n.name), nodes)
	}

	// The old root is gone: a certificate it signed is refused everywhere,
	// even by a client that would itself accept the servers.
	stale, err := NewNodeIdentityFromPEM(staleKey, staleChain, append(staleBundle, m1.id.TrustBundle()...), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range nodes {
		if err := ping(stale, b.addr); err == nil {
			t.Fatalf("%s accepted a certificate signed by the dropped root", b.name)
		}
	}
	// And no connection was dropped along the way.
	for _, p := range keep {
		if err := roundTrip(p.c); err != nil {
			t.Fatalf("connection %s -> %s opened before the rotation broke: %v", p.from, p.to, err)
		}
	}
	_ = joined
}
