// Package swarmtest starts real clusters inside a test: managers and
// workers as swarm.Nodes in this process, each with its own data dir,
// certificate and gRPC server on its own loopback address (127.0.0.x),
// talking mutual TLS exactly as separate machines would, with the fake
// executor (or one the test picks). Members can be killed and restarted
// from their data dirs. It is what later tests and users test against when
// an in-memory cluster is not real enough.
//
//	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, Workers: 2})
//	cl := c.Client(c.Leader())
//	svc, _ := cl.CreateService(ctx, spec)
//	c.Kill(c.Leader())
package swarmtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

// Options shape a cluster.
type Options struct {
	Managers, Workers int
	// Executor makes a member's executor; nil gives each a fake one.
	Executor func(name string) executor.Executor
	// HeartbeatPeriod defaults to 200 ms, RaftTick to 20 ms: fast
	// failure detection for tests. The heartbeat period is the cluster's
	// (its spec, set by the first manager's init); the tick each
	// manager's.
	HeartbeatPeriod, RaftTick time.Duration
	// Configure, if set, adjusts each member's node configuration (its
	// manager's scheduler plugins, raft settings...) after the options
	// above, every time the member starts: at init, join and restart.
	Configure func(name string, cfg *swarm.NodeConfig)
	// Logger defaults to discarding everything (SWARMTEST_LOG=1 in the
	// environment: everything to stderr, debug level).
	Logger *slog.Logger
	// Timeout bounds each wait (default 60 s).
	Timeout time.Duration
}

// Member is one node of the cluster.
type Member struct {
	Name    string
	Addr    string
	DataDir string
	// Manager says whether the member runs as a manager (SetRole keeps it
	// up to date).
	Manager bool
	Node    *swarm.Node // nil while killed
}

// runsManager says whether m runs a manager now.
func runsManager(m *Member) bool { return m.Node != nil && m.Node.Manager() != nil }

// Cluster is a running test cluster.
type Cluster struct {
	t       testing.TB
	opts    Options
	Members []*Member
	net     network
	root    string // the members' data dirs are below
}

var nextIP atomic.Uint32

// loopback returns a free address on a fresh 127.0.0.x.
func loopback(t testing.TB) string {
	for i := 0; i < 200; i++ {
		ip := fmt.Sprintf("127.0.%d.%d", 10+nextIP.Load()/250%200, 2+nextIP.Add(1)%250)
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatal("swarmtest: no free loopback address")
	return ""
}

// Start builds the cluster: the first manager initialises it, the others
// join with the manager token, the workers with the worker token. It
// returns once every node is ready and one manager leads; everything stops
// when the test ends.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Managers < 1 {
		t.Fatal("swarmtest: a cluster needs at least one manager")
	}
	if o.HeartbeatPeriod == 0 {
		o.HeartbeatPeriod = 200 * time.Millisecond
	}
	if o.RaftTick == 0 {
		o.RaftTick = 20 * time.Millisecond
	}
	if o.Logger == nil {
		var w io.Writer = io.Discard
		if os.Getenv("SWARMTEST_LOG") != "" {
			// Every node's log, to read a failure.
			w = os.Stderr
		}
		o.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Executor == nil {
		o.Executor = func(name string) executor.Executor { return fake.New(fake.Config{Hostname: name}) }
	}
	c := &Cluster{t: t, opts: o, root: t.TempDir()}
	root := c.root
	t.Cleanup(c.stop)
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()

	first := &Member{Name: "manager-1", Addr: loopback(t), Manager: true}
	first.DataDir = filepath.Join(root, first.Name)
	n, err := swarm.InitNode(ctx, c.config(first))
	if err != nil {
		t.Fatalf("swarmtest: init: %v", err)
	}
	first.Node = n
	c.Members = append(c.Members, first)
	var tokens *api.JoinTokens
	c.WaitFor("the first manager to lead", func() (bool, string) {
		cl, err := c.Client(first).GetCluster(ctx)
		if err != nil {
			return false, err.Error()
		}
		tokens = &cl.JoinTokens
		return true, ""
	})
	for i := 2; i <= o.Managers; i++ {
		c.join(ctx, fmt.Sprintf("manager-%d", i), tokens.Manager, true)
		// Joining one at a time keeps a quorum while each is added.
		c.WaitReady()
	}
	for i := 1; i <= o.Workers; i++ {
		c.join(ctx, fmt.Sprintf("worker-%d", i), tokens.Worker, false)
	}
	c.WaitReady()
	return c
}

// Join adds a node named name to the running cluster, a manager or a
// worker, with the join token the cluster gives now (its certificate is
// issued then, under the cluster's settings of the moment), and waits
// until every running node is ready.
func (c *Cluster) Join(name string, manager bool) *Member {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	cl, err := c.Client(c.Alive()).GetCluster(ctx)
	if err != nil {
		c.t.Fatalf("swarmtest: join %s: %v", name, err)
	}
	token := cl.JoinTokens.Worker
	if manager {
		token = cl.JoinTokens.Manager
	}
	m := c.join(ctx, name, token, manager)
	c.WaitReady()
	return m
}

func (c *Cluster) join(ctx context.Context, name, token string, manager bool) *Member {
	c.t.Helper()
	m := &Member{Name: name, Addr: loopback(c.t), Manager: manager}
	m.DataDir = filepath.Join(c.root, name)
	n, err := swarm.JoinNode(ctx, c.config(m), token, c.managerAddrs())
	if err != nil {
		c.t.Fatalf("swarmtest: join %s: %v", name, err)
	}
	m.Node = n
	c.Members = append(c.Members, m)
	return m
}

