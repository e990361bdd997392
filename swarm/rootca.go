package swarm

import (
	"context"
	"time"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// nodeCA is controlapi.CA over the node's pki.CAServer.
type nodeCA struct{ ca *pki.CAServer }

func toRotation(st pki.RotationStatus) *controlapi.RootRotation {
	return &controlapi.RootRotation{InProgress: st.InProgress, OldRootDigest: st.OldRootDigest, NewRootDigest: st.NewRootDigest, StartedAt: st.StartedAt, Pending: st.Pending}
}

func (c nodeCA) StartRootRotation(ctx context.Context) (*controlapi.RootRotation, error) {
	st, err := c.ca.StartRootRotation(ctx)
	if err != nil {
		return nil, err
	}
	return toRotation(st), nil
}

func (c nodeCA) RootRotationStatus(ctx context.Context) (*controlapi.RootRotation, error) {
	st, err := c.ca.RootRotationStatus(ctx)
	if err != nil {
		return nil, err
	}
	return toRotation(st), nil
}

// rootRotationPeriod is how often the leader checks whether a root rotation
// can finish.
const rootRotationPeriod = time.Second

// reconcileRootCA finishes a root rotation, on the leader, once every node
// holds a certificate of the new root.
func (n *Node) reconcileRootCA(ctx context.Context) {
	t := time.NewTicker(rootRotationPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rt := n.current()
		if rt == nil || rt.mgr == nil || !rt.mgr.IsLeader() {
			continue
		}
		st, err := rt.ca.ReconcileRootRotation(ctx)
		if err != nil && ctx.Err() == nil {
			n.log.Debug("root rotation check", "err", err)
			continue
		}
		if st.Finished {
			n.log.Info("root CA rotation finished", "root", st.NewRootDigest)
		}
	}
}
