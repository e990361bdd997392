package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/swarm/api"
)

// NodeConfig configures a node: a machine of a cluster as apiaryd runs it,
// with its identity, its services on the network and its control socket.
// Start from DefaultNodeConfig: it holds every setting of the node's
// process, its manager's included, and nothing is set on a node once it
// runs.
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
	// Manager is what the node runs with whenever it is a manager (from
	// init, a manager join, a restart or a promotion): the scheduler and
	// its plugins, raft's timing, sizes and snapshots (Manager.Raft), the
	// dispatcher's grace and batching, the manager's logger (the node's
	// when nil). Manager.ClusterSpec is the new cluster's settings
	// (InitNode only). The node sets what is its own, and refuses a
	// config that sets it: Manager.NodeID, Addr and CAState, and raft's
	// ID, Addr, FSM, Transport, DataDir, Storage, Peers, Join and
	// ForceNewCluster. A zero Manager is DefaultManagerConfig(), a nil
	// Manager.Raft raft.DefaultConfig().
	Manager ManagerConfig
	// Dialer, if set, opens every connection the node makes to another
	// node (swarmtest cuts the network between nodes with it).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
	// ExternalCA, with ExternalCARoot (the root certificate, PEM), makes a
	// new cluster's CA forward certificate requests to a cfssl signer that
	// holds the root's key, as `docker swarm init --external-ca` does
	// (InitNode only: the choice is the cluster's, kept in its CA record).
	ExternalCA     *pki.ExternalCA
	ExternalCARoot []byte
	// ForceNewCluster (RestartNode of a manager only) recovers a cluster
	// that lost its quorum from this manager's data, as `docker swarm init
	// --force-new-cluster` does: its raft member becomes the group's only
	// one, keeping every committed entry (services, tasks, nodes, the CA
	// and its join tokens), and the lost managers are recorded as workers.
	// It is a one-off: the other managers must not come back with their
	// old data (they would find themselves removed).
	ForceNewCluster bool
	// UnlockKey opens a locked manager's data (RestartNode): the
	// cluster's unlock key, while autolock is on (WaitForUnlock gets it
	// from `apiaryctl swarm unlock`). Without it a locked manager's
	// RestartNode fails with ErrLocked.
	UnlockKey string
	// Availability is the availability a joining node is created with
	// (JoinNode only): active (the default, ""), pause or drain, as
	// `docker swarm join --availability`.
	Availability api.NodeAvailability
	// Mesh is the node's part of the routing mesh (off when its DataPath
	// is empty).
	Mesh   MeshConfig
	Logger *slog.Logger
}

// DefaultNodeConfig returns a node's defaults: Swarm's for its manager
// (DefaultManagerConfig) with raft's (raft.DefaultConfig). The caller sets
// DataDir, ListenAddr and Executor.
func DefaultNodeConfig() NodeConfig {
	rc := raft.DefaultConfig()
	mc := DefaultManagerConfig()
	mc.Raft = &rc
	return NodeConfig{Manager: mc}
}

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
	if err := c.fillManager(); err != nil {
		return fmt.Errorf("node config: %w", err)
	}
	return secureDataDir(c.DataDir, c.Logger)
}

// fillManager gives the manager configuration its defaults and refuses,
// before the node writes anything, what could not start: a manager fails
// on the node's first promotion otherwise, long after the mistake.
func (c *NodeConfig) fillManager() error {
	m := &c.Manager
	if reflect.ValueOf(*m).IsZero() {
		*m = DefaultManagerConfig()
	}
	rc := raft.DefaultConfig()
	if m.Raft != nil {
		rc = *m.Raft // the caller's stays theirs
	}
	m.Raft = &rc
	var errs []error
	own := func(field string, set bool) {
		if set {
			errs = append(errs, fmt.Errorf("manager: %s: the node sets it (leave it empty)", field))
		}
	}
	own("NodeID", m.NodeID != "")
	own("Addr", m.Addr != "")
	own("CAState", len(m.CAState) > 0)
	own("Raft.ID", rc.ID != 0)
	own("Raft.Addr", rc.Addr != "")
	own("Raft.FSM", rc.FSM != nil)
	own("Raft.Transport", rc.Transport != nil)
	own("Raft.DataDir (the node's is DATA_DIR/raft)", rc.DataDir != "")
	own("Raft.Storage (the node's is DATA_DIR/raft)", rc.Storage != nil)
	own("Raft.Peers", len(rc.Peers) > 0)
	own("Raft.Join", len(rc.Join) > 0)
	own("Raft.ForceNewCluster (set NodeConfig.ForceNewCluster)", rc.ForceNewCluster)
	own("Raft.Encryption (the node's is its data key)", rc.Encryption.Key != nil || len(rc.Encryption.Old) > 0)
	if err := rc.CheckTuning(); err != nil {
		errs = append(errs, fmt.Errorf("manager: Raft: %w", err))
	}
	if err := m.ClusterSpec.Validate(); err != nil {
		hint := ""
		if m.ClusterSpec.Name == "" {
			hint = " (start from swarm.DefaultNodeConfig())"
		}
		errs = append(errs, fmt.Errorf("manager: ClusterSpec: %w%s", err, hint))
	}
	return errors.Join(errs...)
}
