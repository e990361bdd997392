package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// caState is pki.ClusterState over the store: the CA record lives in the
// cluster object (so it replicates through raft and any manager can sign),
// removed node IDs in the cluster's RemovedNodes, and node records are the
// store's nodes. The certificate lifetime is the cluster spec's
// (CAConfig.NodeCertExpiry), read with the record every time the CA reads
// it, so that `apiaryctl swarm update --cert-expiry` applies to the next
// certificate issued; the record never keeps a lifetime of its own.
type caState struct {
	store *store.MemoryStore
}

var _ pki.ClusterState = caState{}

func (c caState) cluster(tx store.ReadTx) (*api.Cluster, error) {
	cs, err := tx.FindClusters(store.All)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("cluster object: %w", store.ErrNotFound)
	}
	return cs[0], nil
}

// IsRemoved implements pki.RemovedNodes.
func (c caState) IsRemoved(nodeID string) bool {
	removed := false
	c.store.View(func(tx store.ReadTx) {
		if cl, err := c.cluster(tx); err == nil {
			removed = slices.Contains(cl.RemovedNodes, nodeID)
		}
	})
	return removed
}

// CA implements pki.ClusterState.
func (c caState) CA(ctx context.Context) (pki.CARecord, error) {
	var rec pki.CARecord
	var err error
	c.store.View(func(tx store.ReadTx) {
		var cl *api.Cluster
		if cl, err = c.cluster(tx); err != nil {
			return
		}
		if len(cl.CAState) == 0 {
			err = errors.New("the cluster has no CA yet")
			return
		}
		if err = json.Unmarshal(cl.CAState, &rec); err == nil {
			rec.NodeCertExpiry = cl.Spec.CAConfig.NodeCertExpiry
		}
	})
	return rec, err
}

// UpdateCA implements pki.ClusterState: one transaction, retried on
// conflict.
func (c caState) UpdateCA(ctx context.Context, fn func(*pki.CARecord) error) error {
	for {
		err := c.store.UpdateContext(ctx, func(tx store.Tx) error {
			cl, err := c.cluster(tx)
			if err != nil {
				return err
			}
			var rec pki.CARecord
			if len(cl.CAState) > 0 {
				if err := json.Unmarshal(cl.CAState, &rec); err != nil {
					return fmt.Errorf("read CA state: %w", err)
				}
			}
			rec.NodeCertExpiry = cl.Spec.CAConfig.NodeCertExpiry
			if err := fn(&rec); err != nil {
				return err
			}
			b, err := marshalCARecord(rec)
			if err != nil {
				return err
			}
			cl.CAState = b
			return tx.UpdateCluster(cl)
		})
		if !errors.Is(err, store.ErrConflict) || ctx.Err() != nil {
			return err
		}
	}
}

// marshalCARecord encodes rec for the cluster object, without a lifetime:
// the spec holds it.
func marshalCARecord(rec pki.CARecord) ([]byte, error) {
	rec.NodeCertExpiry = 0
	return json.Marshal(rec)
}

// DesiredRole implements pki.ClusterState: the node's CertificateRole.
func (c caState) DesiredRole(nodeID string) (pki.Role, bool) {
	var role pki.Role
	ok := false
	c.store.View(func(tx store.ReadTx) {
		if n := tx.GetNode(nodeID); n != nil {
			r, err := pki.RoleFromAPI(n.CertificateRole())
			role, ok = r, err == nil
		}
	})
	return role, ok
}

// RecordCertificate implements pki.ClusterState: a new node is registered
// here, with the role its token granted; a known one gets its certificate
// recorded (root rotation waits for every node to hold a new one).
func (c caState) RecordCertificate(ctx context.Context, nc pki.NodeCert) error {
	cert := &api.NodeCertificate{Role: string(nc.Role), IssuerKeyID: nc.IssuerKeyID, Serial: nc.Serial, NotAfter: nc.NotAfter}
	for {
		err := c.store.UpdateContext(ctx, func(tx store.Tx) error {
			if n := tx.GetNode(nc.NodeID); n != nil {
				n.Certificate = cert
				return tx.UpdateNode(n)
			}
			role := api.NodeRoleWorker
			if nc.Role == pki.RoleManager {
				role = api.NodeRoleManager
			}
			avail := api.NodeAvailabilityActive
			if nc.Availability != "" { // checked by the CA: pause or drain
				avail = api.NodeAvailability(nc.Availability)
			}
			return tx.CreateNode(&api.Node{
				ID:          nc.NodeID,
				Spec:        api.NodeSpec{Role: role, Availability: avail},
				Status:      api.NodeStatus{State: api.NodeStateUnknown, Message: "joined; waiting for its first session"},
				Certificate: cert,
			})
		})
		if !errors.Is(err, store.ErrConflict) || ctx.Err() != nil {
			return err
		}
	}
}

// Nodes implements pki.ClusterState.
func (c caState) Nodes(ctx context.Context) ([]pki.NodeCert, error) {
	var out []pki.NodeCert
	var err error
	c.store.View(func(tx store.ReadTx) {
		var nodes []*api.Node
		if nodes, err = tx.FindNodes(store.All); err != nil {
			return
		}
		for _, n := range nodes {
			r, rerr := pki.RoleFromAPI(n.Spec.Role)
			if rerr != nil {
				continue
			}
			nc := pki.NodeCert{NodeID: n.ID, Role: r}
			if cert := n.Certificate; cert != nil {
				nc.IssuerKeyID, nc.Serial, nc.NotAfter = cert.IssuerKeyID, cert.Serial, cert.NotAfter
			}
			out = append(out, nc)
		}
	})
	return out, err
}
