package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/encryption"
)

// nodeState is what a node keeps in DataDir/node.json to restart alone.
type nodeState struct {
	NodeID        string   `json:"NodeID"`
	ClusterID     string   `json:"ClusterID"`
	Role          string   `json:"Role"`
	ListenAddr    string   `json:"ListenAddr"`
	AdvertiseAddr string   `json:"AdvertiseAddr"`
	Managers      []string `json:"Managers"`
	// RaftID is the raft member ID of a manager promoted after a demotion
	// (raft refuses a removed ID for ever); zero means RaftID(NodeID).
	RaftID uint64 `json:"RaftID,omitempty"`
	// RaftAdmitted says the raft group admitted this manager's member
	// (RaftID): from then on the member's raft state must be in the data
	// dir. A manager whose raft state is missing would start as a new,
	// empty member under the old ID: forget entries and votes it gave and
	// be sent entries beyond its empty log. Without it, a manager with no
	// raft state stopped before admission, and joins again.
	RaftAdmitted bool `json:"RaftAdmitted,omitempty"`
}

// Node is a running cluster node: a manager (raft member, control loop
// while it leads, CA) and a worker (agent running tasks), or a worker only.
// Its role can change while it runs (promotion, demotion): the components
// of its current role form a runtime that a switch stops and replaces,
// while its identity, its certificate renewal and its agent (with its
// session and its tasks) carry on.
type Node struct {
	cfg      NodeConfig
	identity *pki.NodeIdentity
	log      *slog.Logger

	// keys is a manager's data-encryption key (nodelock.go), nil on a
	// worker.
	keysMu sync.Mutex
	keys   *encryption.Keys

	stateMu  sync.Mutex // state, caSeen, wantRole, period
	state    nodeState
	caSeen   string       // the CA version the last heartbeat carried
	wantRole api.NodeRole // the certificate role the last heartbeat asked for
	period   time.Duration

	rtMu sync.RWMutex
	rt   *runtime

	// switchMu serialises role switches, Leave and Stop.
	switchMu sync.Mutex
	stopped  bool
	// ready is closed once the node has started: the control socket
	// answers from then on.
	ready    chan struct{}
	renewer  *pki.Renewer
	issuer   *managersIssuer
	roleKick chan struct{}
	// renewKick is when a heartbeat last asked for a renewal (UnixNano):
	// the store shows the new certificate a moment after it is issued.
	renewKick atomic.Int64

	// The agent, its connections to the managers, and its failover client
	// live as long as the node.
	worker atomic.Pointer[Worker]
	// mesh is the node's routing mesh, nil without one (nodemesh.go).
	mesh   *nodeMesh
	fc     *agent.FailoverClient
	connMu sync.Mutex
	conns  []*grpc.ClientConn

	cancel   context.CancelFunc
	left     chan struct{}
	stopOnce sync.Once
	// exitOnce closes left once, with exitErr saying why the node ended
	// on its own (nil: it left; see noderemoved.go).
	exitOnce sync.Once
	exitErr  error
}

const stateFile = "node.json"

// raftDirName is the raft member's directory in the data dir (Node.raftDir).
const raftDirName = "raft"

// renewKickEvery spaces renewals that heartbeats ask for.
const renewKickEvery = 5 * time.Second

// ControlSocket is the path of a node's control socket in its data dir.
func ControlSocket(dataDir string) string { return filepath.Join(dataDir, "control.sock") }

func saveState(dir string, st nodeState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

func loadState(dir string) (nodeState, error) {
	var st nodeState
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

// HasNode reports whether dataDir holds a node that initialised or joined
// (and so is restarted with RestartNode rather than created anew).
func HasNode(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, stateFile))
	return err == nil
}

func refuseExisting(cfg NodeConfig) error {
	if HasNode(cfg.DataDir) {
		return fmt.Errorf("data dir %s already holds a node: restart it with run, or use another directory", cfg.DataDir)
	}
	if cfg.ForceNewCluster {
		return errors.New("force new cluster: only a manager that restarts from its data can recover its cluster")
	}
	return nil
}

