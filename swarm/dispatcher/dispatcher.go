// Package dispatcher is the manager's side of worker sessions: it registers
// nodes, takes their heartbeats, streams each node its task assignments, and
// writes the task status reports workers send, in batches. A node that stops
// heartbeating for longer than its period times the grace multiplier is
// declared DOWN and its tasks ORPHANED, which makes the orchestrator replace
// them elsewhere. Expiry is a loop.Loop keyed by node ID (expiry.go): a
// store restore re-arms every deadline from the new state, and leaves the
// sessions and their streams alone (a stream sends its complete set again).
//
// Its methods are the worker-facing contract (see agent.Dispatcher): an
// in-process agent calls them directly; a remote one reaches them over gRPC.
package dispatcher

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// Config tunes the dispatcher of one manager. The heartbeat period is the
// cluster's (api.ClusterSpec.Dispatcher.HeartbeatPeriod), read from the
// store as it changes, so that it does not change with the leader: fixed,
// or zero for adaptive (1 s up to 2,000 nodes, then growing so the leader
// takes at most about 2,000 heartbeats per second).
type Config struct {
	// GraceMultiplier is how many periods a node may miss before it is
	// declared down.
	GraceMultiplier int
	// StatusBatchWindow is how long status reports gather before they are
	// written in one transaction.
	StatusBatchWindow time.Duration
	Logger            *slog.Logger
	// OnDeliver, if set, is told the IDs of the secrets and configs in
	// each assignments message, and the node it goes to, before it is
	// sent: an audit of which node received what (issue 16). It must not
	// block; it is never given the data.
	OnDeliver func(nodeID string, secretIDs, configIDs []string)
}

// DefaultConfig returns adaptive heartbeats with a grace of 3 periods and a
// 10 ms status batching window.
func DefaultConfig() Config {
	return Config{GraceMultiplier: 3, StatusBatchWindow: 10 * time.Millisecond}
}

// Errors returned to workers (the contract's, package session).
var (
	// ErrSessionInvalid: the session is unknown or was replaced; the worker
	// must register again.
	ErrSessionInvalid = session.ErrSessionInvalid
	// ErrNodeRemoved: the node was removed from the cluster and must join
	// anew.
	ErrNodeRemoved = session.ErrNodeRemoved
	// ErrNotRunning: the dispatcher is not running (this manager is not the
	// leader, or is shutting down).
	ErrNotRunning = session.ErrNotRunning
)

const maxHeartbeatsPerSecond = 2000

// takeoverGrace is added to the grace period of the nodes a new leader
// inherits, which need time to find it.
const takeoverGrace = 5 * time.Second

type nodeSession struct {
	id       string
	nodeID   string
	lastBeat time.Time
	// period is the one the node was last told: its next heartbeat is
	// due then, whatever the period has become since.
	period time.Duration
	// suspected: gossip believes the node dead since its last heartbeat
	// (suspect.go).
	suspected bool
	// mesh: the node takes part in the routing mesh (it registered a
	// gossip address), so its assignments carry proofs (proof.go).
	mesh      bool
	done      chan struct{} // closed when the session ends
	closeOnce sync.Once
}

func (s *nodeSession) end() { s.closeOnce.Do(func() { close(s.done) }) }

type statusBatch struct {
	nodeID  string
	updates []TaskStatusUpdate
	done    chan error
}

// Dispatcher serves worker sessions.
type Dispatcher struct {
	store *store.MemoryStore
	cfg   Config
	log   *slog.Logger

	mu       sync.Mutex
	running  bool
	ctx      context.Context
	sessions map[string]*nodeSession // by node ID
	// silent holds nodes without a session, and when they are (or were)
	// to be declared down: those whose session expired, and those the
	// store believes ready that have not registered with this leader yet
	// (they get a grace period to come back). See expiry.
	silent map[string]time.Time
	// expiries is the queue of the expiry loop: node IDs, each due at its
	// heartbeat deadline.
	expiries *loop.Queue[string]
	statusCh chan statusBatch
	// What sessions learn of the cluster, read at most once a second
	// (refreshLocked).
	managers   []string
	managersAt time.Time
	caVersion  string
	rotKeyID   string
	// fixedPeriod is the cluster spec's heartbeat period (zero: adaptive).
	fixedPeriod time.Duration
	// gossipKeys are the cluster's gossip keys, nil while it has none:
	// the expiry loop keeps them as the store's cluster object changes,
	// in the order of the events that also end removed nodes' sessions
	// (gossipkeys.go).
	gossipKeys *session.GossipKeys
	// assignKey signs the assignments of nodes in the mesh (proof.go),
	// nil while the cluster has none; kept with the gossip keys.
	assignKey ed25519.PrivateKey
	// assignKeyChanged is closed (and replaced) when assignKey changes:
	// the streams send their complete sets again, proven under it.
	assignKeyChanged chan struct{}
	// proofs are the assignment proofs signed so far (proof.go).
	proofs   proofCache
	started  chan struct{} // closed once Run serves
	startOne sync.Once
}

