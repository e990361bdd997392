package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/encryption"
)

// Membership changes the raft group of the managers; the swarm package
// implements it over its raft member.
type Membership interface {
	// AddManager admits a manager node (already holding a manager
	// certificate) into the raft group as member raftID at addr and
	// returns the members' addresses for it to contact.
	AddManager(ctx context.Context, nodeID, addr string, raftID uint64) ([]Peer, error)
	// CheckRemoveManager says why removing raft member raftID would be
	// refused now (quorum), or nil. It may answer nil where it cannot
	// tell (on a follower): the removal checks again.
	CheckRemoveManager(ctx context.Context, raftID uint64) error
}

// Peer is a manager's raft member ID and address.
type Peer struct {
	ID   uint64 `json:"ID"`
	Addr string `json:"Addr"`
}

// ErrNoMembership: this build or manager runs without raft.
var ErrNoMembership = errors.New("this manager runs without replication: managers cannot join it")

// GetCluster returns the cluster object with its join tokens; the CA's
// secrets (root key, token secrets) and the gossip keys' material never
// leave the store (the keys' clocks and times do).
func (s *Server) GetCluster(ctx context.Context) (*api.Cluster, error) {
	var out []*api.Cluster
	var err error
	s.store.View(func(tx store.ReadTx) { out, err = tx.FindClusters(store.All) })
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster: %w", ErrNotFound)
	}
	c := out[0]
	if len(c.CAState) > 0 {
		var rec pki.CARecord
		if err := json.Unmarshal(c.CAState, &rec); err != nil {
			return nil, fmt.Errorf("cluster CA state: %w", err)
		}
		if c.JoinTokens.Worker, err = rec.JoinToken(pki.RoleWorker); err != nil {
			return nil, err
		}
		if c.JoinTokens.Manager, err = rec.JoinToken(pki.RoleManager); err != nil {
			return nil, err
		}
	}
	c.CAState = nil
	c.GossipKeys = c.GossipKeys.Redacted()
	c.UnlockKey = ""
	return c, nil
}

// UpdateCluster replaces the cluster's spec; version must be the
// Meta.Version the caller read (the cluster object also changes when the
// CA or the removed nodes do: read again and retry on api.ErrConflict).
// The settings take effect without a restart, each read from the store
// where it is used: the dispatcher tells every worker the heartbeat period
// at its next heartbeat, the CA issues the next certificate for the new
// lifetime, the orchestrator keeps the new history at its next pass over a
// service. The bounds are api.ClusterSpec.Validate's; the name cannot
// change.
func (s *Server) UpdateCluster(ctx context.Context, version uint64, spec api.ClusterSpec) (*api.Cluster, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("update cluster: %w: %w", ErrInvalidArgument, err)
	}
	err := s.store.UpdateContext(ctx, func(tx store.Tx) error {
		cs, err := tx.FindClusters(store.All)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			return fmt.Errorf("cluster: %w", ErrNotFound)
		}
		cur := cs[0]
		if cur.Meta.Version != version {
			return fmt.Errorf("cluster: read at version %d, now at %d: %w", version, cur.Meta.Version, store.ErrConflict)
		}
		if spec.Name != cur.Spec.Name {
			return invalid("cluster %q: name: cannot change (to %q)", cur.Spec.Name, spec.Name)
		}
		// The subnets given so far came from the pool: as in Swarm, it is
		// chosen at init only.
		if !slices.Equal(spec.Network.Pools(), cur.Spec.Network.Pools()) {
			return invalid("cluster %q: network.default_addr_pool: cannot change after init (is %v)", cur.Spec.Name, cur.Spec.Network.Pools())
		}
		if spec.Network.Size() != cur.Spec.Network.Size() {
			return invalid("cluster %q: network.subnet_size: cannot change after init (is %d)", cur.Spec.Name, cur.Spec.Network.Size())
		}
		// Autolock turned on makes a new unlock key, turned off drops
		// it: every manager rewraps its data key when it sees the change
		// (swarm/nodelock.go).
		// Each change of the KEK is a new generation, which the managers
		// report once applied (Node.DataKey).
		switch on := spec.EncryptionConfig.AutoLockManagers; {
		case on && cur.UnlockKey == "":
			cur.UnlockKey = encryption.NewUnlockKey()
			cur.KEKGeneration++
		case !on && cur.Spec.EncryptionConfig.AutoLockManagers:
			cur.UnlockKey = ""
			cur.KEKGeneration++
		case !on:
			cur.UnlockKey = ""
		}
		cur.Spec = spec.Copy()
		return tx.UpdateCluster(cur)
	})
	if err != nil {
		return nil, fmt.Errorf("update cluster: %w", err)
	}
	return s.GetCluster(ctx)
}