// InitNode creates a new cluster with this node as its first manager: the
// cluster's root CA, the node's manager certificate, a one-member raft group.
func InitNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := refuseExisting(cfg); err != nil {
		return nil, err
	}
	if cfg.ListenAddr == "" {
		return nil, errors.New("init: listen address is required")
	}
	if err := checkAdvertise(cfg); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	st := nodeState{NodeID: pki.NewNodeID(), ClusterID: api.NewID(), Role: string(api.NodeRoleManager), ListenAddr: cfg.ListenAddr, AdvertiseAddr: advertise(cfg)}
	var rec pki.CARecord
	var err error
	if cfg.ExternalCA != nil {
		rec, err = pki.NewExternalCARecord(st.ClusterID, cfg.ExternalCARoot, *cfg.ExternalCA)
	} else {
		// The first certificate already has the lifetime the new
		// cluster's spec sets.
		rec, err = pki.NewCARecord(st.ClusterID, cfg.Manager.ClusterSpec.CAConfig.NodeCertExpiry)
	}
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	ca := pki.NewCAServer(pki.NewMemState(rec), pki.CAServerOptions{Logger: cfg.Logger})
	ident, err := ca.NewNodeIdentity(ctx, st.NodeID, pki.RoleManager, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("init: node certificate: %w", err)
	}
	caState, err := marshalCARecord(rec)
	if err != nil {
		return nil, err
	}
	st.Managers = []string{st.AdvertiseAddr}
	if err := saveState(cfg.DataDir, st); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return startNode(ctx, cfg, st, ident, nil, &bootstrap{caState: caState})
}

// JoinNode joins an existing cluster through one of its managers with a
// join token: the token's role (worker or manager) becomes the node's.
func JoinNode(ctx context.Context, cfg NodeConfig, token string, managers []string) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := refuseExisting(cfg); err != nil {
		return nil, err
	}
	if len(managers) == 0 {
		return nil, errors.New("join: at least one manager address is required")
	}
	switch cfg.Availability {
	case "", api.NodeAvailabilityActive, api.NodeAvailabilityPause, api.NodeAvailabilityDrain:
	default:
		return nil, fmt.Errorf("join: availability %q: want active, pause or drain", cfg.Availability)
	}
	if err := checkAdvertise(cfg); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	var ident *pki.NodeIdentity
	var errs []error
	for _, addr := range managers {
		id, err := pki.JoinWith(ctx, addr, token, cfg.DataDir, pki.JoinOptions{Availability: string(cfg.Availability)})
		if err == nil {
			ident = id
			break
		}
		errs = append(errs, err)
		if errors.Is(err, pki.ErrTokenInvalid) || errors.Is(err, pki.ErrTokenMalformed) || errors.Is(err, pki.ErrTokenVersion) || errors.Is(err, pki.ErrCAPinMismatch) {
			break
		}
	}
	if ident == nil {
		return nil, fmt.Errorf("join: %w", errors.Join(errs...))
	}
	id := ident.Identity()
	st := nodeState{NodeID: id.NodeID, ClusterID: id.ClusterID, Role: string(api.NodeRoleWorker), ListenAddr: cfg.ListenAddr, AdvertiseAddr: advertise(cfg), Managers: managers}
	var boot *bootstrap
	if id.Role == pki.RoleManager {
		st.Role = string(api.NodeRoleManager)
		if cfg.ListenAddr == "" {
			return nil, errors.New("join: a manager needs a listen address")
		}
		peers, err := currentManagers(ctx, ident, cfg.dialOpts(), managers)
		if err != nil {
			return nil, err
		}
		boot = &bootstrap{join: peers, via: managers}
		st.Managers = append([]string{st.AdvertiseAddr}, managers...)
	}
	if err := saveState(cfg.DataDir, st); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	return startNode(ctx, cfg, st, ident, nil, boot)
}

