package keymanager

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// The assignment key is made with the first gossip key and kept across
// rotations: a new one would invalidate the proofs of every running task.
func TestAssignmentKeyMadeOnceAndKept(t *testing.T) {
	spec := api.DefaultClusterSpec()
	spec.Gossip.KeyRotation = time.Hour
	h := newHarness(t, spec)
	first := h.waitLamport(1)
	if len(first.AssignmentKey) != ed25519.SeedSize || bytes.Equal(first.AssignmentKey, make([]byte, ed25519.SeedSize)) {
		t.Fatalf("assignment key after init: %d bytes", len(first.AssignmentKey))
	}
	h.clock.Add(time.Hour)
	h.poke()
	if k := h.waitLamport(2); !bytes.Equal(k.AssignmentKey, first.AssignmentKey) {
		t.Fatal("a gossip key rotation changed the assignment key")
	}
	if got := h.cluster().GossipKeys.Redacted().AssignmentKey; got != nil {
		t.Errorf("Redacted keeps the assignment key (%d bytes)", len(got))
	}
}

// A cluster made before assignment keys gets one at once, with a new
// primary so that every node is handed the keys again.
func TestAssignmentKeyForAnOlderCluster(t *testing.T) {
	h := newHarness(t, api.DefaultClusterSpec())
	h.waitLamport(1)
	h.stop()
	if err := h.store.Update(func(tx store.Tx) error {
		cs, _ := tx.FindClusters(store.All)
		c := cs[0]
		c.GossipKeys.AssignmentKey = nil
		return tx.UpdateCluster(c)
	}); err != nil {
		t.Fatal(err)
	}
	if reason, _ := Decide(h.cluster(), h.clock.Now()); reason != ReasonAssignmentKey {
		t.Fatalf("Decide on a keyring without an assignment key: %q, want %q", reason, ReasonAssignmentKey)
	}
	h.start()
	if k := h.waitLamport(2); len(k.AssignmentKey) != ed25519.SeedSize {
		t.Fatalf("assignment key: %d bytes", len(k.AssignmentKey))
	}
}
