package swarm_test

import (
	"context"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/pki/pkitest"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

// A cluster initialised with an external CA (docker swarm init
// --external-ca): the cluster holds no root key, every certificate (the
// first manager's, a joining worker's) comes from the external signer under
// its root, and the nodes work together over mutual TLS with them.
func TestExternalCACluster(t *testing.T) {
	ext := pkitest.StartExternalCA(t, "")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := nodeConfig(t, dir, "m1")
	cfg.ExternalCA = &pki.ExternalCA{URL: ext.URL}
	cfg.ExternalCARoot = ext.RootCertPEM
	m1, err := swarm.InitNode(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m1.Stop)
	cl := socketClient(t, cfg.DataDir)
	var tokens api.JoinTokens
	testutil.EventuallyWhy(t, 20*time.Second, "the manager to lead", func() (bool, string) {
		c, err := cl.GetCluster(ctx)
		if err != nil {
			return false, err.Error()
		}
		tokens = c.JoinTokens
		return true, ""
	})
	w1cfg := nodeConfig(t, dir, "w1")
	w1, err := swarm.JoinNode(ctx, w1cfg, tokens.Worker, []string{cfg.ListenAddr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w1.Stop)
	root, err := pki.ParseRootCA(ext.RootCertPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, dataDir := range []string{cfg.DataDir, w1cfg.DataDir} {
		id, err := loadIdentity(t, dataDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := id.Leaf().CheckSignatureFrom(root.Cert); err != nil {
			t.Errorf("%s: certificate not signed by the external root: %v", dataDir, err)
		}
	}
	if n := ext.Calls.Load(); n < 2 {
		t.Errorf("the external CA saw %d requests, want one per node at least", n)
	}
	testutil.EventuallyWhy(t, 20*time.Second, "the worker ready", func() (bool, string) {
		n, err := cl.GetNode(ctx, w1.NodeID())
		if err != nil {
			return false, err.Error()
		}
		return n.Status.State == api.NodeStateReady, string(n.Status.State)
	})
	// The root is rotated at the external CA, not here.
	if _, err := cl.RotateRootCA(ctx); err == nil {
		t.Error("rotation of an external root accepted")
	}
}