// New returns a dispatcher over s; it serves once Run is called.
func New(s *store.MemoryStore, cfg Config) *Dispatcher {
	if cfg.GraceMultiplier <= 0 {
		cfg.GraceMultiplier = DefaultConfig().GraceMultiplier
	}
	if cfg.StatusBatchWindow <= 0 {
		cfg.StatusBatchWindow = DefaultConfig().StatusBatchWindow
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Dispatcher{store: s, cfg: cfg, log: log.With("component", "dispatcher"), statusCh: make(chan statusBatch, 1024), started: make(chan struct{}),
		assignKeyChanged: make(chan struct{})}
}

// Run serves until ctx ends (it then returns nil) or the store closes: it
// expires silent nodes and writes status batches. Sessions end when Run
// returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("dispatcher: already running")
	}
	expiry := loop.New[string](loop.Config{
		Name:    "dispatcher",
		Store:   d.store,
		Filters: []store.EventFilter{store.ByKinds(api.KindNode, api.KindCluster)},
		Shared:  true, // the events are only looked at
		Log:     d.log,
	}, (*expiry)(d))
	d.running, d.ctx = true, runCtx
	d.sessions = map[string]*nodeSession{}
	d.silent = map[string]time.Time{}
	d.expiries = expiry.Queue()
	d.mu.Unlock()
	d.startOne.Do(func() { close(d.started) })

	var wg sync.WaitGroup
	wg.Go(func() { d.writeStatuses(runCtx) })
	err := expiry.Run(runCtx)
	cancel() // the store closed: the writer and the streams stop too
	d.mu.Lock()
	d.running = false
	for _, s := range d.sessions {
		s.end()
	}
	d.sessions = nil
	d.mu.Unlock()
	wg.Wait()
	return err
}

// Started is closed once Run serves sessions.
func (d *Dispatcher) Started() <-chan struct{} { return d.started }

// period is the heartbeat period in force: the cluster spec's, or adaptive.
func (d *Dispatcher) period() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.periodLocked()
}

func (d *Dispatcher) periodLocked() time.Duration {
	d.refreshLocked()
	if d.fixedPeriod > 0 {
		return d.fixedPeriod
	}
	p := time.Second
	if adaptive := time.Duration(len(d.sessions)) * time.Second / maxHeartbeatsPerSecond; adaptive > p {
		p = adaptive
	}
	return p
}

func (d *Dispatcher) grace() time.Duration { return d.graceOf(d.period()) }

// graceOf is how long a node told period may stay silent.
func (d *Dispatcher) graceOf(period time.Duration) time.Duration {
	return period * time.Duration(d.cfg.GraceMultiplier)
}

