package swarm

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/allocator"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/dispatcher"
	"github.com/apiary-io/apiary/swarm/keymanager"
	"github.com/apiary-io/apiary/swarm/orchestrator"
	"github.com/apiary-io/apiary/swarm/placer"
)

// ManagerConfig configures a manager: one started by StartManager, or a
// node's whenever it runs as a manager (NodeConfig.Manager). Start from
// DefaultManagerConfig: every setting of the manager's process is here,
// and nothing is set on a manager once it runs. Settings of the whole
// cluster (heartbeat period, certificate lifetime, task history) are not:
// they live in the cluster object, from ClusterSpec at its creation, and
// change with Client.UpdateCluster.
type ManagerConfig struct {
	// NodeID is this manager's node ID; a random one when empty.
	NodeID string
	// Addr is the address other nodes reach this manager's gRPC services
	// at (recorded in its node's ManagerStatus).
	Addr string
	// ClusterSpec is a new cluster's settings: the cluster object is made
	// from it once, by the first leader (InitNode's). A manager of an
	// existing cluster ignores it.
	ClusterSpec api.ClusterSpec
	// Dispatcher tunes worker sessions (grace, status batching).
	Dispatcher dispatcher.Config
	// Scheduler is the placement pipeline: the built-in plugins and the
	// program's own (scheduler.Config.Register). The node records their
	// names in its ManagerStatus, so managers that disagree show in
	// `node inspect`.
	Scheduler scheduler.Config
	// Raft, when set, makes the manager one member of a replicated group
	// (start from raft.DefaultConfig(); ID defaults to RaftID(NodeID); FSM
	// is set by the manager). Nil keeps the store in this process alone.
	Raft *raft.Config
	// CAState is the new cluster's CA record (JSON, package pki), stored in
	// the cluster object by the first leader.
	CAState []byte
	Logger  *slog.Logger
}

// DefaultManagerConfig returns Swarm's defaults (adaptive heartbeats, the
// built-in scheduler plugins) for a manager without replication.
func DefaultManagerConfig() ManagerConfig {
	return ManagerConfig{
		ClusterSpec: api.DefaultClusterSpec(),
		Dispatcher:  dispatcher.DefaultConfig(),
		Scheduler:   scheduler.DefaultConfig(),
	}
}

// RaftID derives a manager's raft member ID from its node ID: stable, and
// never zero.
func RaftID(nodeID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(nodeID))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// Manager holds the desired state and, while it leads, runs the control
// loop over it: orchestrator, allocator, placer (scheduler) and dispatcher.
type Manager struct {
	cfg        ManagerConfig
	nodeID     string
	store      *store.MemoryStore
	raft       *raft.Node
	control    *controlapi.Server
	dispatcher *dispatcher.Dispatcher
	log        *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup

	serversMu sync.Mutex
	servers   []*grpc.Server
	stopped   bool
	errMu     sync.Mutex
	err       error
	// registered is closed once this manager's own node record exists.
	registered chan struct{}

	// localLogs serves the output of workers in this process
	// (ServeLogsFrom).
	localLogs *localLogs

	membershipMu sync.Mutex
}

// lateProposer lets the store be built before the raft node that replicates
// it (the node needs the store as its FSM).
type lateProposer struct{ node *raft.Node }

// MaxProposalSize implements store.SizeLimitedProposer.
func (p *lateProposer) MaxProposalSize() int { return p.node.MaxProposalSize() }

// Propose proposes through raft. While the group has no leader (an
// election in progress) or drops the proposal before it entered the log,
// it waits and tries again until ctx ends: the proposal certainly did not
// commit, so trying again cannot apply it twice. A proposal whose outcome is
// unknown (leadership lost after it entered the log) is not retried.
func (p *lateProposer) Propose(ctx context.Context, data []byte) (uint64, error) {
	return p.retry(ctx, func() (uint64, error) { return p.node.Propose(ctx, data) })
}

// ProposalHeadroom implements store.FramingProposer.
func (p *lateProposer) ProposalHeadroom() int { return p.node.ProposalHeadroom() }

