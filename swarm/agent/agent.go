// Package agent is the worker: it keeps a session with a manager's
// dispatcher, runs the tasks assigned to its node through an executor, and
// reports every state change. Its running tasks do not depend on the
// session: when the manager goes away the agent reconnects (to another
// manager, once there are several) and the tasks run on untouched.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/internal/backoff"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// Dispatcher is the manager as a worker sees it (the worker contract,
// package session): a manager's *dispatcher.Dispatcher in the same
// process, a gRPC client (session.NewAPIClient) or a FailoverClient across
// the network.
type Dispatcher = session.API

// rpcTimeout bounds each call to a manager.
const rpcTimeout = 5 * time.Second

// Config configures an agent.
type Config struct {
	// Dispatcher is the manager connection.
	Dispatcher Dispatcher
	// Executor runs the tasks.
	Executor executor.Executor
	// NodeID resumes a node that joined before; empty joins as a new node.
	NodeID string
	// Addr is the address this node is reachable at, for display.
	Addr   string
	Logger *slog.Logger
	// ReconnectBackoff bounds the wait between session attempts: the
	// first after a session ends comes within a tenth of it, later ones
	// between half of it and all of it.
	ReconnectBackoff time.Duration

	// HostAddr is the node's address on the host data path (an IP
	// literal): tasks bind it (APIARY_HOST) and their host ports are
	// probed on it. Empty means the host of Addr when that is an IP, else
	// 127.0.0.1.
	HostAddr string
	// DNSAddr is the node's DNS server, HOST:PORT, given to tasks as
	// APIARY_DNS; empty leaves APIARY_DNS unset.
	DNSAddr string
	// HostPortRange is where tasks' host ports come from (hostports.go);
	// zero lets the kernel choose free ephemeral ports.
	HostPortRange PortRange
	// OnTasks, if set, is called with every task this node runs, each
	// with its latest status (host ports in PortStatus), whenever one's
	// status changes or one goes: the routing mesh publishes them. Changes
	// that come in a burst are handed over together (one call with the
	// latest set), so a node starting thousands of tasks makes a few
	// calls, not one per report. Calls are serialized and come from one
	// goroutine while Run runs; it must not call the agent.
	OnTasks func(tasks []*api.Task)
	// OnGossipKeys, if set, is handed the cluster's gossip keys when the
	// node first learns them and whenever they change (at registration,
	// or in a heartbeat response), never twice the same: wire it to the
	// gossip member's keyring (gossip_keys.go). Calls are serialized; a
	// slow one delays the session's heartbeats.
	OnGossipKeys func(keys GossipKeys)
	// GossipAddr is where the node gossips, registered for other nodes to
	// join; empty when it takes no part in the routing mesh.
	GossipAddr string
	// WantGossipPeers, if set, says whether the node's gossip knows no
	// other node yet (a heartbeat then asks for some); OnGossipPeers is
	// handed the gossip addresses the managers answer with.
	WantGossipPeers func() bool
	OnGossipPeers   func(addrs []string)
}

// defaultHostAddr is HostAddr when neither it nor Addr gives one.
const defaultHostAddr = "127.0.0.1"

// hostConfig checks and defaults the host data path's fields.
func (c *Config) hostConfig(log *slog.Logger) error {
	if c.HostAddr == "" {
		c.HostAddr = defaultHostAddr
		if host, _, err := net.SplitHostPort(c.Addr); err == nil && net.ParseIP(host) != nil {
			c.HostAddr = host
		} else if c.Addr != "" {
			log.Warn("the node address is not IP:PORT; tasks bind "+defaultHostAddr+" (set HostAddr)", "addr", c.Addr)
		}
	} else if net.ParseIP(c.HostAddr) == nil {
		return fmt.Errorf("agent: config: HostAddr %q: not an IP address", c.HostAddr)
	}
	if c.DNSAddr != "" {
		if _, err := netip.ParseAddrPort(c.DNSAddr); err != nil {
			return fmt.Errorf("agent: config: DNSAddr %q: want IP:PORT: %w", c.DNSAddr, err)
		}
	}
	if err := c.HostPortRange.validate(); err != nil {
		return fmt.Errorf("agent: config: HostPortRange %w", err)
	}
	return nil
}

// Agent runs one node's tasks.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	nodeID  string
	runners map[string]*runner
	// deps are the secrets and configs the node's tasks need (deps.go).
	deps  deps
	ready chan struct{} // closed after the first registration
	once  sync.Once

	// keysMu orders the gossip keys' deliveries; keys is the last one.
	keysMu sync.Mutex
	keys   *GossipKeys

	reporter *reporter
	// ports are the host ports of the node's tasks (hostports.go).
	ports *hostPorts
	// runCtx is Run's context: runners stop following their tasks when it
	// ends, leaving the tasks themselves running.
	runCtx context.Context

	// local is every task with its latest status, for Config.OnTasks
	// (localtasks.go).
	localMu   sync.Mutex
	local     map[string]*api.Task
	localKick chan struct{} // capacity 1: the set changed
}

