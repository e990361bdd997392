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
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// NodeConfig configures a node: a machine of a cluster as apiaryd runs it,
// with its identity, its services on the network and its control socket.
type NodeConfig struct {
	// DataDir holds everything the node must keep: node.json, its
	// certificates, the raft log of a manager, the executor's records.
	DataDir string
	// ListenAddr is the address the node's gRPC services listen on.
	ListenAddr string
	// AdvertiseAddr is the address other nodes reach it at (ListenAddr
	// when empty).
	AdvertiseAddr string
	// Executor runs the node's tasks.
	Executor executor.Executor
	// HeartbeatPeriod fixes the dispatcher's heartbeat period (managers);
	// zero is adaptive.
	HeartbeatPeriod time.Duration
	// RaftTick overrides raft's tick (tests); zero keeps 100 ms.
	RaftTick time.Duration
	Logger   *slog.Logger
}

// nodeState is what a node keeps in DataDir/node.json to restart alone.
type nodeState struct {
	NodeID        string   `json:"NodeID"`
	ClusterID     string   `json:"ClusterID"`
	Role          string   `json:"Role"`
	ListenAddr    string   `json:"ListenAddr"`
	AdvertiseAddr string   `json:"AdvertiseAddr"`
	Managers      []string `json:"Managers"`
}

// Node is a running cluster node: a manager (raft member, control loop
// while it leads, CA) and a worker (agent running tasks), or a worker only.
type Node struct {
	cfg      NodeConfig
	state    nodeState
	identity *pki.NodeIdentity
	log      *slog.Logger

	stateMu  sync.Mutex
	mgr      *Manager
	ca       *pki.CAServer
	renewer  *pki.Renewer
	caSeen   string // the CA version the last heartbeat carried
	worker   *Worker
	srv      *grpc.Server
	sockSrv  *grpc.Server
	conns    []*grpc.ClientConn
	cancel   context.CancelFunc
	done     chan struct{}
	left     chan struct{}
	stopOnce sync.Once
}

const stateFile = "node.json"

