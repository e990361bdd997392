package swarm

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// scriptedMembership answers JoinManager with its errors in turn, then
// admits the node.
type scriptedMembership struct {
	mu    sync.Mutex
	errs  []error
	calls int
}

func (m *scriptedMembership) JoinManager(_ context.Context, nodeID, addr string, raftID uint64) ([]controlapi.Peer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if len(m.errs) > 0 {
		err := m.errs[0]
		m.errs = m.errs[1:]
		return nil, err
	}
	return []controlapi.Peer{{ID: raftID, Addr: addr}}, nil
}

func (m *scriptedMembership) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// notLeader is n answers of a member that is not the leader.
func notLeader(n int, leader uint64) []error {
	var errs []error
	for range n {
		errs = append(errs, &raft.NotLeaderError{Leader: leader})
	}
	return errs
}

// serveMembership serves impl over gRPC on loopback and returns its address.
func serveMembership(t *testing.T, impl membership) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	registerMembership(s, impl, nil)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// askOver asks a manager over gRPC, without TLS: what crosses the wire is
// the error, which must still say "not the leader".
func askOver(t *testing.T) func(context.Context, string) ([]controlapi.Peer, error) {
	return func(ctx context.Context, addr string) ([]controlapi.Peer, error) {
		conn, err := grpc.NewClient(addr, append(rpc.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return newMembershipClient(conn).JoinManager(ctx, "node-1", "127.0.0.1:4242", 42)
	}
}

// A manager asked to add a member after leadership moved answers that it
// is not the leader, and one that lost leadership midway says so; both
// cross the wire as themselves, and the joiner goes round again until the
// leader admits it.
func TestJoinAsksAgainWhenLeadershipMoved(t *testing.T) {
	follower := &scriptedMembership{errs: notLeader(100, 7)}
	leader := &scriptedMembership{errs: []error{
		&raft.NotLeaderError{}, // no leader yet: an election
		raft.ErrLostLeadership,
	}}
	candidates := []string{serveMembership(t, follower), serveMembership(t, leader)}
	ask := askOver(t)
	// What the joiner receives is the sentinel, not an Unknown status.
	if _, err := ask(t.Context(), candidates[0]); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("not the leader, over the wire: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	peers, err := joinRounds(ctx, candidates, ask)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].ID != 42 {
		t.Errorf("admitted with peers %+v", peers)
	}
	if follower.count() != 4 || leader.count() != 3 {
		t.Errorf("the follower was asked %d times, the leader %d, want 4 (the first check, 3 rounds) and 3 (no leader, lost leadership, admitted)", follower.count(), leader.count())
	}
}

// Any other answer from every manager ends the join at once, saying what
// each answered; and a join that no leader admits ends with ctx.
func TestJoinGivesUp(t *testing.T) {
	refusing := &scriptedMembership{errs: []error{controlapi.ErrInvalidArgument, controlapi.ErrInvalidArgument}}
	addr := serveMembership(t, refusing)
	_, err := joinRounds(t.Context(), []string{addr}, askOver(t))
	if !errors.Is(err, controlapi.ErrInvalidArgument) || !strings.Contains(err.Error(), "manager "+addr) {
		t.Errorf("refused: %v", err)
	}
	if refusing.count() != 1 {
		t.Errorf("a refusing manager was asked %d times", refusing.count())
	}

	follower := &scriptedMembership{errs: notLeader(1000, 9)}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = joinRounds(ctx, []string{serveMembership(t, follower)}, askOver(t))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, raft.ErrNotLeader) || !strings.Contains(err.Error(), "no leader admitted this node") {
		t.Errorf("no leader: %v", err)
	}
	if follower.count() < 2 {
		t.Errorf("a follower was asked %d times before the deadline", follower.count())
	}
}

// The managers given are asked first, then the raft members' addresses,
// each once, never this node's own.
func TestJoinCandidates(t *testing.T) {
	got := joinCandidates([]string{"m1:1", "self:1", "m1:1"}, []controlapi.Peer{{ID: 1, Addr: "m1:1"}, {ID: 2, Addr: "m2:1"}, {ID: 3, Addr: "self:1"}, {ID: 4}}, "self:1")
	if want := []string{"m1:1", "m2:1"}; !slices.Equal(got, want) {
		t.Errorf("candidates %v, want %v", got, want)
	}
}
