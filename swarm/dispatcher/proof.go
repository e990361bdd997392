package dispatcher

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"

	"github.com/apiary-io/apiary/mesh/endpoint"
	"github.com/apiary-io/apiary/swarm/api"
)

// proven returns the tasks as a node in the routing mesh is sent them:
// copies, each with the managers' proof that it is assigned to the node
// (api.Task.AssignmentProof, endpoint.SignAssignment), which the node
// publishes with the task's routing entry so that every other node can
// check it. A node outside the mesh, or a cluster without an assignment
// key yet, gets the tasks as they are. A task that cannot be signed (its
// endpoint does not convert) goes without a proof: the mesh refuses its
// entry, nothing else is affected.
func (d *Dispatcher) proven(s *nodeSession, tasks []*api.Task) []*api.Task {
	if !s.mesh || len(tasks) == 0 {
		return tasks
	}
	d.mu.Lock()
	key := d.assignKey
	d.mu.Unlock()
	if key == nil {
		return tasks
	}
	out := make([]*api.Task, len(tasks))
	for i, t := range tasks {
		c := *t // the store's object is shared: only the copy changes
		proof, err := d.proofs.proof(key, t)
		if err != nil {
			d.log.Warn("task sent without an assignment proof", "task", t.ID, "err", err)
		}
		c.AssignmentProof = proof
		out[i] = &c
	}
	return out
}

// assignKeyWatch returns a channel closed at the next change of the
// assignment key.
func (d *Dispatcher) assignKeyWatch() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.assignKeyChanged
}

// MaxCachedProofs bounds the proofs a dispatcher keeps: past it, they are
// all dropped and signed again as needed. An entry is ~200 bytes, so the
// cache holds at most ~50 MB, enough for a cluster's every task up to
// 262,144 of them.
const MaxCachedProofs = 1 << 18

// proofCache keeps each task's proof with a digest of what it signs. A
// task is signed again only when that changes (its node, endpoint,
// networks: not its status, which changes far more often) or the key does:
// a stream's complete set, sent at every new session of a node (a worker
// restarted, a session expired) and on a restore, was an ed25519
// signature per task. The cache lives as long as the dispatcher: a new
// leader's dispatcher, and a new key, sign every set once. Proofs of
// deleted tasks are dropped by the streams that send their removal; the
// bound covers the rest.
type proofCache struct {
	mu  sync.Mutex
	key ed25519.PrivateKey // what the proofs are under
	m   map[string]cachedProof
	// max is MaxCachedProofs unless a test sets it; signed counts the
	// signatures made.
	max    int
	signed int
}

type cachedProof struct {
	version uint64 // the task's Meta.Version signed, 0 for none
	digest  [sha256.Size]byte
	proof   []byte
}

// proof returns t's proof under key, signed now or kept from before.
func (c *proofCache) proof(key ed25519.PrivateKey, t *api.Task) ([]byte, error) {
	version := t.Meta.Version
	c.mu.Lock()
	if !key.Equal(c.key) {
		c.key, c.m = key, nil
	}
	// The same version of the task (the store's versions change with
	// every write) is the same message: not even built again, which
	// costs half as much as signing it.
	if e, ok := c.m[t.ID]; ok && version != 0 && e.version == version {
		c.mu.Unlock()
		return e.proof, nil
	}
	c.mu.Unlock()
	msg, err := endpoint.AssignmentMessage(t)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(msg)
	c.mu.Lock()
	if e, ok := c.m[t.ID]; ok && key.Equal(c.key) && e.digest == digest {
		e.version = version
		c.m[t.ID] = e
		c.mu.Unlock()
		return e.proof, nil
	}
	c.mu.Unlock()
	proof := ed25519.Sign(key, msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signed++
	if !key.Equal(c.key) {
		return proof, nil // the key changed meanwhile: not kept
	}
	limit := c.max
	if limit <= 0 {
		limit = MaxCachedProofs
	}
	if c.m == nil || len(c.m) >= limit {
		c.m = make(map[string]cachedProof)
	}
	c.m[t.ID] = cachedProof{version: version, digest: digest, proof: proof}
	return proof, nil
}

// forget drops a deleted task's proof.
func (c *proofCache) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