func (c *NodeConfig) fill() error {
	if c.DataDir == "" {
		return errors.New("node config: data dir is required")
	}
	if c.Executor == nil {
		return errors.New("node config: executor is required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return os.MkdirAll(c.DataDir, 0o700)
}

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

func refuseExisting(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return fmt.Errorf("data dir %s already holds a node: restart it with run, or use another directory", dir)
	}
	return nil
}

// InitNode creates a new cluster with this node as its first manager: the
// cluster's root CA, the node's manager certificate, a one-member raft group.
func InitNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := refuseExisting(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.ListenAddr == "" {
		return nil, errors.New("init: listen address is required")
	}
	if err := checkAdvertise(cfg); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	st := nodeState{NodeID: pki.NewNodeID(), ClusterID: api.NewID(), Role: string(api.NodeRoleManager), ListenAddr: cfg.ListenAddr, AdvertiseAddr: advertise(cfg)}
	rec, err := pki.NewCARecord(st.ClusterID, 0)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	ca := pki.NewCAServer(pki.NewMemState(rec), pki.CAServerOptions{Logger: cfg.Logger})
	ident, err := ca.NewNodeIdentity(ctx, st.NodeID, pki.RoleManager, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("init: node certificate: %w", err)
	}
	caState, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	st.Managers = []string{st.AdvertiseAddr}
	if err := saveState(cfg.DataDir, st); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	return startNode(ctx, cfg, st, ident, &bootstrap{caState: caState})
}

// JoinNode joins an existing cluster through one of its managers with a
// join token: the token's role (worker or manager) becomes the node's.
func JoinNode(ctx context.Context, cfg NodeConfig, token string, managers []string) (*Node, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := refuseExisting(cfg.DataDir); err != nil {
		return nil, err
	}
	if len(managers) == 0 {
		return nil, errors.New("join: at least one manager address is required")
	}
	if err := checkAdvertise(cfg); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	var ident *pki.NodeIdentity
	var errs []error
	for _, addr := range managers {
		id, err := pki.Join(ctx, addr, token, cfg.DataDir)
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
		peers, err := currentManagers(ctx, ident, managers)
		if err != nil {
			return nil, err
		}
		boot = &bootstrap{join: peers, via: managers}
		st.Managers = append([]string{st.AdvertiseAddr}, managers...)
	}
	if err := saveState(cfg.DataDir, st); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	return startNode(ctx, cfg, st, ident, boot)
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
	ident, err := pki.LoadNodeIdentity(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = st.ListenAddr
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = st.AdvertiseAddr
	}
	return startNode(ctx, cfg, st, ident, nil)
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

func startNode(ctx context.Context, cfg NodeConfig, st nodeState, ident *pki.NodeIdentity, boot *bootstrap) (_ *Node, err error) {
	runCtx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, state: st, identity: ident, log: cfg.Logger.With("node", st.NodeID), cancel: cancel, done: make(chan struct{}), left: make(chan struct{})}
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	isManager := st.Role == string(api.NodeRoleManager)
	if isManager {
		if err := n.startManager(ctx, boot); err != nil {
			return nil, err
		}
		// A joining member runs before it is added: the leader adds it
		// as a learner, streams it the state, then makes it a voter.
		if boot != nil && len(boot.join) > 0 {
			if _, err := askToJoin(ctx, n.identity, boot.via, st.NodeID, st.AdvertiseAddr); err != nil {
				return nil, err
			}
		}
	}
	if !isManager && cfg.ListenAddr != "" {
		if err := n.serveWorker(); err != nil {
			return nil, err
		}
	}
	if err := n.serveSocket(); err != nil {
		return nil, err
	}
	if err := n.startWorker(ctx, runCtx); err != nil {
		return nil, err
	}
	if err := n.startRenewer(runCtx); err != nil {
		return nil, err
	}
	if n.mgr != nil {
		go n.reconcileRootCA(runCtx)
	}
	n.log.Info("node started", "role", st.Role, "addr", st.AdvertiseAddr)
	return n, nil
}

func (n *Node) startManager(ctx context.Context, boot *bootstrap) error {
	lis, err := net.Listen("tcp", n.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.ListenAddr, err)
	}
	auth := pki.NewAuthorizer(policy(), lazyRemoved{n}, n.log)
	n.srv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(n.identity.JoinServerTLSConfig())),
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor()),
		grpc.MaxRecvMsgSize(raft.MaxMessageSize),
		kaPolicy,
	)
	tr, err := raft.NewGRPCTransport(raft.GRPCConfig{
		Server:            n.srv,
		ClientCredentials: credentials.NewTLS(n.identity.ClientTLSConfig(pki.RoleManager)),
		Authorize: func(ctx context.Context, from uint64) error {
			id, err := pki.PeerIdentityFromContext(ctx)
			if err != nil {
				return err
			}
			if id.Role != pki.RoleManager || RaftID(id.NodeID) != from {
				return fmt.Errorf("raft: node %s (%s) may not speak as member %x", id.NodeID, id.Role, from)
			}
			return nil
		},
		Logger: n.log,
	})
	if err != nil {
		lis.Close()
		return err
	}
	rc := raft.DefaultConfig()
	if n.cfg.RaftTick > 0 {
		rc.TickInterval = n.cfg.RaftTick
	}
	rc.Addr = n.state.AdvertiseAddr
	rc.DataDir = filepath.Join(n.cfg.DataDir, "raft")
	rc.Transport = tr
	mc := DefaultManagerConfig()
	mc.NodeID, mc.Addr, mc.Logger = n.state.NodeID, n.state.AdvertiseAddr, n.log
	mc.Dispatcher.HeartbeatPeriod = n.cfg.HeartbeatPeriod
	if boot != nil && boot.caState != nil {
		rc.Peers = []raft.Peer{{ID: RaftID(n.state.NodeID), Addr: n.state.AdvertiseAddr}}
		mc.CAState = boot.caState
	}
	if boot != nil {
		for _, p := range boot.join {
			rc.Join = append(rc.Join, raft.Peer{ID: p.ID, Addr: p.Addr})
		}
	}
	mc.Raft = &rc
	mgr, err := StartManager(ctx, mc)
	if err != nil {
		lis.Close()
		return err
	}
	n.mgr = mgr
	controlapi.Serve(n.srv, mgr.control)
	dispatcher.Serve(n.srv, mgr.dispatcher)
	n.ca = pki.NewCAServer(caState{mgr.store}, pki.CAServerOptions{Logger: n.log})
	pki.RegisterCAService(n.srv, n.ca)
	n.serveNodeService(n.srv)
	mgr.control.SetLogSource(nodeLogs{n})
	mgr.control.SetCA(nodeCA{n.ca})
	go func() {
		if err := n.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("gRPC server stopped", "err", err)
		}
	}()
	return nil
}

// serveWorker serves a worker's node service (its tasks' output, for
// managers only) on its listen address, over mutual TLS.
func (n *Node) serveWorker() error {
	lis, err := net.Listen("tcp", n.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.ListenAddr, err)
	}
	auth := pki.NewAuthorizer(policy(), lazyRemoved{n}, n.log)
	n.srv = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(n.identity.ServerTLSConfig())),
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor()),
		kaPolicy,
	)
	n.serveNodeService(n.srv)
	go func() {
		if err := n.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("gRPC server stopped", "err", err)
		}
	}()
	return nil
}

// serveSocket serves the control API on the local Unix socket (mode 0600:
// the file's permissions are the authentication, as for docker.sock). On a
// worker every call answers that the node is not a manager.
func (n *Node) serveSocket() error {
	path := ControlSocket(n.cfg.DataDir)
	os.Remove(path)
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return err
	}
	n.sockSrv = grpc.NewServer()
	n.serveLocal(n.sockSrv)
	if n.mgr != nil {
		controlapi.Serve(n.sockSrv, n.mgr.control)
	} else {
		controlapi.Serve(n.sockSrv, notManager{})
	}
	go func() { _ = n.sockSrv.Serve(lis) }()
	return nil
}