// RestartNode resumes a node that initialised or joined before, from its
// data dir alone.
func RestartNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	st, err := loadState(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("run: %w (initialise or join first)", err)
	}
	keys, err := openKeys(cfg)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	ident, err := loadIdentity(cfg.DataDir, keys)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if err := checkIdentity(cfg, st, ident); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = st.ListenAddr
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = st.AdvertiseAddr
	}
	return startNode(ctx, cfg, st, ident, keys, nil)
}

// checkIdentity refuses a data dir whose certificate is not the node's
// that node.json describes (another node's certificates copied in: the
// node would act under one identity and be known under another), and
// checks that a forced new cluster starts from a manager's raft data.
func checkIdentity(cfg NodeConfig, st nodeState, ident *pki.NodeIdentity) error {
	id := ident.Identity()
	if id.NodeID != st.NodeID || id.ClusterID != st.ClusterID {
		return fmt.Errorf("data dir %s: the certificate is node %s's (cluster %s) but %s is node %s's (cluster %s): "+
			"another node's certificates were copied here; put this node's own certificates back, or empty the data dir and join again",
			cfg.DataDir, id.NodeID, id.ClusterID, stateFile, st.NodeID, st.ClusterID)
	}
	if !cfg.ForceNewCluster {
		return nil
	}
	if st.Role != string(api.NodeRoleManager) || id.Role != pki.RoleManager {
		return fmt.Errorf("force new cluster: node %s is a worker (node.json %s, certificate %s): only a manager's data holds the cluster's state", st.NodeID, st.Role, id.Role)
	}
	if dir := filepath.Join(cfg.DataDir, raftDirName); !raft.HasState(dir) {
		return fmt.Errorf("force new cluster: node %s has no raft state in %s to recover the cluster from", st.NodeID, dir)
	}
	return nil
}

// errRaftStateLost explains how to recover a manager whose raft state went
// missing after its admission.
func (n *Node) errRaftStateLost() error {
	return fmt.Errorf("run: node %[1]s was admitted to the raft group as member %[2]x, but its raft state in %[3]s is missing or empty; "+
		"starting with an empty log would lose entries and votes it acknowledged, so it will not start. To recover: "+
		"if the other managers keep a quorum, take this node out through one of them (apiaryctl node demote %[1]s, which removes its member, "+
		"then apiaryctl node rm %[1]s), empty this data dir and join again with a manager token; "+
		"if this was the only manager, or the others lost their quorum too, restore %[3]s from a backup, "+
		"or restart a surviving manager with apiaryd run --force-new-cluster",
		n.state.NodeID, n.raftID(), n.raftDir())
}

func advertise(cfg NodeConfig) string {
	if cfg.AdvertiseAddr != "" {
		return cfg.AdvertiseAddr
	}
	return cfg.ListenAddr
}

// checkAdvertise refuses an address other nodes cannot dial.
func checkAdvertise(cfg NodeConfig) error {
	addr := advertise(cfg)
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("advertise address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("advertise address %q: other nodes cannot dial it: set --advertise-addr to this node's reachable IP", addr)
	}
	return nil
}

// bootstrap says how a manager's raft member starts the first time.
type bootstrap struct {
	caState []byte            // new cluster: this member alone
	join    []controlapi.Peer // joining: the current members
	via     []string          // joining: the managers to ask
}

