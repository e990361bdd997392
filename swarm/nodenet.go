package swarm

import (
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	gka "google.golang.org/grpc/keepalive"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/dispatcher"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// keepalive makes a connection to a node that went silent (cut off the
// network, not refusing) fail within seconds rather than TCP's minutes.
var keepalive = grpc.WithKeepaliveParams(gka.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true})

// kaPolicy lets clients ping as often as keepalive asks.
var kaPolicy = grpc.KeepaliveEnforcementPolicy(gka.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true})

// reconnect bounds gRPC's reconnection backoff (two minutes by default): a
// manager back from a restart or a network cut is used again within
// seconds.
var reconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
	MinConnectTimeout: 5 * time.Second,
})

// dialOpts are the options of every connection the node opens to another.
func (c *NodeConfig) dialOpts() []grpc.DialOption {
	opts := append([]grpc.DialOption{keepalive, reconnect}, c.dialerOpts()...)
	return append(opts, rpc.DialOptions()...)
}

// dialerOpts plugs in the configured dialer, if any.
func (c *NodeConfig) dialerOpts() []grpc.DialOption {
	if c.Dialer == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithContextDialer(c.Dialer)}
}

func dialTLS(addr string, ident *pki.NodeIdentity, opts []grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(ident.ClientTLSConfig(pki.RoleManager)))}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// dialNode dials the node nodeID at addr, whatever its role (a manager
// reading a worker's task output): the server must prove it is that node.
func dialNode(addr, nodeID string, ident *pki.NodeIdentity, opts []grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(ident.ClientTLSConfigForNode(nodeID)))}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial node %s at %s: %w", nodeID, addr, err)
	}
	return conn, nil
}

// policy is who may call what over the network: the role comes from the
// caller's certificate. The control API is for managers (users reach it
// through a manager's local socket); workers reach only the dispatcher and
// the CA.
func policy() pki.Policy {
	return pki.Policy{
		"/" + control.APIService + "/*":     {pki.RoleManager},
		"/" + membershipService + "/*":      {pki.RoleManager},
		"/" + dispatcher.ServiceName + "/*": {pki.RoleManager, pki.RoleWorker},
		"/apiary.raft.v1.Raft/*":            {pki.RoleManager},
		"/" + nodeServiceService + "/*":     {pki.RoleManager},
	}.Merge(pki.CAPolicy())
}

// Connection classes: the server a connection reaches is chosen by the
// role in the caller's verified certificate, or anonymous without one
// (rpc.Server), and each class has the limits of what it may call.
const classAnonymous = "anonymous"

// Bounds on what a caller of each class can make a node hold
// (docs/security.md lists them). A joiner without a certificate may only
// ask for one (a CSR and a token: a few KiB); a worker sends registrations
// and status batches (dispatcher.MaxStatusUpdates reports of bounded
// size); a manager sends raft messages, whose largest is the members'
// MaxFrameSize.
const (
	anonymousMaxMsg   = 64 << 10
	anonymousMaxConns = 256
	workerMaxMsg      = 4 << 20
	workerMaxConns    = 32 // per worker node
	managerMaxConns   = 256
	// window fixes flow-control windows for the classes that need no
	// throughput: what a connection can make the node buffer unread.
	window = 64 << 10
)

// managerClasses are the connection classes of a manager's server.
func managerClasses(raftFrame int) map[string]rpc.Limits {
	return map[string]rpc.Limits{
		classAnonymous:          {MaxRecvMsgSize: anonymousMaxMsg, MaxConcurrentStreams: 4, MaxConns: anonymousMaxConns, WindowSize: window},
		string(pki.RoleWorker):  {MaxRecvMsgSize: workerMaxMsg, MaxConcurrentStreams: 64, MaxConnsPerIdentity: workerMaxConns, WindowSize: window},
		string(pki.RoleManager): {MaxRecvMsgSize: raftFrame, MaxConcurrentStreams: 1024, MaxConnsPerIdentity: managerMaxConns},
	}
}

// workerNodeClasses are those of a worker's server: only managers call it
// (for task output), with small requests.
func workerNodeClasses() map[string]rpc.Limits {
	return map[string]rpc.Limits{
		string(pki.RoleManager): {MaxRecvMsgSize: anonymousMaxMsg, MaxConcurrentStreams: 256, MaxConnsPerIdentity: managerMaxConns},
	}
}

// classify is rpc.ServerConfig.Classify: the role of a verified
// certificate, or anonymous without one.
func classify(info credentials.AuthInfo) (class, identity string, err error) {
	tlsInfo, ok := info.(credentials.TLSInfo)
	if !ok {
		return "", "", fmt.Errorf("not a TLS connection (%T)", info)
	}
	if len(tlsInfo.State.PeerCertificates) == 0 {
		return classAnonymous, "", nil
	}
	id, err := pki.PeerIdentity(tlsInfo.State)
	if err != nil {
		return "", "", err
	}
	return string(id.Role), id.NodeID, nil
}

// newServer is the node's gRPC server over tlsCfg: connections sorted by
// classes, every call authorized by the policy before its request is read.
func (n *Node) newServer(tlsCfg *tls.Config, rt *runtime, classes map[string]rpc.Limits) (*rpc.Server, error) {
	auth := pki.NewAuthorizer(policy(), lazyRemoved{rt}, n.log)
	return rpc.NewServer(rpc.ServerConfig{
		Credentials: credentials.NewTLS(tlsCfg),
		Classify:    classify,
		Classes:     classes,
		Authorize:   auth.TapHandle(),
		Options:     []grpc.ServerOption{kaPolicy},
		Logger:      n.log,
	})
}

// lazyRemoved answers IsRemoved once the manager's store exists.
type lazyRemoved struct{ rt *runtime }

func (l lazyRemoved) IsRemoved(id string) bool {
	mgr := l.rt.liveMgr.Load()
	if mgr == nil {
		return false
	}
	return caState{mgr.store}.IsRemoved(id)
}
