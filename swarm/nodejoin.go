package swarm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
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

// askToJoin has the leader add this node to the raft group. Any manager
// may be asked, but only the leader adds members, and leadership may move
// while a busy cluster is asked: a manager that is not the leader answers
// raft.ErrNotLeader (or raft.ErrLostLeadership when it lost it midway), and
// then every manager known, the raft members included, is asked again,
// round after round with a growing pause, until ctx ends. Asking again is
// safe: the leader takes a member it already has as added. Any other
// answer from every manager ends the join.
func askToJoin(ctx context.Context, ident *pki.NodeIdentity, opts []grpc.DialOption, managers []string, members []controlapi.Peer, nodeID, addr string, raftID uint64) ([]controlapi.Peer, error) {
	return joinRounds(ctx, joinCandidates(managers, members, addr), func(ctx context.Context, m string) ([]controlapi.Peer, error) {
		conn, err := dialTLS(m, ident, opts)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return newMembershipClient(conn).JoinManager(cctx, nodeID, addr, raftID)
	})
}

// joinCandidates are the managers to ask, then the raft members' addresses
// that are not among them, without this node's own address.
func joinCandidates(managers []string, members []controlapi.Peer, self string) []string {
	var out []string
	add := func(a string) {
		if a != "" && a != self && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, m := range managers {
		add(m)
	}
	for _, p := range members {
		add(p.Addr)
	}
	return out
}

// Pauses between the rounds of joinRounds.
const (
	joinRetryFirst = 50 * time.Millisecond
	joinRetryMost  = time.Second
)

// joinRounds calls ask on each candidate in turn until one admits the
// node; while some answered that they are not the leader (any more), it
// pauses and goes round again, until ctx ends.
func joinRounds(ctx context.Context, candidates []string, ask func(context.Context, string) ([]controlapi.Peer, error)) ([]controlapi.Peer, error) {
	wait := joinRetryFirst
	for {
		var errs []error
		again := false
		for _, m := range candidates {
			peers, err := ask(ctx, m)
			if err == nil {
				return peers, nil
			}
			errs = append(errs, fmt.Errorf("manager %s: %w", m, err))
			again = again || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLostLeadership)
		}
		if !again {
			return nil, fmt.Errorf("join as manager: %w", errors.Join(errs...))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("join as manager: no leader admitted this node before %w: %w", ctx.Err(), errors.Join(errs...))
		case <-time.After(wait):
		}
		wait = min(2*wait, joinRetryMost)
	}
}
