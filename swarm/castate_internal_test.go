package swarm

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// The CA issues certificates for the lifetime the cluster spec says at the
// time it issues them: a change of the spec applies to the next
// certificate, and the CA record stored in the cluster object keeps no
// lifetime of its own (which would contradict the spec).
func TestCAReadsCertExpiryFromTheSpec(t *testing.T) {
	ctx := context.Background()
	s := store.NewMemoryStore(nil)
	t.Cleanup(s.Close)
	rec, err := pki.NewCARecord("cluster-1", 3*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := marshalCARecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	spec := api.DefaultClusterSpec()
	spec.CAConfig.NodeCertExpiry = 2 * time.Hour
	if err := s.Update(func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{ID: "c1", Spec: spec, CAState: raw})
	}); err != nil {
		t.Fatal(err)
	}
	ca := pki.NewCAServer(caState{store: s}, pki.CAServerOptions{})
	life := func(nodeID string) time.Duration {
		t.Helper()
		id, err := ca.NewNodeIdentity(ctx, nodeID, pki.RoleWorker, "")
		if err != nil {
			t.Fatal(err)
		}
		leaf := id.Leaf()
		return leaf.NotAfter.Sub(time.Now()).Round(time.Minute)
	}
	if got := life("node-1"); got != 2*time.Hour {
		t.Errorf("certificate lifetime = %v, want the spec's 2h (not the record's 3h)", got)
	}
	if err := s.Update(func(tx store.Tx) error {
		c := tx.GetCluster("c1")
		c.Spec.CAConfig.NodeCertExpiry = 5 * time.Hour
		return tx.UpdateCluster(c)
	}); err != nil {
		t.Fatal(err)
	}
	if got := life("node-2"); got != 5*time.Hour {
		t.Errorf("after the spec changed, certificate lifetime = %v, want 5h", got)
	}
	// A CA write (a token rotation) leaves the lifetime to the spec.
	if err := (caState{store: s}).UpdateCA(ctx, func(r *pki.CARecord) error { return r.RotateJoinToken(pki.RoleWorker) }); err != nil {
		t.Fatal(err)
	}
	var stored pki.CARecord
	s.View(func(tx store.ReadTx) { err = json.Unmarshal(tx.GetCluster("c1").CAState, &stored) })
	if err != nil || stored.NodeCertExpiry != 0 {
		t.Errorf("stored CA record has lifetime %v (%v), want none", stored.NodeCertExpiry, err)
	}
	if got := life("node-3"); got != 5*time.Hour {
		t.Errorf("after a CA write, certificate lifetime = %v, want 5h", got)
	}
}