// ProposeFramed implements store.FramingProposer: Propose, with the
// envelope written in front of the data in place.
func (p *lateProposer) ProposeFramed(ctx context.Context, buf []byte) (uint64, error) {
	return p.retry(ctx, func() (uint64, error) { return p.node.ProposeFramed(ctx, buf) })
}

func (p *lateProposer) retry(ctx context.Context, propose func() (uint64, error)) (uint64, error) {
	wait := 20 * time.Millisecond
	for {
		idx, err := propose()
		var nl *raft.NotLeaderError
		retry := errors.Is(err, raft.ErrProposalDropped) || (errors.As(err, &nl) && nl.Leader == 0)
		if !retry {
			return idx, err
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-p.node.Done():
			return 0, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// StartManager starts a manager. Without Raft it initialises a new
// one-manager cluster and leads it at once. With Raft it joins (or
// bootstraps, or resumes from disk) a replicated group and runs the control
// loop whenever it is the leader.
func StartManager(ctx context.Context, cfg ManagerConfig) (*Manager, error) {
	return startManager(ctx, cfg, nil)
}

// startManager starts a manager whose control API also reaches what
// services returns, made over the manager's store before anything serves
// (a node's certificate authority and its nodes' task output): the control
// server is built once, with everything it reaches.
func startManager(ctx context.Context, cfg ManagerConfig, services func(*store.MemoryStore) controlapi.Options) (*Manager, error) {
	if err := cfg.ClusterSpec.Validate(); err != nil {
		return nil, fmt.Errorf("start manager: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Dispatcher.Logger == nil {
		cfg.Dispatcher.Logger = log
	}
	if cfg.NodeID == "" {
		cfg.NodeID = api.NewID()
	}
	m := &Manager{cfg: cfg, nodeID: cfg.NodeID, log: log.With("node", cfg.NodeID), localLogs: &localLogs{}}
	lp := &lateProposer{}
	if cfg.Raft != nil {
		m.store = store.NewMemoryStore(lp)
	} else {
		m.store = store.NewMemoryStore(nil)
	}
	opts := controlapi.Options{}
	if services != nil {
		opts = services(m.store)
	}
	if opts.Logs == nil {
		opts.Logs = m.localLogs
	}
	if cfg.Raft != nil {
		opts.Membership = m
	}
	if opts.Scheduler == nil {
		opts.Scheduler = scheduler.New(cfg.Scheduler)
	}
	m.control = controlapi.New(m.store, opts)
	m.dispatcher = dispatcher.New(m.store, cfg.Dispatcher)
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel

	if cfg.Raft == nil {
		if err := m.ensureCluster(ctx); err != nil {
			cancel()
			return nil, fmt.Errorf("start manager: %w", err)
		}
		m.startLoops(runCtx, &sync.WaitGroup{})
		// Workers may register as soon as this returns.
		select {
		case <-m.dispatcher.Started():
		case <-ctx.Done():
			m.Stop()
			return nil, fmt.Errorf("start manager: %w", ctx.Err())
		}
		log.Info("manager started")
		return m, nil
	}

	rc := *cfg.Raft
	if rc.ID == 0 {
		rc.ID = RaftID(cfg.NodeID)
	}
	if rc.Logger == nil {
		rc.Logger = log
	}
	rc.FSM = m.store
	node, err := raft.NewNode(rc)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start manager: %w", err)
	}
	lp.node, m.raft = node, node
	m.registered = make(chan struct{})
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.followLeadership(runCtx) }()
	go func() { defer m.wg.Done(); m.registerSelf(runCtx) }()
	log.Info("manager started", "raft_id", fmt.Sprintf("%x", rc.ID))
	return m, nil
}

// ensureCluster creates the cluster object if there is none yet (the first
// leader of a new cluster does).
func (m *Manager) ensureCluster(ctx context.Context) error {
	var have bool
	m.store.View(func(tx store.ReadTx) {
		cs, _ := tx.FindClusters(store.All)
		have = len(cs) > 0
	})
	if have {
		return nil
	}
	err := m.store.UpdateContext(ctx, func(tx store.Tx) error {
		spec := m.cfg.ClusterSpec.Copy()
		if err := tx.CreateCluster(&api.Cluster{ID: api.NewID(), Spec: spec, CAState: m.cfg.CAState}); err != nil {
			return err
		}
		// The routing mesh's network is made with the cluster, as
		// `docker swarm init` makes "ingress".
		ingress, err := allocator.IngressNetwork(tx, spec.Network)
		if err != nil {
			return err
		}
		return tx.CreateNetwork(ingress)
	})
	if errors.Is(err, store.ErrNameConflict) {
		return nil // another leader created it first
	}
	if err != nil {
		return fmt.Errorf("create cluster: %w", err)
	}
	return nil
}

// followLeadership starts the control loop when this manager becomes the
// leader and stops it, waiting for every loop, when it stops being one.
func (m *Manager) followLeadership(ctx context.Context) {
	ch, stop := m.raft.WatchLeadership()
	defer stop()
	var (
		loopCancel context.CancelFunc
		loops      sync.WaitGroup
	)
	end := func() {
		if loopCancel != nil {
			loopCancel()
			loops.Wait()
			loopCancel = nil
			m.log.Info("stepped down: control loop stopped")
		}
	}
	defer end()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.raft.Done():
			return
		case l, ok := <-ch:
			if !ok {
				return
			}
			if !l.IsLeader {
				end()
				continue
			}
			if loopCancel != nil {
				continue
			}
			lctx, cancel := context.WithCancel(ctx)
			loopCancel = cancel
			loops.Add(1)
			go func() {
				defer loops.Done()
				if err := m.ensureCluster(lctx); err != nil && lctx.Err() == nil {
					m.log.Warn("leader could not create the cluster object", "err", err)
				}
				var inner sync.WaitGroup
				m.startLoops(lctx, &inner)
				inner.Wait()
			}()
			m.log.Info("leading: control loop started", "term", l.Term)
		}
	}
}

