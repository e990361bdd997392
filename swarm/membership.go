package swarm

import (
	"context"

	"github.com/apiary-io/apiary/swarm/controlapi"
)

//go:generate go run github.com/apiary-io/apiary/internal/rpcgen -type membership -service apiary.Membership

// membership is the managers' internal service, apart from the users'
// control API: a node that holds a manager certificate asks to be
// admitted to the raft group (controlapi.Server.JoinManager checks the
// request against its certificate).
type membership interface {
	JoinManager(ctx context.Context, nodeID, addr string, raftID uint64) ([]controlapi.Peer, error)
}

var _ membership = (*controlapi.Server)(nil)
