package swarm

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/api/session"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/dispatcher"
	"github.com/apiary-io/apiary/swarm/rpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// A node's runtime: the servers and manager components of its current role,
// started by start and replaced by a role switch (noderole.go), and the
// agent, which outlives them.

// runtime is what a node runs in one role: its servers, and a manager's
// components.
type runtime struct {
	role    api.NodeRole
	mgr     *Manager
	ca      *pki.CAServer
	srv     *rpc.Server
	sockSrv *grpc.Server

	// liveMgr holds mgr once started, for the servers' handlers, which
	// may run before then.
	liveMgr atomic.Pointer[Manager]

	// autolock stops followAutolock, which closes autolockDone: stop waits
	// for it, so that no rotation of a stopped manager's keys runs on
	// beside the next start.
	autolock     context.CancelFunc
	autolockDone chan struct{}
}

// stop stops the runtime's servers and manager.
func (rt *runtime) stop() {
	if rt.sockSrv != nil {
		rt.sockSrv.Stop()
	}
	if rt.srv != nil {
		rt.srv.Stop()
	}
	if rt.autolock != nil {
		rt.autolock()
	}
	if rt.mgr != nil {
		rt.mgr.Stop()
	}
	if rt.autolockDone != nil {
		<-rt.autolockDone
	}
}

func (n *Node) keep(c *grpc.ClientConn) {
	n.connMu.Lock()
	n.conns = append(n.conns, c)
	n.connMu.Unlock()
}

// start starts the components of role. On error, whatever started is
// stopped again.
func (n *Node) start(ctx context.Context, role api.NodeRole, boot *bootstrap) (_ *runtime, err error) {
	rt := &runtime{role: role}
	defer func() {
		if err != nil {
			rt.stop()
		}
	}()
	if role == api.NodeRoleManager {
		if err := n.startManager(ctx, rt, boot); err != nil {
			return nil, err
		}
		// A joining member runs before it is added: the leader adds it
		// as a learner, streams it the state, then makes it a voter.
		if boot != nil && len(boot.join) > 0 {
			if _, err := askToJoin(ctx, n.identity, n.cfg.dialOpts(), boot.via, boot.join, n.state.NodeID, n.state.AdvertiseAddr, n.raftID()); err != nil {
				return nil, err
			}
		}
	} else if n.cfg.ListenAddr != "" {
		if err := n.serveWorker(rt); err != nil {
			return nil, err
		}
	}
	if err := n.serveSocket(rt); err != nil {
		return nil, err
	}
	return rt, nil
}

func (n *Node) raftDir() string { return filepath.Join(n.cfg.DataDir, "raft") }

// raftID is the node's raft member ID: RaftID(NodeID) unless a promotion
// gave it another.
func (n *Node) raftID() uint64 {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	if n.state.RaftID != 0 {
		return n.state.RaftID
	}
	return RaftID(n.state.NodeID)
}

func (n *Node) current() *runtime {
	n.rtMu.RLock()
	defer n.rtMu.RUnlock()
	return n.rt
}

func (n *Node) setRuntime(rt *runtime) {
	n.rtMu.Lock()
	n.rt = rt
	n.rtMu.Unlock()
}

func (n *Node) startManager(ctx context.Context, rt *runtime, boot *bootstrap) error {
	lis, err := net.Listen("tcp", n.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.ListenAddr, err)
	}
	// The node's settings (fill made Raft a copy of the caller's); what
	// names this member is the node's own.
	mc := n.cfg.Manager
	rc := *mc.Raft
	rt.srv, err = n.newServer(n.identity.JoinServerTLSConfig(), rt, managerClasses(rc.MaxFrameSize()))
	if err != nil {
		lis.Close()
		return err
	}
	tr, err := raft.NewGRPCTransport(raft.GRPCConfig{
		Server:            rt.srv,
		MaxFrameSize:      rc.MaxFrameSize(),
		ClientCredentials: credentials.NewTLS(n.identity.ClientTLSConfig(pki.RoleManager)),
		Authorize: func(ctx context.Context, from uint64) error {
			id, err := pki.PeerIdentityFromContext(ctx)
			if err != nil {
				return err
			}
			ok := from == RaftID(id.NodeID)
			if mgr := rt.liveMgr.Load(); !ok && mgr != nil {
				ok = mgr.ownsRaftID(id.NodeID, from)
			}
			if id.Role != pki.RoleManager || !ok {
				return fmt.Errorf("raft: node %s (%s) may not speak as member %x", id.NodeID, id.Role, from)
			}
			return nil
		},
		DialOptions: n.cfg.dialerOpts(),
		Logger:      n.log,
	})
	if err != nil {
		lis.Close()
		return err
	}
	rc.ID = n.raftID()
	rc.Addr = n.state.AdvertiseAddr
	rc.DataDir = n.raftDir()
	rc.ForceNewCluster = boot == nil && n.cfg.ForceNewCluster
	rc.Transport = tr
	keys, err := n.managerKeys()
	if err != nil {
		lis.Close()
		return err
	}
	rc.Encryption = raftEncryption(keys)
	mc.NodeID, mc.Addr = n.state.NodeID, n.state.AdvertiseAddr
	if mc.Logger == nil {
		mc.Logger = n.log
	}
	if boot != nil && boot.caState != nil {
		rc.Peers = []raft.Peer{{ID: rc.ID, Addr: n.state.AdvertiseAddr}}
		mc.CAState = boot.caState
	}
	if boot != nil {
		for _, p := range boot.join {
			rc.Join = append(rc.Join, raft.Peer{ID: p.ID, Addr: p.Addr})
		}
	}
	mc.Raft = &rc
	// The control API reaches the node's CA and its nodes' task output
	// from the start: nothing is plugged into it once it serves.
	mgr, err := startManager(ctx, mc, func(s *store.MemoryStore) controlapi.Options {
		rt.ca = pki.NewCAServer(caState{s}, pki.CAServerOptions{Logger: n.log})
		return controlapi.Options{CA: nodeCA{rt.ca}, Logs: nodeLogs{n: n, store: s}}
	})
	if err != nil {
		lis.Close()
		return err
	}
	rt.mgr = mgr
	rt.liveMgr.Store(mgr)
	actx, acancel := context.WithCancel(context.Background())
	rt.autolock, rt.autolockDone = acancel, make(chan struct{})
	go func() {
		defer close(rt.autolockDone)
		n.followAutolock(actx, mgr, keys)
	}()
	control.RegisterAPI(rt.srv, mgr.control, nil)
	registerMembership(rt.srv, mgr.control, nil)
	dispatcher.Serve(rt.srv, mgr.dispatcher)
	pki.RegisterCAService(rt.srv, rt.ca)
	n.serveNodeService(rt.srv)
	n.serveOn(rt.srv, lis)
	return nil
}