// New returns an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Dispatcher == nil {
		return nil, errors.New("agent: config: Dispatcher is required")
	}
	if cfg.Executor == nil {
		return nil, errors.New("agent: config: Executor is required")
	}
	if cfg.ReconnectBackoff <= 0 {
		cfg.ReconnectBackoff = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.hostConfig(log); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log.With("component", "agent"), nodeID: cfg.NodeID, runners: map[string]*runner{}, ready: make(chan struct{}), local: map[string]*api.Task{}, localKick: make(chan struct{}, 1)}
	a.ports = newHostPorts(cfg.HostAddr, cfg.HostPortRange)
	a.reporter = newReporter(a)
	return a, nil
}

// NodeID returns the node's ID, known after the first registration.
func (a *Agent) NodeID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodeID
}

// Ready is closed once the node has registered for the first time.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Run keeps a session open until ctx ends, reconnecting with jittered
// backoff. Tasks keep running when Run returns: stopping a node's agent is
// not stopping its work (see ShutdownTasks).
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	a.runCtx = ctx
	a.mu.Unlock()
	var wg sync.WaitGroup
	// The reporter stops with Run, also when Run ends on its own (a removed
	// node): waiting for it on ctx alone would never return.
	rctx, stopReporter := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); a.reporter.run(rctx) }()
	if a.cfg.OnTasks != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.deliverTasks(rctx) }()
	}
	defer wg.Wait()
	defer stopReporter()
	retry := backoff.New(reconnectBackoff(a.cfg.ReconnectBackoff))
	for {
		start := time.Now()
		err := a.session(ctx)
		if time.Since(start) > a.cfg.ReconnectBackoff {
			retry.Reset() // the session lived: this is a new failure
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, session.ErrNodeRemoved) {
			return fmt.Errorf("agent: %w", err)
		}
		wait := retry.Next()
		a.log.Warn("session ended; reconnecting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// reconnectBackoff is the wait between session attempts. The first comes
// quickly, within d/10 (a failover: another manager is probably there
// already); repeated failures wait between d/2 and d. The jitter spreads
// the workers of a failed manager over the interval.
func reconnectBackoff(d time.Duration) backoff.Config {
	return backoff.Config{Base: d / 10, Max: d, Multiplier: 10, Jitter: 0.5}
}

// session runs one session: register, heartbeat, follow assignments.
func (a *Agent) session(ctx context.Context) error {
	desc, err := a.cfg.Executor.Describe(ctx)
	if err != nil {
		return fmt.Errorf("describe node: %w", err)
	}
	resp, err := a.cfg.Dispatcher.Register(ctx, &session.RegisterRequest{NodeID: a.NodeID(), Description: desc, Addr: a.cfg.Addr, GossipAddr: a.cfg.GossipAddr})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	a.mu.Lock()
	a.nodeID = resp.NodeID
	a.mu.Unlock()
	a.takeGossipKeys(resp.GossipKeys)
	a.takeGossipPeers(resp.GossipPeers)
	a.once.Do(func() { close(a.ready) })

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.reporter.setSession(resp.NodeID, resp.SessionID)
	defer a.reporter.setSession("", "")

	errc := make(chan error, 2)
	go func() { errc <- a.heartbeat(sctx, resp) }()
	go func() { errc <- a.follow(sctx, resp) }()
	err = <-errc
	cancel()
	<-errc
	return err
}

func (a *Agent) heartbeat(ctx context.Context, s *session.RegisterResponse) error {
	period := s.HeartbeatPeriod
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(period):
		}
		// A manager cut off the network does not refuse, it is silent: every
		// call carries a deadline so the session fails over instead of
		// waiting for TCP to give up.
		hctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		want := a.cfg.WantGossipPeers != nil && a.cfg.WantGossipPeers()
		resp, err := a.cfg.Dispatcher.Heartbeat(hctx, &session.HeartbeatRequest{NodeID: s.NodeID, SessionID: s.SessionID, GossipKeysVersion: a.gossipKeysVersion(), WantGossipPeers: want})
		cancel()
		if err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
		period = resp.Period
		a.takeGossipKeys(resp.GossipKeys)
		a.takeGossipPeers(resp.GossipPeers)
	}
}

