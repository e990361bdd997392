package swarm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/internal/backoff"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/api"
)

// roleRetry is how long a node waits before trying a failed role switch
// again, doubling after each failure in a row up to roleRetryMax: a
// switch that cannot succeed yet (no manager reachable, the raft group
// refusing) is retried less and less often rather than loading the
// managers.
const (
	roleRetry    = 2 * time.Second
	roleRetryMax = time.Minute
)

// roleSwitchTimeout bounds one attempt (joining the raft group included).
const roleSwitchTimeout = 2 * time.Minute

// kickRole asks followRole to look at the node's role again.
func (n *Node) kickRole() {
	select {
	case n.roleKick <- struct{}{}:
	default:
	}
}

// followRole brings the node to the role its heartbeats ask for: first its
// certificate (renewed through the managers' CA, which issues the new role
// only when the cluster is ready for it), then its components.
func (n *Node) followRole(ctx context.Context) {
	retry := backoff.New(backoff.Config{Base: roleRetry, Max: roleRetryMax})
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.roleKick:
		}
		err := n.reconcileRole(ctx)
		if err == nil || ctx.Err() != nil {
			retry.Reset()
			continue
		}
		wait := retry.Next()
		n.log.Warn("role switch failed; retrying", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		n.kickRole()
	}
}

func (n *Node) reconcileRole(ctx context.Context) error {
	n.stateMu.Lock()
	want := n.wantRole
	n.stateMu.Unlock()
	if want == "" {
		return nil
	}
	if certRole(n.identity) != want {
		// The certificate comes first; its renewal kicks again.
		n.renewer.RenewNow()
		return nil
	}
	if rt := n.current(); rt != nil && rt.role == want {
		return n.recordRole(want)
	}
	sctx, cancel := context.WithTimeout(ctx, roleSwitchTimeout)
	defer cancel()
	return n.switchRole(sctx, want)
}

func certRole(id *pki.NodeIdentity) api.NodeRole {
	if id.Identity().Role == pki.RoleManager {
		return api.NodeRoleManager
	}
	return api.NodeRoleWorker
}

// recordRole saves the role in node.json, for `apiaryd run`. A manager
// lists itself among the managers; a worker forgets its raft member: it is
// out of the group for good.
func (n *Node) recordRole(role api.NodeRole) error {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	if n.state.Role == string(role) {
		return nil
	}
	n.state.Role = string(role)
	self := n.state.AdvertiseAddr
	if role == api.NodeRoleManager && !slices.Contains(n.state.Managers, self) {
		n.state.Managers = append([]string{self}, n.state.Managers...)
	}
	if role == api.NodeRoleWorker {
		n.state.RaftID, n.state.RaftAdmitted = 0, false
		n.state.Managers = slices.DeleteFunc(n.state.Managers, func(a string) bool { return a == self })
		if err := os.RemoveAll(n.raftDir()); err != nil {
			return err
		}
		if err := n.dropKeys(); err != nil {
			return err
		}
	}
	return saveState(n.cfg.DataDir, n.state)
}

// switchRole stops the node's current components and starts those of
// role. A promotion joins the raft group under a new member ID (raft
// refuses a removed member's ID for ever); a demoted node's member has
// already been removed by the leader.
func (n *Node) switchRole(ctx context.Context, role api.NodeRole) error {
	n.switchMu.Lock()
	defer n.switchMu.Unlock()
	if n.stopped {
		return nil
	}
	old := n.current()
	from := api.NodeRole("")
	if old != nil {
		from = old.role
	}
	var boot *bootstrap
	if role == api.NodeRoleManager {
		if n.cfg.ListenAddr == "" {
			return errors.New("cannot become a manager: the node has no listen address (start it with --listen-addr)")
		}
		n.stateMu.Lock()
		fresh := n.state.Role != string(api.NodeRoleManager)
		if fresh {
			n.state.RaftID, n.state.RaftAdmitted = newRaftID(), false
		}
		n.stateMu.Unlock()
		if fresh {
			// What a previous membership left must not be replayed
			// under the new member ID.
			if err := os.RemoveAll(n.raftDir()); err != nil {
				return err
			}
		}
		var err error
		// Ask for the members before stopping anything: failing here
		// leaves the node as it was.
		if boot, err = n.joinBootstrap(ctx); err != nil {
			return err
		}
	}
	n.log.Info("switching role", "from", from, "to", role)
	if old != nil {
		n.setRuntime(nil)
		old.stop()
	}
	if err := n.recordRole(role); err != nil {
		return err
	}
	rt, err := n.start(ctx, role, boot)
	if err != nil {
		return fmt.Errorf("start as %s: %w", role, err)
	}
	if role == api.NodeRoleManager {
		// start returns once the leader admitted the new member.
		if err := n.recordAdmitted(); err != nil {
			rt.stop()
			return err
		}
	}
	n.setRuntime(rt)
	n.log.Info("role switched", "role", role)
	return nil
}

// joinBootstrap asks the managers for the raft members to join.
func (n *Node) joinBootstrap(ctx context.Context) (*bootstrap, error) {
	n.stateMu.Lock()
	managers := slices.DeleteFunc(slices.Clone(n.state.Managers), func(a string) bool { return a == n.state.AdvertiseAddr })
	n.stateMu.Unlock()
	if n.fc != nil {
		for _, m := range n.fc.Known() {
			if m != n.state.AdvertiseAddr && !slices.Contains(managers, m) {
				managers = append([]string{m}, managers...)
			}
		}
	}
	if len(managers) == 0 {
		return nil, errors.New("join as manager: no other manager known")
	}
	peers, err := currentManagers(ctx, n.identity, n.cfg.dialOpts(), managers)
	if err != nil {
		return nil, err
	}
	return &bootstrap{join: peers, via: managers}, nil
}

func newRaftID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

// managersIssuer renews the node's certificate through the managers' CA
// service, the leader first: a manager's own store may be behind (or, once
// its member was removed, frozen), and the leader's says which role the
// node has now.
type managersIssuer struct {
	n     *Node
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (m *managersIssuer) IssueNodeCertificate(ctx context.Context, req *pki.IssueRequest) (*pki.IssueResponse, error) {
	var errs []error
	for _, addr := range m.n.managers() {
		conn, err := m.conn(addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := pki.NewCAClient(conn).IssueNodeCertificate(actx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		// The CA's own refusals are the same on every manager.
		if errors.Is(err, pki.ErrNodeRemoved) || errors.Is(err, pki.ErrPermissionDenied) {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("manager %s: %w", addr, err))
	}
	if len(errs) == 0 {
		return nil, errors.New("no manager known")
	}
	return nil, errors.Join(errs...)
}

func (m *managersIssuer) conn(addr string) (*grpc.ClientConn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.conns[addr]; ok {
		return c, nil
	}
	c, err := dialTLS(addr, m.n.identity, m.n.cfg.dialOpts())
	if err != nil {
		return nil, err
	}
	if m.conns == nil {
		m.conns = map[string]*grpc.ClientConn{}
	}
	m.conns[addr] = c
	return c, nil
}

func (m *managersIssuer) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		c.Close()
	}
	m.conns = nil
}
