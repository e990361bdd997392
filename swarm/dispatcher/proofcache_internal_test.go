package dispatcher

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/mesh/endpoint"
	"github.com/apiary-io/apiary/swarm/api"
)

func proofTask(id, node string) *api.Task {
	return &api.Task{ID: id, Name: "web." + id, ServiceID: "svc", ServiceAnnotations: api.Annotations{Name: "web"}, Slot: 1, NodeID: node,
		SpecVersion: 1, DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: api.TaskStateAssigned},
		Endpoint: &api.Endpoint{HostVIP: "127.100.0.7"}}
}

// A task is signed once: again only when what is signed changes (its
// node, here), not for its status; after the key changes, and after the
// task is forgotten. Every proof is the one SignAssignment gives.
func TestProofsSignedOnce(t *testing.T) {
	var c proofCache
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	check := func(k ed25519.PrivateKey, tk *api.Task, wantSigned int) {
		t.Helper()
		got, err := c.proof(k, tk)
		if err != nil {
			t.Fatal(err)
		}
		want, err := endpoint.SignAssignment(k, tk)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("task %s on %s: proof %x, want %x", tk.ID, tk.NodeID, got, want)
		}
		if c.signed != wantSigned {
			t.Errorf("task %s on %s: %d signatures made, want %d", tk.ID, tk.NodeID, c.signed, wantSigned)
		}
	}
	tk := proofTask("t1", "n1")
	check(key, tk, 1)
	check(key, tk, 1)
	running := *tk
	running.Status = api.TaskStatus{State: api.TaskStateRunning, Message: "started"}
	check(key, &running, 1)
	moved := *tk
	moved.NodeID = "n2"
	check(key, &moved, 2)
	check(key, tk, 3) // back on n1: the entry now holds n2's
	// A stored task carries its version: the same version is the same
	// task, a new one is checked again.
	stored := *tk
	stored.Meta.Version = 7
	check(key, &stored, 3)
	check(key, &stored, 3)
	restored := stored
	restored.Meta.Version = 8
	restored.NodeID = "n2"
	check(key, &restored, 4)
	check(key, &stored, 5)
	tk = &stored
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{4}, ed25519.SeedSize))
	check(other, tk, 6)
	check(other, tk, 6)
	c.forget("t1")
	check(other, tk, 7)
}

// Past the bound the proofs kept are dropped, never more kept than it.
func TestProofsBounded(t *testing.T) {
	c := proofCache{max: 10}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	for i := range 25 {
		if _, err := c.proof(key, proofTask(fmt.Sprintf("t%02d", i), "n1")); err != nil {
			t.Fatal(err)
		}
		if len(c.m) > 10 {
			t.Fatalf("%d proofs kept, bound 10", len(c.m))
		}
	}
	if c.signed != 25 {
		t.Errorf("%d signatures for 25 tasks", c.signed)
	}
}

// BenchmarkProofs: a complete set of 10,000 tasks proven, signed
// (cached=false) or kept from the set before (cached=true).
//
//	go test -run '^$' -bench Proofs ./swarm/dispatcher/
func BenchmarkProofs(b *testing.B) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	var tasks []*api.Task
	for i := range 10000 {
		tk := proofTask(fmt.Sprintf("task%021d", i), "n1")
		tk.Meta.Version = uint64(i + 1)
		tasks = append(tasks, tk)
	}
	for _, cached := range []bool{false, true} {
		b.Run(fmt.Sprintf("cached=%v", cached), func(b *testing.B) {
			var c proofCache
			prove := func() {
				for _, t := range tasks {
					if _, err := c.proof(key, t); err != nil {
						b.Fatal(err)
					}
				}
			}
			prove() // the set before
			for b.Loop() {
				if !cached {
					c = proofCache{}
				}
				prove()
			}
		})
	}
}
