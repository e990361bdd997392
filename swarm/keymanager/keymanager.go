// Package keymanager is the leader's loop that makes and rotates the keys
// of the nodes' gossip (issue 15), after swarmkit's manager/keymanager: a
// first key when the cluster has none, a new primary every
// ClusterSpec.Gossip.KeyRotation (default 12 h) and at once whenever a node
// is removed, the previous keys kept as accepted (the overlap that lets
// every node learn the new primary) and the oldest dropped beyond
// api.MaxGossipKeys. Everything it decides on is in the cluster object, the
// keys with their creation times and the last removed node the primary
// took into account, so a new leader carries on where the last one
// stopped and does not rotate needlessly. The dispatcher hands the keys to
// every node through its session.
//
// The decision is a pure function (Decide); the loop (an internal/loop
// Loop with one key, the cluster) applies it and waits for the next
// rotation, or for a change of the cluster object: a node's removal
// changes it (Cluster.RemovedNodes), as does a new rotation interval.
package keymanager

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// Config configures the key manager.
type Config struct {
	// Now is the clock keys are dated by and rotations are due by;
	// time.Now when nil (tests set a fake one).
	Now func() time.Time
	// Rand is the source of key material; crypto/rand.Reader when nil.
	Rand   io.Reader
	Logger *slog.Logger
}

// DefaultConfig returns the real clock and crypto/rand.
func DefaultConfig() Config { return Config{Now: time.Now, Rand: rand.Reader} }

// Reasons a new primary is made (Decide).
const (
	ReasonFirst    = "first key"
	ReasonSchedule = "rotation interval elapsed"
	ReasonRemoved  = "node removed"
	// ReasonAssignmentKey: the cluster predates assignment keys; one is
	// made, and a new primary with it so that every node is handed the
	// keys (and the assignment key's public half) again.
	ReasonAssignmentKey = "no assignment key"
)

// Decide says whether the cluster's gossip keyring needs a new primary at
// now, and why; when it does not, wait is how long until it will (the
// primary's age reaching the rotation interval).
func Decide(c *api.Cluster, now time.Time) (reason string, wait time.Duration) {
	p := c.GossipKeys.Primary()
	if p == nil {
		return ReasonFirst, 0
	}
	if lastRemoved(c) != c.GossipKeys.RemovedNode {
		return ReasonRemoved, 0
	}
	if len(c.GossipKeys.AssignmentKey) == 0 {
		return ReasonAssignmentKey, 0
	}
	due := p.CreatedAt.Add(c.Spec.Gossip.Rotation())
	if !now.Before(due) {
		return ReasonSchedule, 0
	}
	return "", due.Sub(now)
}

// Rotate returns the keyring with key as its new primary, made at now
// after the cluster's last removed node: the previous keys follow it,
// newest first, and those beyond api.MaxGossipKeys are dropped. The
// assignment key is kept.
func Rotate(c *api.Cluster, key []byte, now time.Time) api.GossipKeyring {
	old := c.GossipKeys.Copy()
	var lamport uint64 = 1
	if p := old.Primary(); p != nil {
		lamport = p.Lamport + 1
	}
	keys := append([]api.GossipKey{{Key: api.SecretBytes(key), Lamport: lamport, CreatedAt: now.UTC()}}, old.Keys...)
	if len(keys) > api.MaxGossipKeys {
		keys = keys[:api.MaxGossipKeys]
	}
	return api.GossipKeyring{Keys: keys, RemovedNode: lastRemoved(c), AssignmentKey: old.AssignmentKey}
}

func lastRemoved(c *api.Cluster) string {
	if n := len(c.RemovedNodes); n > 0 {
		return c.RemovedNodes[n-1]
	}
	return ""
}

// KeyManager runs the rotation loop while its manager leads.
type KeyManager struct {
	store *store.MemoryStore
	cfg   Config
	log   *slog.Logger
	loop  *loop.Loop[struct{}]
	// reconciled, when set (tests), is called after every reconciliation.
	reconciled func()
}

// New returns a key manager over s; Run runs it.
func New(s *store.MemoryStore, cfg Config) *KeyManager {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &KeyManager{store: s, cfg: cfg, log: log.With("component", "keymanager")}
	k.loop = loop.New[struct{}](loop.Config{
		Name:    "keymanager",
		Store:   s,
		Filters: []store.EventFilter{store.ByKinds(api.KindCluster)},
		Shared:  true, // the cluster object is only looked at
		Log:     k.log,
	}, (*reconciler)(k))
	return k
}

// Run makes and rotates keys until ctx ends (it then returns nil) or the
// store closes.
func (k *KeyManager) Run(ctx context.Context) error { return k.loop.Run(ctx) }

// reconciler is the KeyManager as a loop.Reconciler of its one key.
type reconciler KeyManager

// Resync implements loop.Reconciler: whatever the snapshot, look again.
func (r *reconciler) Resync(tx store.ReadTx, q *loop.Queue[struct{}]) error {
	q.Add(struct{}{})
	return nil
}

// Observe implements loop.Reconciler: a change of the cluster object (a
// removed node, a new interval, a rotation) is looked at.
func (r *reconciler) Observe(ev store.Event, q *loop.Queue[struct{}]) {
	if _, ok := ev.Object.(*api.Cluster); ok {
		q.Add(struct{}{})
	}
}

// Reconcile implements loop.Reconciler: it rotates when Decide says so,
// in one transaction that decides again on what it reads, and otherwise
// waits until the next rotation is due.
func (r *reconciler) Reconcile(ctx context.Context, _ struct{}) (loop.Result, error) {
	k := (*KeyManager)(r)
	if k.reconciled != nil {
		defer k.reconciled()
	}
	var c *api.Cluster
	k.store.View(func(tx store.ReadTx) {
		if cs, _ := tx.FindClusters(store.All); len(cs) > 0 {
			c = cs[0]
		}
	})
	if c == nil {
		return loop.Result{}, nil // none yet: its creation is an event
	}
	if reason, wait := Decide(c, k.cfg.Now()); reason == "" {
		return loop.Result{RequeueAfter: wait}, nil
	}
	var made *api.GossipKey
	var reason string
	err := k.store.UpdateContext(ctx, func(tx store.Tx) error {
		cs, err := tx.FindClusters(store.All)
		if err != nil || len(cs) == 0 {
			return err
		}
		c := cs[0]
		now := k.cfg.Now()
		if reason, _ = Decide(c, now); reason == "" {
			return nil
		}
		key := make([]byte, api.GossipKeyLen)
		if _, err := io.ReadFull(k.cfg.Rand, key); err != nil {
			return fmt.Errorf("make a gossip key: %w", err)
		}
		c.GossipKeys = Rotate(c, key, now)
		if len(c.GossipKeys.AssignmentKey) == 0 {
			seed := make([]byte, ed25519.SeedSize)
			if _, err := io.ReadFull(k.cfg.Rand, seed); err != nil {
				return fmt.Errorf("make an assignment key: %w", err)
			}
			c.GossipKeys.AssignmentKey = seed
		}
		made = c.GossipKeys.Primary()
		return tx.UpdateCluster(c)
	})
	if err != nil {
		return loop.Result{}, fmt.Errorf("rotate gossip key: %w", err)
	}
	if made != nil {
		// Which key and why, never the key itself.
		k.log.Info("new gossip key", "lamport", made.Lamport, "reason", reason)
	}
	// The update is an event: the next wait is computed from it.
	return loop.Result{}, nil
}
