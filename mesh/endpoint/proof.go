package endpoint

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/apiary-io/apiary/swarm/api"
)

// Assignment proofs. A node's certificate proves who publishes an entry;
// it does not prove that the node runs the task, nor that the task belongs
// to the service the entry names: a node with a valid certificate could
// otherwise publish a backend under any service's name and VIP and draw
// its traffic. The managers know the assignment, so they vouch for it: the
// dispatcher signs, with the cluster's assignment key
// (api.GossipKeyring.AssignmentKey), every task it hands a node, over
// what the entry will say that the managers decided (task, node, service
// ID and name, slot, spec version, endpoint mode, VIP, ports and
// networks with aliases) and none of what the node decides (its address,
// its host ports, the task's health). The node publishes the signature
// with the entry (api.Task.AssignmentProof), and every receiver checks it
// against the public key the managers hand out with the gossip keys
// (AdmitWith). What is signed is the entry itself with the node's fields
// cleared, so the two sides cannot disagree on an encoding.

// proofDomain separates these signatures from any other use of a key.
const proofDomain = "apiary endpoint assignment v1\x00"

// ErrNoProof is returned by the check of an entry that carries no
// assignment proof, or a malformed one.
var ErrNoProof = errors.New("endpoint: entry has no valid assignment proof")

// SignAssignment returns the proof that t, as the managers assign it to
// t.NodeID, may be published by that node.
func SignAssignment(key ed25519.PrivateKey, t *api.Task) ([]byte, error) {
	msg, err := AssignmentMessage(t)
	if err != nil {
		return nil, err
	}
	return ed25519.Sign(key, msg), nil
}

// AssignmentMessage returns what SignAssignment signs for t: two tasks
// with the same message have the same proof under one key, so a signer
// may keep proofs by it (the dispatcher does, as signing costs far more
// than this).
func AssignmentMessage(t *api.Task) ([]byte, error) {
	lt, err := FromTask(t, nil)
	if err != nil {
		return nil, err
	}
	r, err := lt.record(netip.Addr{})
	if err != nil {
		return nil, err
	}
	return r.assigned(t.NodeID)
}

// checkProof verifies r's proof for owner against any of keys.
func (r *record) checkProof(owner string, keys []ed25519.PublicKey) error {
	if len(r.Proof) != ed25519.SignatureSize {
		return fmt.Errorf("task %q: %w", r.Task, ErrNoProof)
	}
	msg, err := r.assigned(owner)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, r.Proof) {
			return nil
		}
	}
	return fmt.Errorf("endpoint: task %q: the managers did not assign it to node %q as its entry says (assignment proof does not verify)", r.Task, owner)
}

// assigned is what a proof signs: the entry without what its node
// decides, and the node.
func (r *record) assigned(node string) ([]byte, error) {
	c := *r
	c.Addr, c.Healthy, c.Proof = netip.Addr{}, false, nil
	c.Ports = make([]wirePort, len(r.Ports))
	for i, p := range r.Ports {
		p.Host = 0
		c.Ports[i] = p
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("endpoint: task %q: encode: %w", r.Task, err)
	}
	return append([]byte(proofDomain+node+"\x00"), b...), nil
}
