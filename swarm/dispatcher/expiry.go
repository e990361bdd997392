package dispatcher

import (
	"context"
	"fmt"
	"time"

	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// expiry is the dispatcher's loop.Reconciler, keyed by node ID: it declares
// down the nodes that stop heartbeating. A key waits in the queue until the
// node's heartbeat deadline (Register and Heartbeat add it, AddAfter); its
// reconciliation then finds the node heartbeated since (and waits for the
// new deadline), or ends its session and marks it down.
//
// What it decides on lives in the dispatcher, under its lock: the sessions,
// and the silent nodes (d.silent) with the time by which they are down.
// The store only says, at start and after a restore, which nodes it
// believes ready: those without a session are silent from then on.
type expiry Dispatcher

// Resync re-arms every deadline from a snapshot of the store: at start, and
// after a restore replaced the state (whose nodes may be ready again, or
// gone). A node with a session keeps it; a node known silent keeps its
// deadline (a restore gives no node more time: one that already expired is
// marked down again at once); a node the snapshot says ready, of which this
// leader knows nothing, gets a grace period to register.
func (e *expiry) Resync(tx store.ReadTx, q *loop.Queue[string]) error {
	d := (*Dispatcher)(e)
	nodes, err := tx.FindNodes(store.All)
	if err != nil {
		return fmt.Errorf("dispatcher: read nodes: %w", err)
	}
	// New leaders' inherited nodes get longer: their agents must first
	// notice the previous leader's loss and find this one.
	deadline := time.Now().Add(d.grace() + takeoverGrace)
	d.mu.Lock()
	defer d.mu.Unlock()
	stored := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		stored[n.ID] = true
		q.Add(n.ID)
		_, live := d.sessions[n.ID]
		_, known := d.silent[n.ID]
		if !live && !known && n.Status.State == api.NodeStateReady {
			d.silent[n.ID] = deadline
		}
	}
	for id := range d.silent {
		if !stored[id] {
			delete(d.silent, id)
		}
	}
	for id := range d.sessions {
		q.Add(id)
	}
	clusters, err := tx.FindClusters(store.All)
	if err != nil {
		return fmt.Errorf("dispatcher: read cluster: %w", err)
	}
	d.gossipKeys = nil
	if len(clusters) > 0 {
		d.takeGossipKeysLocked(clusters[0])
	}
	return nil
}

// Observe forgets the nodes that are removed (their session ends: a
// removed node learns nothing more, the gossip keys made because it left
// least of all), and takes in the cluster's gossip keys.
func (e *expiry) Observe(ev store.Event, q *loop.Queue[string]) {
	d := (*Dispatcher)(e)
	switch o := ev.Object.(type) {
	case *api.Node:
		if ev.Action != store.ActionDelete {
			return
		}
		d.mu.Lock()
		delete(d.silent, o.ID)
		if s, ok := d.sessions[o.ID]; ok {
			s.end()
			delete(d.sessions, o.ID)
		}
		d.mu.Unlock()
	case *api.Cluster:
		if ev.Action == store.ActionDelete {
			return
		}
		d.mu.Lock()
		d.takeGossipKeysLocked(o)
		d.mu.Unlock()
	}
}

// Reconcile declares a node down once its deadline has passed: the grace
// of the period its session was last told, counted from its last
// heartbeat (shorter while gossip suspects it, suspect.go), or the
// deadline it got as silent.
func (e *expiry) Reconcile(ctx context.Context, nodeID string) (loop.Result, error) {
	d := (*Dispatcher)(e)
	now := time.Now()
	why := "heartbeat failure"
	d.mu.Lock()
	if s, ok := d.sessions[nodeID]; ok {
		deadline := d.deadlineOf(s)
		if now.Before(deadline) {
			d.mu.Unlock()
			return loop.Result{RequeueAfter: deadline.Sub(now)}, nil
		}
		if s.suspected {
			why = "heartbeat failure after gossip found it unreachable"
		}
		s.end()
		delete(d.sessions, nodeID)
		d.silent[nodeID] = deadline
	}
	deadline, silent := d.silent[nodeID]
	d.mu.Unlock()
	switch {
	case !silent:
		return loop.Result{}, nil
	case now.Before(deadline):
		return loop.Result{RequeueAfter: deadline.Sub(now)}, nil
	}
	// Known silent, it stays so (a restore marks it down again) until it
	// registers or is removed. A failure is retried on the loop's backoff.
	if err := d.markDown(ctx, nodeID, why); err != nil {
		return loop.Result{}, fmt.Errorf("mark node %s down: %w", nodeID, err)
	}
	return loop.Result{}, nil
}