func (c *Cluster) config(m *Member) swarm.NodeConfig {
	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir = m.DataDir
	cfg.ListenAddr = m.Addr
	cfg.Executor = c.opts.Executor(m.Name)
	cfg.Dialer = c.net.dialer(m.Addr)
	cfg.Logger = c.opts.Logger.With("member", m.Name)
	cfg.Manager.Raft.TickInterval = c.opts.RaftTick
	// Read by the first manager's InitNode alone: the cluster's.
	cfg.Manager.ClusterSpec.Dispatcher.HeartbeatPeriod = c.opts.HeartbeatPeriod
	if c.opts.Configure != nil {
		c.opts.Configure(m.Name, &cfg)
	}
	return cfg
}

// Isolate cuts the network between the given members and the rest: each
// side's members reach one another, not the other side. Open connections
// across the cut are closed and new ones refused, as when a switch fails
// (control sockets, which are local, keep working).
func (c *Cluster) Isolate(members ...*Member) {
	var side, all []string
	for _, m := range members {
		side = append(side, m.Addr)
	}
	for _, m := range c.Members {
		all = append(all, m.Addr)
	}
	c.net.cut(side, all)
}

// Heal restores the whole network.
func (c *Cluster) Heal() { c.net.heal() }

func (c *Cluster) managerAddrs() []string {
	var out []string
	for _, m := range c.Members {
		if m.Manager {
			out = append(out, m.Addr)
		}
	}
	return out
}

// Client returns a client of a manager's control API through its control
// socket, as apiaryctl reaches it.
func (c *Cluster) Client(m *Member) *swarm.Client {
	c.t.Helper()
	cl, closeFn, err := swarm.DialClient("unix://" + swarm.ControlSocket(m.DataDir))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { closeFn() })
	return cl
}

// Alive returns a running manager (the leader if one is known).
func (c *Cluster) Alive() *Member {
	for _, m := range c.Members {
		if runsManager(m) && m.Node.Manager().IsLeader() {
			return m
		}
	}
	for _, m := range c.Members {
		if runsManager(m) {
			return m
		}
	}
	c.t.Fatal("swarmtest: no manager is running")
	return nil
}

// Leader waits for a leading manager and returns it.
func (c *Cluster) Leader() *Member {
	c.t.Helper()
	var lead *Member
	c.WaitFor("a leader", func() (bool, string) {
		for _, m := range c.Members {
			if runsManager(m) && m.Node.Manager().IsLeader() {
				lead = m
				return true, ""
			}
		}
		return false, "no running manager leads"
	})
	return lead
}

// WaitReady waits until every running member's node is ready and the
// managers that run are reachable with one leader.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	c.WaitFor("every running node ready", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		nodes, err := c.Client(c.Alive()).ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		state := map[string]*api.Node{}
		for _, n := range nodes {
			state[n.ID] = n
		}
		for _, m := range c.Members {
			if m.Node == nil {
				continue
			}
			n := state[m.Node.NodeID()]
			if n == nil {
				return false, fmt.Sprintf("%s unknown to %s", m.Name, c.Alive().Name)
			}
			if n.Status.State != api.NodeStateReady {
				return false, fmt.Sprintf("%s is %s (%s) for %s", m.Name, n.Status.State, n.Status.Message, c.Alive().Name)
			}
		}
		return true, ""
	})
}

// SetRole promotes or demotes a running member, as `apiaryctl node
// promote|demote` does, and waits until the switch is complete: the member
// runs in its new role, the cluster lists it as a reachable manager or as
// no manager at all, and it is ready.
func (c *Cluster) SetRole(m *Member, role api.NodeRole) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	cl := c.Client(c.Leader())
	if _, err := cl.EditNode(ctx, m.Node.NodeID(), func(s *api.NodeSpec) error { s.Role = role; return nil }); err != nil {
		c.t.Fatalf("swarmtest: set role of %s: %v", m.Name, err)
	}
	c.WaitFor(m.Name+" to become a "+string(role), func() (bool, string) {
		if m.Node == nil {
			return false, m.Name + " is not running"
		}
		if got := m.Node.Role(); got != string(role) {
			return false, m.Name + " runs as " + got
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := c.Client(c.Alive()).GetNode(ctx, m.Node.NodeID())
		if err != nil {
			return false, err.Error()
		}
		switch {
		case role == api.NodeRoleManager && (n.ManagerStatus == nil || n.ManagerStatus.Reachability != api.ReachabilityReachable):
			return false, fmt.Sprintf("%s manager status %+v", m.Name, n.ManagerStatus)
		case role == api.NodeRoleWorker && n.ManagerStatus != nil:
			return false, fmt.Sprintf("%s is still raft member %x", m.Name, n.ManagerStatus.RaftID)
		case n.Status.State != api.NodeStateReady:
			return false, fmt.Sprintf("%s is %s", m.Name, n.Status.State)
		}
		return true, ""
	})
	m.Manager = role == api.NodeRoleManager
}

// Kill stops a member at once, as if its process died: its tasks (fake
// ones) are left as they were.
func (c *Cluster) Kill(m *Member) {
	if m.Node != nil {
		m.Node.Stop()
		m.Node = nil
	}
}

// Restart starts a killed member again from its data dir.
func (c *Cluster) Restart(m *Member) {
	c.t.Helper()
	if m.Node != nil {
		c.t.Fatalf("swarmtest: %s is running", m.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	n, err := swarm.RestartNode(ctx, c.config(m))
	if err != nil {
		c.t.Fatalf("swarmtest: restart %s: %v", m.Name, err)
	}
	m.Node = n
}

// WaitFor polls cond until it holds or the cluster's timeout passes.
func (c *Cluster) WaitFor(what string, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.Timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("swarmtest: timed out after %v waiting for %s: %s", c.opts.Timeout, what, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (c *Cluster) stop() {
	for _, m := range c.Members {
		c.Kill(m)
	}
}