// takeGossipPeers hands the managers' list of gossip addresses on (at most
// session.MaxGossipPeers are used).
func (a *Agent) takeGossipPeers(addrs []string) {
	if a.cfg.OnGossipPeers == nil || len(addrs) == 0 {
		return
	}
	if len(addrs) > session.MaxGossipPeers {
		addrs = addrs[:session.MaxGossipPeers]
	}
	a.cfg.OnGossipPeers(addrs)
}

func (a *Agent) follow(ctx context.Context, s *session.RegisterResponse) error {
	st, err := a.cfg.Dispatcher.Assignments(ctx, &session.AssignmentsRequest{NodeID: s.NodeID, SessionID: s.SessionID})
	if err != nil {
		return fmt.Errorf("assignments: %w", err)
	}
	var set *session.AssignmentsMessage // a complete set arriving in parts
	for {
		m, err := st.Recv()
		if err != nil {
			return fmt.Errorf("assignments: %w", err)
		}
		if m.Type == session.AssignmentsComplete && (m.More || set != nil) {
			if set == nil {
				set = &session.AssignmentsMessage{Type: session.AssignmentsComplete}
			}
			set.Tasks = append(set.Tasks, m.Tasks...)
			set.Secrets = append(set.Secrets, m.Secrets...)
			set.Configs = append(set.Configs, m.Configs...)
			if m.More {
				continue
			}
			m, set = set, nil
		}
		a.apply(m)
	}
}

// apply hands assignment changes to the task runners.
func (a *Agent) apply(m *session.AssignmentsMessage) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deps.take(m)
	if m.Type == session.AssignmentsComplete {
		keep := map[string]bool{}
		for _, t := range m.Tasks {
			keep[t.ID] = true
		}
		for id, r := range a.runners {
			if !keep[id] {
				r.remove()
			}
		}
		if l, ok := a.cfg.Executor.(executor.TaskLister); ok {
			go a.removeStrays(a.runCtx, l, keep)
		}
	}
	for _, t := range m.Tasks {
		r, ok := a.runners[t.ID]
		if !ok {
			r = newRunner(a, t)
			a.runners[t.ID] = r
			go r.run(a.runCtx)
		}
		r.update(t)
	}
	for _, id := range m.Removed {
		if r, ok := a.runners[id]; ok {
			r.remove()
		}
	}
}

// removeStrays stops and removes what the executor still holds (a previous
// agent's processes or containers, found by their records or labels) that
// the managers no longer assign to this node: tasks replaced while the node
// was away, or of services removed meanwhile. Assigned ones are adopted by
// their runners instead.
func (a *Agent) removeStrays(ctx context.Context, l executor.TaskLister, assigned map[string]bool) {
	held, err := l.ListTasks(ctx)
	if err != nil {
		a.log.Warn("list the executor's tasks", "err", err)
		return
	}
	for _, t := range held {
		a.mu.Lock()
		_, running := a.runners[t.ID]
		a.mu.Unlock()
		if assigned[t.ID] || running {
			continue
		}
		ctrl, err := a.cfg.Executor.Controller(t)
		if err != nil {
			continue
		}
		if err := ctrl.Remove(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("remove stray task", "task", t.ID, "err", err)
			continue
		}
		a.log.Info("removed a task this node no longer runs", "task", t.ID)
	}
}

func (a *Agent) forget(id string, r *runner) {
	a.mu.Lock()
	if a.runners[id] == r {
		delete(a.runners, id)
	}
	a.mu.Unlock()
	a.reporter.forget(id)
	a.noteGone(id)
}

// ShutdownTasks stops every task this agent runs, as when the machine goes
// away, and waits for them to stop or ctx to end.
func (a *Agent) ShutdownTasks(ctx context.Context) error {
	a.mu.Lock()
	rs := make([]*runner, 0, len(a.runners))
	for _, r := range a.runners {
		rs = append(rs, r)
	}
	a.mu.Unlock()
	var errs []error
	for _, r := range rs {
		if err := r.kill(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// report queues a task status for the manager.
func (a *Agent) report(taskID string, st api.TaskStatus) { a.reporter.report(taskID, st) }

// ErrNoLogs: the task is unknown here, or its executor keeps no output.
var ErrNoLogs = errors.New("no logs for this task on this node")

// Logs returns the output of a task this node runs (or ran and still
// holds), when its executor keeps it.
func (a *Agent) Logs(ctx context.Context, taskID string, opts executor.LogOptions) (io.ReadCloser, error) {
	a.mu.Lock()
	r, ok := a.runners[taskID]
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("task %s: %w", taskID, ErrNoLogs)
	}
	r.mu.Lock()
	ctrl := r.ctrl
	r.mu.Unlock()
	lr, ok := ctrl.(executor.LogReader)
	if !ok {
		return nil, fmt.Errorf("task %s: %w", taskID, ErrNoLogs)
	}
	return lr.Logs(ctx, opts)
}
