package dispatcher

import (
	"math/rand/v2"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// gossipPeers returns the gossip addresses of up to session.MaxGossipPeers
// ready nodes other than self, managers first (they are the longest-lived),
// the others a random sample so that joins spread. A node asks only at
// registration and while its gossip knows nobody, so the scan of the nodes
// is not on the heartbeat's common path.
func (d *Dispatcher) gossipPeers(self string) []string {
	var managers, others []string
	d.store.View(func(tx store.ReadTx) {
		nodes, _ := tx.FindNodes(store.All)
		for _, n := range nodes {
			if n.ID == self || n.Status.GossipAddr == "" || n.Status.State != api.NodeStateReady {
				continue
			}
			if n.Spec.Role == api.NodeRoleManager {
				managers = append(managers, n.Status.GossipAddr)
			} else {
				others = append(others, n.Status.GossipAddr)
			}
		}
	})
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	out := append(managers, others...)
	if len(out) > session.MaxGossipPeers {
		out = out[:session.MaxGossipPeers]
	}
	return out
}
