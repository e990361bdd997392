package dispatcher

import (
	"crypto/ed25519"
	"fmt"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// The gossip keys reach every node through its session, as Swarm's
// NetworkBootstrapKeys do: the registration response carries them, and a
// heartbeat response carries them again whenever they differ from the
// version the node says it holds. The leader's keymanager writes them to
// the cluster object; the expiry loop's watch brings each change here at
// once, so every node has it within one heartbeat period.
//
// A removed node gets nothing: the node's deletion ends its session in the
// same watch, before the cluster change that rotates the keys because it
// left, and a heartbeat reads its session and the keys together, under
// the dispatcher's lock.

// takeGossipKeysLocked keeps the keys of a cluster object (the store's,
// shared: they are copied). d.mu is held.
func (d *Dispatcher) takeGossipKeysLocked(c *api.Cluster) {
	keys := session.GossipKeysOf(c.GossipKeys.Copy())
	var key ed25519.PrivateKey
	if seed := c.GossipKeys.AssignmentKey; len(seed) == ed25519.SeedSize {
		key = ed25519.NewKeyFromSeed(seed)
	}
	if !key.Equal(d.assignKey) && (key != nil || d.assignKey != nil) {
		// The tasks already sent carry no proof, or one under the old
		// key: every stream sends its complete set again.
		d.assignKey = key
		close(d.assignKeyChanged)
		d.assignKeyChanged = make(chan struct{})
	}
	if keys.Equal(d.gossipKeys) {
		return
	}
	d.gossipKeys = keys
	if keys != nil {
		// Which key, never the key itself.
		d.log.Info("gossip keys changed", "version", keys.Version, "accepted", len(keys.Accepted))
	}
}

// gossipKeysFor returns the keys to hand a session whose node holds
// version: nil when it holds the current ones. The session must still be
// live: its node may have been removed since the heartbeat began.
func (d *Dispatcher) gossipKeysFor(s *nodeSession, version uint64) (*session.GossipKeys, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.sessions[s.nodeID]; !ok || cur != s {
		return nil, fmt.Errorf("node %s: %w", s.nodeID, ErrSessionInvalid)
	}
	if d.gossipKeys == nil || d.gossipKeys.Version == version {
		return nil, nil
	}
	return d.gossipKeys, nil
}