// markDown sets a node DOWN and orphans the tasks it was running, so the
// orchestrator replaces them. If the node comes back, the agent learns that
// those tasks are no longer wanted and stops them.
func (d *Dispatcher) markDown(ctx context.Context, nodeID, why string) error {
	// The node's live tasks, found first and orphaned in bounded
	// transactions after the node itself (item 0): a node may have run
	// any number of tasks. Each transaction re-reads what it changes.
	var ids []string
	d.store.View(func(tx store.ReadTx) {
		tasks, _ := tx.FindTasks(store.ByNodeID(nodeID))
		for _, t := range tasks {
			if live(t) {
				ids = append(ids, t.ID)
			}
		}
	})
	_, err := d.store.UpdateInChunks(ctx, 1+len(ids), func(tx store.Tx, lo, hi int) error {
		n := tx.GetNode(nodeID)
		if n == nil {
			return nil
		}
		// A node that registered again meanwhile stays up.
		d.mu.Lock()
		_, back := d.sessions[nodeID]
		d.mu.Unlock()
		if back {
			return nil
		}
		now := time.Now().UTC()
		for i := lo; i < hi; i++ {
			if i == 0 {
				if n.Status.State != api.NodeStateDown {
					n.Status.State = api.NodeStateDown
					n.Status.Message = why
					if err := tx.UpdateNode(n); err != nil {
						return err
					}
				}
				continue
			}
			t := tx.GetTask(ids[i-1])
			if t == nil || t.NodeID != nodeID || !live(t) {
				continue
			}
			t.Status = api.TaskStatus{Timestamp: now, State: api.TaskStateOrphaned, Message: "node " + why, ContainerStatus: t.Status.ContainerStatus}
			if err := tx.UpdateTask(t); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// live reports whether a task is on its node's hands: assigned and not
// ended.
func live(t *api.Task) bool {
	return t.Status.State >= api.TaskStateAssigned && !t.Status.State.Terminal()
}

func retryConflicts(ctx context.Context, f func() error) error {
	for {
		err := f()
		if !errors.Is(err, store.ErrConflict) || ctx.Err() != nil {
			return err
		}
	}
}

func (d *Dispatcher) runningCtx() (context.Context, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return nil, ErrNotRunning
	}
	return d.ctx, nil
}

// session returns the live session of a request.
func (d *Dispatcher) session(nodeID, sessionID string) (*nodeSession, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return nil, ErrNotRunning
	}
	s, ok := d.sessions[nodeID]
	if !ok || s.id != sessionID {
		return nil, fmt.Errorf("node %s: %w", nodeID, ErrSessionInvalid)
	}
	return s, nil
}

// markReady sets a node with a live session READY again.
func (d *Dispatcher) markReady(ctx context.Context, nodeID string) error {
	return retryConflicts(ctx, func() error {
		return d.store.UpdateContext(ctx, func(tx store.Tx) error {
			n := tx.GetNode(nodeID)
			if n == nil || n.Status.State == api.NodeStateReady {
				return nil
			}
			n.Status.State, n.Status.Message = api.NodeStateReady, ""
			return tx.UpdateNode(n)
		})
	})
}

// Register opens a session. A previous session of the same node ends.
//
// Over the network the caller is the node its certificate names: the
// request must name the same node, which must exist (the CA made its record
// when it issued the certificate). A call from this process (the embedding
// API's StartWorker beside its manager) is trusted: an empty NodeID joins a
// new node there.
func (d *Dispatcher) Register(ctx context.Context, req *RegisterRequest) (*RegisterResponse, error) {
	if _, err := d.runningCtx(); err != nil {
		return nil, err
	}
	if err := bindCaller(ctx, "Register", req.NodeID); err != nil {
		return nil, err
	}
	if err := checkDescription(&req.Description); err != nil {
		return nil, err
	}
	if len(req.Addr) > MaxDescriptionField {
		return nil, fmt.Errorf("%w: Addr: %d bytes, at most %d", ErrBadRequest, len(req.Addr), MaxDescriptionField)
	}
	if req.GossipAddr != "" {
		if _, err := netip.ParseAddrPort(req.GossipAddr); err != nil {
			return nil, fmt.Errorf("%w: GossipAddr %q: %v", ErrBadRequest, req.GossipAddr, err)
		}
	}
	nodeID := req.NodeID
	err := retryConflicts(ctx, func() error {
		return d.store.UpdateContext(ctx, func(tx store.Tx) error {
			desc := req.Description.Copy()
			if nodeID == "" {
				nodeID = api.NewID()
				return tx.CreateNode(&api.Node{
					ID:          nodeID,
					Spec:        api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
					Description: &desc,
					Status:      api.NodeStatus{State: api.NodeStateReady, Addr: req.Addr, GossipAddr: req.GossipAddr},
				})
			}
			n := tx.GetNode(nodeID)
			if n == nil {
				return fmt.Errorf("register node %s: it has no record in the cluster: %w", nodeID, ErrNodeRemoved)
			}
			n.Description = &desc
			n.Status = api.NodeStatus{State: api.NodeStateReady, Addr: req.Addr, GossipAddr: req.GossipAddr}
			return tx.UpdateNode(n)
		})
	})
	if err != nil {
		return nil, err
	}
	s := &nodeSession{id: api.NewID(), nodeID: nodeID, lastBeat: time.Now(), mesh: req.GossipAddr != "", done: make(chan struct{})}
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return nil, ErrNotRunning
	}
	if old, ok := d.sessions[nodeID]; ok {
		old.end()
	}
	d.sessions[nodeID] = s
	delete(d.silent, nodeID)
	// The period counts this session (adaptive).
	period := d.periodLocked()
	s.period = period
	d.expiries.AddAfter(nodeID, d.graceOf(period))
	keys := d.gossipKeys
	d.mu.Unlock()
	d.log.Info("node registered", "node", nodeID, "hostname", req.Description.Hostname)
	resp := &RegisterResponse{NodeID: nodeID, SessionID: s.id, HeartbeatPeriod: period, Managers: d.managerAddrs(), GossipKeys: keys}
	if req.GossipAddr != "" {
		resp.GossipPeers = d.gossipPeers(nodeID)
	}
	return resp, nil
}

// cachedManagers is managerAddrs, recomputed at most once a second: every
// heartbeat carries it.
func (d *Dispatcher) cachedManagers() ([]string, string, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refreshLocked()
	return d.managers, d.caVersion, d.rotKeyID
}

// refreshLocked reads again, at most once a second, what sessions learn
// of the cluster: the managers, the CA's version, the heartbeat period.
// Every heartbeat asks, and the cluster object is copied out of the store.
func (d *Dispatcher) refreshLocked() {
	if time.Since(d.managersAt) <= time.Second {
		return
	}
	var cluster *api.Cluster
	d.store.View(func(tx store.ReadTx) {
		if cs, _ := tx.FindClusters(store.All); len(cs) > 0 {
			cluster = cs[0]
		}
	})
	d.managers, d.managersAt = d.managerAddrs(), time.Now()
	d.caVersion, d.rotKeyID, d.fixedPeriod = "", "", 0
	if cluster != nil {
		d.caVersion, d.rotKeyID = caStateVersion(cluster.CAState)
		d.fixedPeriod = cluster.Spec.Dispatcher.HeartbeatPeriod
	}
}

// caStateVersion fingerprints the cluster's CA state, and returns the key
// ID of the new root while a rotation is in progress.
func caStateVersion(raw []byte) (version, rotKeyID string) {
	if len(raw) == 0 {
		return "", ""
	}
	sum := sha256.Sum256(raw)
	var rec pki.CARecord
	if err := json.Unmarshal(raw, &rec); err == nil {
		rotKeyID, _ = rec.RotationKeyID()
	}
	return hex.EncodeToString(sum[:8]), rotKeyID
}

// managerAddrs lists the managers' addresses from their node records.
func (d *Dispatcher) managerAddrs() []string {
	out := d.managersLeaderFirst()
	sort.Strings(out)
	return out
}

// managersLeaderFirst lists the managers' addresses from their node
// records, the leader's first. (A manager being demoted is left out: it is
// leaving the raft group.)
func (d *Dispatcher) managersLeaderFirst() []string {
	var out []string
	d.store.View(func(tx store.ReadTx) {
		nodes, _ := tx.FindNodes(store.ByRole(api.NodeRoleManager))
		for _, n := range nodes {
			if ms := n.ManagerStatus; ms != nil && ms.Addr != "" {
				if ms.Leader {
					out = append([]string{ms.Addr}, out...)
				} else {
					out = append(out, ms.Addr)
				}
			}
		}
	})
	return out
}

// Managers implements ManagerLister. It answers on every manager, from its
// own store (a follower's is at most a moment behind).
func (d *Dispatcher) Managers(ctx context.Context) ([]string, error) {
	return d.managersLeaderFirst(), nil
}

// Heartbeat keeps a session alive and returns the period until the next one.
func (d *Dispatcher) Heartbeat(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error) {
	if err := bindCaller(ctx, "Heartbeat", req.NodeID); err != nil {
		return nil, err
	}
	s, err := d.session(req.NodeID, req.SessionID)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	period := d.periodLocked()
	s.lastBeat, s.period, s.suspected = time.Now(), period, false
	// The deadline moved later, which the expiry loop finds when the
	// earlier one comes; only a shorter period brings it sooner.
	d.expiries.AddAfter(req.NodeID, d.graceOf(period))
	d.mu.Unlock()
	// A node that heartbeats is up, whatever the store says: a down-marking
	// may have raced with its registration. Heal it (rarely needed; the
	// read is cheap).
	var state api.NodeState
	var role api.NodeRole
	var cert *api.NodeCertificate
	d.store.View(func(tx store.ReadTx) {
		if n := tx.GetNode(req.NodeID); n != nil {
			state, role, cert = n.Status.State, n.CertificateRole(), n.Certificate
		}
	})
	if state != "" && state != api.NodeStateReady {
		mctx, cancel := context.WithTimeout(ctx, d.grace())
		defer cancel()
		if err := d.markReady(mctx, req.NodeID); err != nil && mctx.Err() == nil {
			d.log.Warn("mark node ready", "node", req.NodeID, "err", err)
		}
	}
	managers, caVersion, rotKeyID := d.cachedManagers()
	renew := rotKeyID != "" && cert != nil && cert.IssuerKeyID != rotKeyID
	keys, err := d.gossipKeysFor(s, req.GossipKeysVersion)
	if err != nil {
		return nil, err
	}
	resp := &HeartbeatResponse{Period: period, Managers: managers, CAVersion: caVersion, Role: role, RenewCertificate: renew, GossipKeys: keys}
	if req.WantGossipPeers {
		resp.GossipPeers = d.gossipPeers(req.NodeID)
	}
	return resp, nil
}

// UpdateTaskStatus records a worker's status reports. It returns once they
// are written (or refused), so a worker knows which reports to send again
// after a failover. Reports that break the task state machine, or concern
// tasks not assigned to the node, are dropped with a log line: a worker
// cannot move a task backwards or touch another node's tasks.
func (d *Dispatcher) UpdateTaskStatus(ctx context.Context, req *UpdateTaskStatusRequest) error {
	if err := bindCaller(ctx, "UpdateTaskStatus", req.NodeID); err != nil {
		return err
	}
	if err := checkStatusUpdates(req); err != nil {
		return err
	}
	if _, err := d.session(req.NodeID, req.SessionID); err != nil {
		return err
	}
	// The writer stops with Run: a batch queued after it drained the
	// queue would wait forever, so the wait also ends with Run.
	runCtx, err := d.runningCtx()
	if err != nil {
		return err
	}
	b := statusBatch{nodeID: req.NodeID, updates: req.Updates, done: make(chan error, 1)}
	select {
	case d.statusCh <- b:
	case <-ctx.Done():
		return ctx.Err()
	case <-runCtx.Done():
		return ErrNotRunning
	}
	select {
	case err := <-b.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-runCtx.Done():
		select {
		case err := <-b.done: // written (or refused) just before the stop
			return err
		default:
			return ErrNotRunning
		}
	}
}

// writeStatuses gathers status batches for a short window and writes them
// in one transaction.
func (d *Dispatcher) writeStatuses(ctx context.Context) {
	for {
		var batches []statusBatch
		select {
		case <-ctx.Done():
			d.failPending(ErrNotRunning)
			return
		case b := <-d.statusCh:
			batches = append(batches, b)
		}
		window := time.NewTimer(d.cfg.StatusBatchWindow)
	gather:
		for {
			select {
			case b := <-d.statusCh:
				batches = append(batches, b)
			case <-window.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		window.Stop()
		// Every report of the window, in bounded transactions; a batch is
		// acknowledged once all of its reports are written.
		var all []ownedUpdate
		ends := make([]int, len(batches))
		for i, b := range batches {
			for _, u := range b.updates {
				all = append(all, ownedUpdate{nodeID: b.nodeID, TaskStatusUpdate: u})
			}
			ends[i] = len(all)
		}
		written, err := d.store.UpdateInChunks(ctx, len(all), func(tx store.Tx, lo, hi int) error {
			return d.applyStatuses(tx, all[lo:hi])
		})
		for i, b := range batches {
			if ends[i] <= written {
				b.done <- nil
			} else {
				b.done <- err
			}
		}
	}
}

// ownedUpdate is a status report with the node that sent it.
type ownedUpdate struct {
	nodeID string
	TaskStatusUpdate
}

func (d *Dispatcher) failPending(err error) {
	for {
		select {
		case b := <-d.statusCh:
			b.done <- err
		default:
			return
		}
	}
}

func (d *Dispatcher) applyStatuses(tx store.Tx, updates []ownedUpdate) error {
	for _, u := range updates {
		t := tx.GetTask(u.TaskID)
		if t == nil {
			continue // removed meanwhile: nothing to record
		}
		if t.NodeID != u.nodeID {
			d.log.Warn("status report for a task of another node dropped", "node", u.nodeID, "task", u.TaskID, "owner", t.NodeID)
			continue
		}
		if err := api.CheckTransition(t.Status.State, u.Status.State, api.ActorWorker); err != nil {
			d.log.Debug("status report refused", "task", u.TaskID, "err", err)
			continue
		}
		if t.Status.State == u.Status.State && t.Status.Message == u.Status.Message && t.Status.Health == u.Status.Health {
			continue // a resend after a failover: already recorded
		}
		st := u.Status.Copy()
		st.AppliedBy = u.nodeID
		if st.Timestamp.IsZero() {
			st.Timestamp = time.Now().UTC()
		}
		t.Status = st
		if err := tx.UpdateTask(t); err != nil {
			return err
		}
	}
	return nil
}