// startLoops runs the leader's loops until ctx ends; wg (and the manager's
// own group) tracks them.
func (m *Manager) startLoops(ctx context.Context, wg *sync.WaitGroup) {
	run := func(name string, f func(context.Context) error) {
		m.wg.Add(1)
		wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				m.fail(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	run("dispatcher", m.dispatcher.Run)
	run("orchestrator", orchestrator.New(m.store, m.log).Run)
	run("versions", orchestrator.NewVersionCollector(m.store, m.log).Run)
	run("allocator", allocator.New(m.store, m.log).Run)
	run("placer", placer.New(m.store, scheduler.New(m.cfg.Scheduler), m.log).Run)
	run("keymanager", keymanager.New(m.store, keymanager.Config{Logger: m.log}).Run)
	if m.raft != nil {
		run("manager status", m.reportManagers)
		run("roles", m.reconcileRoles)
	}
}

// registerSelf writes this manager's node record (role manager, raft ID,
// address, scheduler plugins), retrying until the cluster has a leader to
// commit it.
func (m *Manager) registerSelf(ctx context.Context) {
	defer close(m.registered)
	plugins := schedulerPlugins(m.cfg.Scheduler)
	for {
		err := m.store.UpdateContext(ctx, func(tx store.Tx) error {
			ms := &api.ManagerStatus{RaftID: m.raft.ID(), Addr: m.cfg.Addr, Reachability: api.ReachabilityReachable, SchedulerPlugins: plugins}
			n := tx.GetNode(m.nodeID)
			if n == nil {
				return tx.CreateNode(&api.Node{
					ID:            m.nodeID,
					Spec:          api.NodeSpec{Role: api.NodeRoleManager, Availability: api.NodeAvailabilityActive},
					Status:        api.NodeStatus{State: api.NodeStateUnknown},
					ManagerStatus: ms,
				})
			}
			// A node demoted meanwhile keeps its spec: the leader is
			// taking its member out of the group.
			cur := n.ManagerStatus
			if n.Spec.Role != api.NodeRoleManager || (cur != nil && cur.RaftID == ms.RaftID && cur.Addr == ms.Addr && slices.Equal(cur.SchedulerPlugins, plugins)) {
				return nil
			}
			if cur != nil && cur.RaftID == ms.RaftID && cur.Addr == ms.Addr {
				// Only the plugins differ (the leader recorded the member
				// when it admitted it): what raft says stays.
				ms.Reachability = cur.Reachability
			}
			if cur != nil {
				ms.Leader = cur.Leader
			}
			n.ManagerStatus = ms
			return tx.UpdateNode(n)
		})
		if err == nil || ctx.Err() != nil {
			return
		}
		m.log.Debug("manager record not written yet", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Registered is closed once this manager's own node record is in the store
// (at once without raft, which keeps no manager records), so that a worker
// agent with the same node ID can register.
func (m *Manager) Registered() <-chan struct{} {
	if m.registered == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return m.registered
}

// managerStatusPeriod is how often the leader refreshes the managers'
// ManagerStatus from raft.
const managerStatusPeriod = time.Second

// reportManagers keeps every manager node's ManagerStatus (leader,
// reachability, address) in line with raft's view, while leading.
func (m *Manager) reportManagers(ctx context.Context) error {
	t := time.NewTicker(managerStatusPeriod)
	defer t.Stop()
	for {
		st := m.raft.Status()
		err := m.store.UpdateContext(ctx, func(tx store.Tx) error {
			nodes, err := tx.FindNodes(store.ByRole(api.NodeRoleManager))
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.ManagerStatus == nil {
					continue
				}
				want := *n.ManagerStatus
				want.Leader = want.RaftID == st.Leader
				want.Reachability = api.ReachabilityUnreachable
				// A member is reachable when it is this leader, or when its
				// node keeps its session with the dispatcher.
				for _, mem := range st.Members {
					if mem.ID == want.RaftID {
						want.Addr = mem.Addr
						// A learner is still catching up: it joins the
						// quorum once promoted to voter.
						if mem.Learner {
							want.Reachability = api.ReachabilityUnknown
						} else if mem.ID == st.ID || n.Status.State == api.NodeStateReady {
							want.Reachability = api.ReachabilityReachable
						}
					}
				}
				if cur := n.ManagerStatus; want.Leader != cur.Leader || want.Reachability != cur.Reachability || want.Addr != cur.Addr {
					n.ManagerStatus = &want
					if err := tx.UpdateNode(n); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrConflict) {
			m.log.Debug("manager status not updated", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (m *Manager) fail(err error) {
	m.log.Error("manager loop failed", "err", err)
	m.errMu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.errMu.Unlock()
}

// Err reports the first failure of a manager loop, or nil.
func (m *Manager) Err() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.err
}

// Stop ends the control loop and the raft member, and waits for them.
func (m *Manager) Stop() {
	m.serversMu.Lock()
	m.stopped = true
	servers := m.servers
	m.servers = nil
	m.serversMu.Unlock()
	for _, s := range servers {
		s.Stop()
	}
	m.cancel()
	m.wg.Wait()
	if m.raft != nil {
		if err := m.raft.Stop(); err != nil {
			m.log.Warn("raft stop", "err", err)
		}
	}
	m.store.Close()
}

// NodeID returns the manager's node ID.
func (m *Manager) NodeID() string { return m.nodeID }

// Raft returns the manager's raft member, nil without replication.
func (m *Manager) Raft() *raft.Node { return m.raft }

// IsLeader reports whether this manager runs the control loop now.
func (m *Manager) IsLeader() bool { return m.raft == nil || m.raft.IsLeader() }

// Store returns the manager's store, for reads and for embedding programs
// that watch it.
func (m *Manager) Store() *store.MemoryStore { return m.store }

// Client returns a client of this manager's control API.
func (m *Manager) Client() *Client { return NewClient(m.control) }

// Dispatcher returns the worker-facing side of this manager, for workers in
// the same process.
func (m *Manager) Dispatcher() agent.Dispatcher { return m.dispatcher }
