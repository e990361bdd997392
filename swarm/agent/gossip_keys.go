package agent

import "github.com/apiary-io/apiary/swarm/api/session"

// GossipKeys are the keys of the nodes' gossip as the managers hand them
// to this node: Primary to encrypt with, Accepted also to decrypt with.
// Key material prints as "[redacted]".
type GossipKeys = session.GossipKeys

// GossipKeys returns the gossip keys the node holds now, nil before the
// managers handed it any.
func (a *Agent) GossipKeys() *GossipKeys {
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	return a.keys
}

// gossipKeysVersion is the version of the keys the node holds (0: none),
// which a heartbeat tells the dispatcher so it sends keys only on a change.
func (a *Agent) gossipKeysVersion() uint64 {
	if k := a.GossipKeys(); k != nil {
		return k.Version
	}
	return 0
}

// takeGossipKeys keeps the keys a session message carries and hands them
// to Config.OnGossipKeys when they differ from those the node holds. A
// message without keys changes nothing: the cluster has none yet, or the
// node holds the current ones. The keys are kept across sessions, so a
// new session (another leader, the same keys) hands nothing.
func (a *Agent) takeGossipKeys(k *GossipKeys) {
	if k == nil {
		return
	}
	a.keysMu.Lock()
	defer a.keysMu.Unlock()
	if k.Equal(a.keys) {
		return
	}
	a.keys = k
	a.log.Info("gossip keys received", "version", k.Version, "accepted", len(k.Accepted))
	if a.cfg.OnGossipKeys != nil {
		a.cfg.OnGossipKeys(*k)
	}
}
