package swarm

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	gka "google.golang.org/grpc/keepalive"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/controlapi"
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

// dialTLSAny dials a node whatever its role (a manager reading a worker's
// task output).
func dialTLSAny(addr string, ident *pki.NodeIdentity, opts []grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(ident.ClientTLSConfig("")))}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// policy is who may call what over the network: the role comes from the
// caller's certificate. The control API is for managers (users reach it
// through a manager's local socket); workers reach only the dispatcher and
// the CA.
func policy() pki.Policy {
	return pki.Policy{
		"/" + controlapi.ServiceName + "/*": {pki.RoleManager},
		"/" + dispatcher.ServiceName + "/*": {pki.RoleManager, pki.RoleWorker},
		"/apiary.raft.v1.Raft/*":            {pki.RoleManager},
		"/" + nodeServiceName + "/*":        {pki.RoleManager},
	}.Merge(pki.CAPolicy())
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
