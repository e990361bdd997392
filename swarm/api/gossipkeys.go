package api

import (
	"fmt"
	"log/slog"
	"time"
)

// The gossip keyring (issue 15): every node's memberlist encrypts with
// AES-256-GCM under keys the managers make, keep in the cluster object
// (so they replicate through raft and survive a failover) and hand each
// node through its session.
const (
	// GossipKeyLen is the length of a gossip key: AES-256.
	GossipKeyLen = 32
	// MaxGossipKeys is how many keys the cluster keeps: the primary and
	// the previous ones, still accepted while every node learns the new
	// primary (Swarm keeps 3).
	MaxGossipKeys = 3
	// DefaultGossipKeyRotation is how often a new primary is made when the
	// spec says nothing (gossip.key_rotation 0).
	DefaultGossipKeyRotation = 12 * time.Hour
	// MinGossipKeyRotation and MaxGossipKeyRotation bound
	// gossip.key_rotation. Faster, a key would be gone (past the
	// MaxGossipKeys overlap) before a node on a slow heartbeat learnt its
	// successor; slower, a key leaked with a node's disk stays good for
	// longer than a month.
	MinGossipKeyRotation = time.Minute
	MaxGossipKeyRotation = 30 * 24 * time.Hour
)

// GossipConfig is the user's side of gossip encryption.
type GossipConfig struct {
	// KeyRotation is how often the leader makes a new primary key; 0
	// means DefaultGossipKeyRotation. A node's removal makes one at once
	// as well.
	KeyRotation time.Duration `json:"KeyRotation,omitempty"`
}

// Rotation returns the rotation interval, the default when unset.
func (c GossipConfig) Rotation() time.Duration {
	if c.KeyRotation == 0 {
		return DefaultGossipKeyRotation
	}
	return c.KeyRotation
}

// SecretBytes is key material. It encodes in JSON as []byte does (the
// store and the session carry it), but prints and logs as "[redacted]":
// an object holding it may be logged or shown whole without leaking it.
type SecretBytes []byte

const redacted = "[redacted]"

// String implements fmt.Stringer.
func (SecretBytes) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (SecretBytes) GoString() string { return redacted }

// Format implements fmt.Formatter: every verb, %x and %d included, prints
// "[redacted]".
func (SecretBytes) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer.
func (SecretBytes) LogValue() slog.Value { return slog.StringValue(redacted) }

// GossipKey is one key of the gossip keyring.
type GossipKey struct {
	// Key is GossipKeyLen random bytes. The control API never returns it
	// (GetCluster clears it).
	Key SecretBytes `json:"Key,omitempty"`
	// Lamport orders the keys: each new key's is its predecessor's plus
	// one, whichever leader made it.
	Lamport uint64 `json:"Lamport"`
	// CreatedAt is when the leader made it; the next rotation is due
	// KeyRotation later.
	CreatedAt time.Time `json:"CreatedAt"`
}

// GossipKeyring is the cluster's gossip keys and what the last rotation
// took into account.
type GossipKeyring struct {
	// Keys are newest first: Keys[0] is the primary, which nodes encrypt
	// with; the others are still accepted. At most MaxGossipKeys.
	Keys []GossipKey `json:"Keys,omitempty"`
	// RemovedNode is the last entry of Cluster.RemovedNodes when the
	// primary was made: a node removed since calls for a new primary.
	RemovedNode string `json:"RemovedNode,omitempty"`
	// AssignmentKey is the seed (ed25519.SeedSize bytes) of the key the
	// managers sign task assignments with (Task.AssignmentProof); every
	// node gets its public half with the gossip keys, to check that the
	// node publishing a task's routing entry runs that task. It is made
	// with the first gossip key (or, in a cluster older than it, at once)
	// and not rotated: a rotation would invalidate the proofs of every
	// running task. The control API never returns it.
	AssignmentKey SecretBytes `json:"AssignmentKey,omitempty"`
}

// Primary returns the primary key, or nil when there is none.
func (k GossipKeyring) Primary() *GossipKey {
	if len(k.Keys) == 0 {
		return nil
	}
	return &k.Keys[0]
}

// Copy returns a deep copy.
func (k GossipKeyring) Copy() GossipKeyring {
	k.AssignmentKey = SecretBytes(copySlice([]byte(k.AssignmentKey)))
	if k.Keys == nil {
		return k
	}
	keys := make([]GossipKey, len(k.Keys))
	for i, key := range k.Keys {
		key.Key = SecretBytes(copySlice([]byte(key.Key)))
		keys[i] = key
	}
	k.Keys = keys
	return k
}

// Redacted returns a copy without the key material: the keys' Lamport
// clocks and times, for display.
func (k GossipKeyring) Redacted() GossipKeyring {
	k = k.Copy()
	for i := range k.Keys {
		k.Keys[i].Key = nil
	}
	k.AssignmentKey = nil
	return k
}
