package swarm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// currentManagers asks a manager for the raft members (ID and address) so
// that this member's transport can answer them once it is added.
func currentManagers(ctx context.Context, ident *pki.NodeIdentity, opts []grpc.DialOption, managers []string) ([]controlapi.Peer, error) {
	var errs []error
	for _, m := range managers {
		conn, err := dialTLS(m, ident, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		nodes, err := control.NewAPIClient(conn).ListNodes(cctx)
		cancel()
		conn.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("manager %s: %w", m, err))
			continue
		}
		var peers []controlapi.Peer
		for _, n := range nodes {
			if n.ManagerStatus != nil && n.ManagerStatus.RaftID != 0 && n.ManagerStatus.Addr != "" {
				peers = append(peers, controlapi.Peer{ID: n.ManagerStatus.RaftID, Addr: n.ManagerStatus.Addr})
			}
		}
		if len(peers) > 0 {
			return peers, nil
		}
		errs = append(errs, fmt.Errorf("manager %s: lists no raft members", m))
	}
	return nil, fmt.Errorf("join as manager: %w", errors.Join(errs...))
}

// askToJoin has a manager add this node to the raft group.
func askToJoin(ctx context.Context, ident *pki.NodeIdentity, opts []grpc.DialOption, managers []string, nodeID, addr string, raftID uint64) ([]controlapi.Peer, error) {
	var errs []error
	for _, m := range managers {
		conn, err := dialTLS(m, ident, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		peers, err := newMembershipClient(conn).JoinManager(cctx, nodeID, addr, raftID)
		cancel()
		conn.Close()
		if err == nil {
			return peers, nil
		}
		errs = append(errs, fmt.Errorf("manager %s: %w", m, err))
	}
	return nil, fmt.Errorf("join as manager: %w", errors.Join(errs...))
}
