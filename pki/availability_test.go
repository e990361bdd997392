package pki

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A joining node's availability reaches the cluster state with its first
// certificate; one that is not active, pause or drain is refused before
// anything is signed or recorded.
func TestJoinAvailability(t *testing.T) {
	st, ca := newTestCA(t, time.Hour)
	rec := mustCA(t, ca)
	tok, _ := rec.JoinToken(RoleWorker)
	_, csrPEM, err := newKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ca.IssueNodeCertificate(context.Background(), &IssueRequest{CSR: csrPEM, Token: tok, Availability: "drain"})
	if err != nil {
		t.Fatal(err)
	}
	nodes, _ := st.Nodes(context.Background())
	if len(nodes) != 1 || nodes[0].NodeID != resp.NodeID || nodes[0].Availability != "drain" {
		t.Fatalf("recorded %+v", nodes)
	}
	if _, err := ca.IssueNodeCertificate(context.Background(), &IssueRequest{CSR: csrPEM, Token: tok, Availability: "asleep"}); err == nil || !strings.Contains(err.Error(), `availability "asleep"`) {
		t.Fatalf("a bad availability: %v", err)
	}
	if nodes, _ := st.Nodes(context.Background()); len(nodes) != 1 {
		t.Fatalf("a refused join recorded a node: %+v", nodes)
	}
}