// RotateJoinToken replaces the join token of role ("worker" or "manager"):
// the old one stops working at once. It returns the new token.
func (s *Server) RotateJoinToken(ctx context.Context, role string) (string, error) {
	r, err := pki.RoleFromAPI(api.NodeRole(role))
	if err != nil {
		return "", invalid("join token role: %q is not worker or manager", role)
	}
	var token string
	for {
		err = s.store.UpdateContext(ctx, func(tx store.Tx) error {
			cs, err := tx.FindClusters(store.All)
			if err != nil {
				return err
			}
			if len(cs) == 0 || len(cs[0].CAState) == 0 {
				return invalid("join tokens: this cluster has no certificate authority")
			}
			c := cs[0]
			var rec pki.CARecord
			if err := json.Unmarshal(c.CAState, &rec); err != nil {
				return fmt.Errorf("cluster CA state: %w", err)
			}
			if err := rec.RotateJoinToken(r); err != nil {
				return err
			}
			if token, err = rec.JoinToken(r); err != nil {
				return err
			}
			if c.CAState, err = json.Marshal(rec); err != nil {
				return err
			}
			return tx.UpdateCluster(c)
		})
		if !isConflict(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("rotate %s join token: %w", role, err)
	}
	return token, nil
}

// JoinManager admits a manager into the raft group (called by the joining
// manager itself, authenticated by its manager certificate).
func (s *Server) JoinManager(ctx context.Context, nodeID, addr string, raftID uint64) ([]Peer, error) {
	if s.membership == nil {
		return nil, ErrNoMembership
	}
	if nodeID == "" || addr == "" {
		return nil, invalid("join manager: node ID and address are required")
	}
	return s.membership.AddManager(ctx, nodeID, addr, raftID)
}

// GetUnlockKey returns the cluster's unlock key: control.ErrNoUnlockKey
// while autolock is off.
func (s *Server) GetUnlockKey(ctx context.Context) (string, error) {
	var key string
	var err error
	s.store.View(func(tx store.ReadTx) {
		var cs []*api.Cluster
		if cs, err = tx.FindClusters(store.All); err == nil && len(cs) > 0 {
			key = cs[0].UnlockKey
		}
	})
	if err != nil {
		return "", err
	}
	if key == "" {
		return "", control.ErrNoUnlockKey
	}
	return key, nil
}

// RotateUnlockKey replaces the unlock key and returns the new one. Each
// manager rewraps its data key with it once it sees it; one that was down
// keeps the old wrapping until it is unlocked (with the old key) and sees
// the new one.
func (s *Server) RotateUnlockKey(ctx context.Context) (string, error) {
	key := encryption.NewUnlockKey()
	var err error
	for {
		err = s.store.UpdateContext(ctx, func(tx store.Tx) error {
			cs, err := tx.FindClusters(store.All)
			if err != nil {
				return err
			}
			if len(cs) == 0 {
				return fmt.Errorf("cluster: %w", ErrNotFound)
			}
			c := cs[0]
			if !c.Spec.EncryptionConfig.AutoLockManagers {
				return control.ErrNoUnlockKey
			}
			c.UnlockKey = key
			c.KEKGeneration++
			return tx.UpdateCluster(c)
		})
		if !isConflict(err) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("rotate the unlock key: %w", err)
	}
	return key, nil
}