// startWorker runs the node's agent, connected to the managers over mutual
// TLS (a manager's agent too: it reaches whichever manager leads).
func (n *Node) startWorker(ctx, runCtx context.Context) error {
	if n.mgr != nil {
		select {
		case <-n.mgr.Registered():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	addrs := append([]string(nil), n.state.Managers...)
	if n.mgr != nil {
		for _, m := range n.mgr.raft.Members() {
			if !slices.Contains(addrs, m.Addr) {
				addrs = append(addrs, m.Addr)
			}
		}
	}
	var apis []dispatcher.API
	for _, addr := range addrs {
		api, err := n.dialDispatcher(addr)
		if err != nil {
			return err
		}
		apis = append(apis, api)
	}
	fc := dispatcher.NewFailoverClient(apis, addrs)
	fc.Dial = n.dialDispatcher
	fc.OnHeartbeat = n.noticeCA
	if n.mgr != nil {
		fc.Discover = func() []string {
			var out []string
			for _, m := range n.mgr.raft.Members() {
				out = append(out, m.Addr)
			}
			return out
		}
	}
	fc.OnManagers = func(all []string) {
		n.stateMu.Lock()
		defer n.stateMu.Unlock()
		if slices.Equal(all, n.state.Managers) {
			return
		}
		n.state.Managers = all
		if err := saveState(n.cfg.DataDir, n.state); err != nil {
			n.log.Warn("manager list not saved", "err", err)
		}
	}
	w, err := StartWorker(ctx, WorkerConfig{
		Manager:  fc,
		Executor: n.cfg.Executor,
		NodeID:   n.state.NodeID,
		Addr:     n.state.AdvertiseAddr,
		Logger:   n.log,
	})
	if err != nil {
		return err
	}
	n.worker = w
	return nil
}

func (n *Node) dialDispatcher(addr string) (dispatcher.API, error) {
	conn, err := dialTLS(addr, n.identity)
	if err != nil {
		return nil, err
	}
	n.stateMu.Lock()
	n.conns = append(n.conns, conn)
	n.stateMu.Unlock()
	return dispatcher.NewClient(conn), nil
}

// startRenewer renews the node's certificate at a random point of the
// second half of its life: a manager through its own CA (any manager can
// sign: the key is in the replicated store), a worker through the managers'
// CA service. Connections already open keep working; new ones use the new
// certificate.
func (n *Node) startRenewer(ctx context.Context) error {
	var issuer pki.CertificateIssuer
	if n.ca != nil {
		issuer = n.ca.LocalIssuer(n.identity)
	} else {
		conn, err := dialTLS(n.state.Managers[0], n.identity)
		if err != nil {
			return err
		}
		n.stateMu.Lock()
		n.conns = append(n.conns, conn)
		n.stateMu.Unlock()
		issuer = pki.NewCAClient(conn)
	}
	r := pki.NewRenewer(n.identity, issuer, pki.RenewerOptions{Logger: n.log})
	n.stateMu.Lock()
	n.renewer = r
	n.stateMu.Unlock()
	go func() {
		if err := r.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("certificate renewal stopped", "err", err)
		}
	}()
	return nil
}

// noticeCA renews the node's certificate when the cluster's CA changed (a
// root rotation started or finished): the new certificate chains to the new
// root, and the new trust bundle drops the old root once it is retired.
func (n *Node) noticeCA(resp *dispatcher.HeartbeatResponse) {
	n.stateMu.Lock()
	changed := resp.CAVersion != "" && resp.CAVersion != n.caSeen
	first := n.caSeen == ""
	n.caSeen = resp.CAVersion
	r := n.renewer
	n.stateMu.Unlock()
	if changed && !first && r != nil {
		n.log.Info("the cluster CA changed: renewing the node certificate")
		r.RenewNow()
	}
}

// NodeID returns the node's ID.
func (n *Node) NodeID() string { return n.state.NodeID }

// Role returns "manager" or "worker".
func (n *Node) Role() string { return n.state.Role }

// Manager returns the node's manager, nil on a worker.
func (n *Node) Manager() *Manager { return n.mgr }

// Worker returns the node's worker.
func (n *Node) Worker() *Worker { return n.worker }

// Stop stops the node's agent (leaving its tasks running, as a daemon
// restart does), its manager and its servers.
func (n *Node) Stop() { n.stopOnce.Do(n.stop) }

func (n *Node) stop() {
	if n.worker != nil {
		n.worker.Stop()
	}
	if n.sockSrv != nil {
		n.sockSrv.Stop()
	}
	if n.srv != nil {
		n.srv.Stop()
	}
	if n.mgr != nil {
		n.mgr.Stop()
	}
	n.stateMu.Lock()
	for _, c := range n.conns {
		c.Close()
	}
	n.stateMu.Unlock()
	n.cancel()
}