func startNode(ctx context.Context, cfg NodeConfig, st nodeState, ident *pki.NodeIdentity, keys *encryption.Keys, boot *bootstrap) (_ *Node, err error) {
	runCtx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, state: st, identity: ident, keys: keys, log: cfg.Logger.With("node", st.NodeID), cancel: cancel, left: make(chan struct{}), ready: make(chan struct{}), roleKick: make(chan struct{}, 1)}
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	// Heartbeats may ask for a renewal as soon as the agent runs.
	n.issuer = &managersIssuer{n: n}
	n.renewer = pki.NewRenewer(n.identity, n.issuer, pki.RenewerOptions{Logger: n.log, OnRenew: func(pki.Identity) {
		n.kickRole()
		if n.mesh != nil {
			// Gossip signs with the new key and trusts the new roots.
			n.mesh.setIdentity()
		}
	}})
	role := api.NodeRole(st.Role)
	if role == api.NodeRoleManager && boot == nil && certRole(ident) == api.NodeRoleWorker && !cfg.ForceNewCluster {
		// The CA issues a worker certificate only once the member is out
		// of the raft group: the node stopped between its demotion's
		// renewal and its switch.
		n.log.Warn("the certificate is a worker's: this node was demoted; running as a worker")
		if err := n.recordRole(api.NodeRoleWorker); err != nil {
			return nil, err
		}
		role = api.NodeRoleWorker
	}
	if role == api.NodeRoleManager && boot == nil && !raft.HasState(n.raftDir()) {
		if st.RaftAdmitted {
			return nil, n.errRaftStateLost()
		}
		// Stopped between deciding to become a manager and its
		// admission: join now.
		if boot, err = n.joinBootstrap(ctx); err != nil {
			return nil, err
		}
	}
	rt, err := n.start(ctx, role, boot)
	if role == api.NodeRoleManager && errors.Is(err, raft.ErrRemoved) && !cfg.ForceNewCluster {
		// Demoted (or removed) while it was down: the raft group will not
		// have it back. Run as a worker; the heartbeat will bring the
		// worker certificate, and the switch completes then.
		n.log.Warn("this node's raft member was removed from the group: running as a worker", "err", err)
		rt, err = n.start(ctx, api.NodeRoleWorker, nil)
	}
	if err != nil {
		return nil, err
	}
	n.setRuntime(rt)
	if cfg.Mesh.DataPath != "" {
		if n.mesh, err = startNodeMesh(cfg.Mesh, st.NodeID, st.AdvertiseAddr, ident, n.log, n.suspectPeer); err != nil {
			return nil, err
		}
	}
	if boot != nil && boot.caState != nil {
		// init has finished once the cluster object (with the CA and
		// the join tokens) is there.
		if err := waitCluster(ctx, rt.mgr); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		if cfg.Manager.ClusterSpec.EncryptionConfig.AutoLockManagers {
			// init --autolock returns with the data locked.
			if err := n.waitAutolock(ctx); err != nil {
				return nil, fmt.Errorf("init: %w", err)
			}
		}
	}
	if rt.role == api.NodeRoleManager {
		// Bootstrapped, added by the leader, or restarted from its
		// raft state: a member of the group from now on.
		if err := n.recordAdmitted(); err != nil {
			return nil, err
		}
	}
	if err := n.startWorker(ctx, rt, boot != nil); err != nil {
		return nil, err
	}
	go func() {
		if err := n.renewer.Run(runCtx); err != nil && runCtx.Err() == nil {
			n.log.Error("certificate renewal stopped", "err", err)
		}
	}()
	go n.followRole(runCtx)
	go n.reconcileRootCA(runCtx)
	n.log.Info("node started", "role", rt.role, "addr", st.AdvertiseAddr)
	close(n.ready)
	return n, nil
}

// waitCluster waits until m's store holds the cluster object, which the
// first leader of a new cluster creates.
func waitCluster(ctx context.Context, m *Manager) error {
	have := func(tx store.ReadTx) bool {
		cs, err := tx.FindClusters(store.All)
		return err == nil && len(cs) > 0
	}
	var found bool
	w, err := m.store.ViewAndWatch(func(tx store.ReadTx) error {
		found = have(tx)
		return nil
	}, store.ByKinds(api.KindCluster))
	if err != nil {
		return fmt.Errorf("wait for the cluster object: %w", err)
	}
	defer w.Close()
	for !found {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return errors.New("wait for the cluster object: the store closed")
			}
			// Any event (a restore too): look again.
			m.store.View(func(tx store.ReadTx) { found = have(tx) })
		case <-ctx.Done():
			return fmt.Errorf("wait for the cluster object: %w", ctx.Err())
		}
	}
	return nil
}