// serveOn serves srv on lis in the background.
func (n *Node) serveOn(srv *rpc.Server, lis net.Listener) {
	go func() {
		if err := srv.Serve(lis); err != nil {
			n.log.Error("gRPC server stopped", "err", err)
		}
	}()
}

// serveWorker serves a worker's node service (its tasks' output, for
// managers only) on its listen address, over mutual TLS.
func (n *Node) serveWorker(rt *runtime) error {
	lis, err := net.Listen("tcp", n.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.ListenAddr, err)
	}
	rt.srv, err = n.newServer(n.identity.ServerTLSConfig(), rt, workerNodeClasses())
	if err != nil {
		lis.Close()
		return err
	}
	n.serveNodeService(rt.srv)
	n.serveOn(rt.srv, lis)
	return nil
}

// serveSocket serves the control API on the local Unix socket (mode 0600:
// the file's permissions are the authentication, as for docker.sock). On a
// worker every call answers that the node is not a manager.
func (n *Node) serveSocket(rt *runtime) error {
	lis, err := n.listenSocket(ControlSocket(n.cfg.DataDir))
	if err != nil {
		return err
	}
	// Local users' requests: the same bound as a worker's.
	rt.sockSrv = grpc.NewServer(append(rpc.WindowOptions(), grpc.MaxRecvMsgSize(workerMaxMsg), rpc.StreamWorkersOption())...)
	n.serveLocal(rt.sockSrv)
	if rt.mgr != nil {
		control.RegisterAPI(rt.sockSrv, rt.mgr.control, nil)
	} else {
		control.RegisterAPI(rt.sockSrv, control.UnimplementedAPI{Err: control.ErrNotManager}, nil)
	}
	srv := rt.sockSrv
	go func() { _ = srv.Serve(lis) }()
	return nil
}

// startWorker runs the node's agent, connected to the managers over mutual
// TLS (a manager's agent too: it reaches whichever manager leads). A
// manager that starts for the first time waits until its own node record
// is in the store.
func (n *Node) startWorker(ctx context.Context, rt *runtime, first bool) error {
	if rt.mgr != nil && first {
		select {
		case <-rt.mgr.Registered():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.stateMu.Lock()
	addrs := append([]string(nil), n.state.Managers...)
	n.stateMu.Unlock()
	if rt.mgr != nil {
		for _, m := range rt.mgr.raft.Members() {
			if !slices.Contains(addrs, m.Addr) {
				addrs = append(addrs, m.Addr)
			}
		}
	}
	dial := func(addr string) (session.API, error) {
		conn, err := dialTLS(addr, n.identity, n.cfg.dialOpts())
		if err != nil {
			return nil, err
		}
		n.keep(conn)
		return session.NewAPIClient(conn), nil
	}
	var apis []session.API
	for _, addr := range addrs {
		api, err := dial(addr)
		if err != nil {
			return err
		}
		apis = append(apis, api)
	}
	fc := agent.NewFailoverClient(apis, addrs)
	fc.Dial = dial
	fc.OnHeartbeat = n.noticeHeartbeat
	// A manager's agent asks its raft member too: it knows every manager
	// even when the list learnt is stale.
	fc.Discover = func() []string {
		var out []string
		if rt := n.current(); rt != nil && rt.mgr != nil {
			for _, m := range rt.mgr.raft.Members() {
				out = append(out, m.Addr)
			}
		}
		return out
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
	n.fc = fc
	wc := WorkerConfig{
		Manager:  fc,
		Executor: n.cfg.Executor,
		NodeID:   n.state.NodeID,
		Addr:     n.state.AdvertiseAddr,
		Logger:   n.log,
	}
	if n.mesh != nil {
		wc.HostAddr, wc.DNSAddr, wc.OnTasks = n.mesh.hostAddr.String(), n.mesh.DNSAddr(), n.mesh.setTasks
		wc.GossipAddr, wc.WantGossipPeers, wc.OnGossipPeers = n.mesh.gossipAddr(), n.mesh.alone, n.mesh.setPeers
		wc.OnGossipKeys = func(k agent.GossipKeys) {
			if err := n.mesh.setKeys(k); err != nil {
				n.log.Warn("gossip keys", "err", err)
			}
		}
	}
	w, err := StartWorker(ctx, wc)
	if err != nil {
		return err
	}
	n.worker.Store(w)
	n.watchRemoval(w)
	return nil
}