// recordAdmitted records in node.json that the raft group admitted this
// node's member.
func (n *Node) recordAdmitted() error {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	if n.state.RaftAdmitted {
		return nil
	}
	n.state.RaftAdmitted = true
	if err := saveState(n.cfg.DataDir, n.state); err != nil {
		return fmt.Errorf("record raft admission: %w", err)
	}
	return nil
}

// managers lists the managers to ask for a certificate: the one the agent
// talks to (the leader) first.
func (n *Node) managers() []string {
	var out []string
	if n.fc != nil {
		out = n.fc.Known()
	}
	n.stateMu.Lock()
	for _, m := range n.state.Managers {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	n.stateMu.Unlock()
	return out
}

// noticeHeartbeat renews the node's certificate when the cluster's CA
// changed (a root rotation started or finished: the new certificate chains
// to the new root, and the new trust bundle drops the old root once it is
// retired), and follows the role the cluster gives the node.
func (n *Node) noticeHeartbeat(resp *session.HeartbeatResponse) {
	n.stateMu.Lock()
	n.period = resp.Period
	changed := resp.CAVersion != "" && resp.CAVersion != n.caSeen
	first := n.caSeen == ""
	n.caSeen = resp.CAVersion
	roleChanged := resp.Role != "" && resp.Role != n.wantRole
	if resp.Role != "" {
		n.wantRole = resp.Role
	}
	n.stateMu.Unlock()
	if changed && !first {
		n.log.Info("the cluster CA changed: renewing the node certificate")
		n.renewer.RenewNow()
	} else if resp.RenewCertificate && n.renewKick.Load()+int64(renewKickEvery) < time.Now().UnixNano() {
		// A root rotation waits for this node's new certificate (the
		// node started after the rotation did, or missed the change).
		n.renewKick.Store(time.Now().UnixNano())
		n.log.Info("the root CA rotation waits for this node: renewing the node certificate")
		n.renewer.RenewNow()
	}
	if roleChanged {
		n.kickRole()
	}
}

// NodeID returns the node's ID.
func (n *Node) NodeID() string { return n.state.NodeID }

// HeartbeatPeriod is the heartbeat period the leader told the node's agent
// at its last heartbeat (zero before the first): the cluster's setting, or
// the adaptive period, which the agent follows from its next heartbeat.
func (n *Node) HeartbeatPeriod() time.Duration {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	return n.period
}

// Role returns the role the node runs in now: "manager" or "worker", or
// "" while it switches from one to the other.
func (n *Node) Role() string {
	if rt := n.current(); rt != nil {
		return string(rt.role)
	}
	return ""
}

// Manager returns the node's manager, nil on a worker.
func (n *Node) Manager() *Manager {
	if rt := n.current(); rt != nil {
		return rt.mgr
	}
	return nil
}

// Worker returns the node's worker.
func (n *Node) Worker() *Worker { return n.worker.Load() }

// Stop stops the node's agent (leaving its tasks running, as a daemon
// restart does), its manager and its servers.
func (n *Node) Stop() { n.stopOnce.Do(n.stop) }

func (n *Node) stop() {
	n.switchMu.Lock()
	n.stopped = true
	rt := n.current()
	n.switchMu.Unlock()
	n.cancel()
	if w := n.worker.Load(); w != nil {
		w.Stop()
	}
	if n.mesh != nil {
		n.mesh.close()
	}
	if rt != nil {
		rt.stop()
	}
	if n.issuer != nil {
		n.issuer.close()
	}
	n.connMu.Lock()
	for _, c := range n.conns {
		c.Close()
	}
	n.conns = nil
	n.connMu.Unlock()
}
