package api

import "time"

// DefaultClusterName is the name of the one Cluster object.
const DefaultClusterName = "default"

// Cluster holds cluster-wide settings; there is exactly one.
type Cluster struct {
	ID         string      `json:"ID"`
	Meta       Meta        `json:"Meta"`
	Spec       ClusterSpec `json:"Spec"`
	JoinTokens JoinTokens  `json:"JoinTokens"`
	// CAState is the cluster CA's replicated state (root certificate and
	// key, token secrets, rotation), a JSON document owned by package pki
	// that the store carries as it is. The control API never returns it.
	CAState []byte `json:"CAState,omitempty"`
	// RemovedNodes are the IDs of nodes removed from the cluster: they may
	// never come back under that identity, even with an unexpired
	// certificate.
	RemovedNodes []string `json:"RemovedNodes,omitempty"`
	// GossipKeys are the keys of the nodes' gossip (the leader's
	// keymanager makes and rotates them; the dispatcher hands them to
	// every node). Secret: the control API returns them without their key
	// material (GossipKeyring.Redacted).
	GossipKeys GossipKeyring `json:"GossipKeys,omitzero"`
	// UnlockKey is the key that locks every manager's data at rest while
	// Spec.EncryptionConfig.AutoLockManagers is on (APKEY-1-..., package
	// swarm/encryption), empty otherwise. Secret: the control API never
	// returns it but through GetUnlockKey.
	UnlockKey string `json:"UnlockKey,omitempty"`
	// KEKGeneration counts the changes of the key that wraps the
	// managers' data keys: autolock turned on or off, the unlock key
	// rotated. Each manager reports the generation it has applied
	// (Node.DataKey), so that an operator knows when the old key stops
	// mattering.
	KEKGeneration uint64 `json:"KEKGeneration,omitempty"`
}

// JoinTokens are the secrets a node presents to join as a worker or a manager.
type JoinTokens struct {
	Worker  string `json:"Worker"`
	Manager string `json:"Manager"`
}

// ClusterSpec is the user-owned part of the cluster.
type ClusterSpec struct {
	Annotations
	Orchestration OrchestrationConfig `json:"Orchestration"`
	Dispatcher    DispatcherConfig    `json:"Dispatcher"`
	CAConfig      CAConfig            `json:"CAConfig"`
	// Network is where networks' subnets come from. It is set at init
	// (apiaryd init --default-addr-pool) and cannot change afterwards, as
	// in Swarm: the subnets already given came from it.
	Network NetworkConfig `json:"Network,omitzero"`
	// Gossip tunes the encryption of the nodes' gossip.
	Gossip GossipConfig `json:"Gossip,omitzero"`
	// EncryptionConfig is the managers' encryption at rest.
	EncryptionConfig EncryptionConfig `json:"EncryptionConfig,omitzero"`
}

// EncryptionConfig is the managers' encryption at rest.
type EncryptionConfig struct {
	// AutoLockManagers keeps the key that opens every manager's data
	// off the managers' disks: a restarted manager starts only once it
	// is given the cluster's unlock key (Swarm's autolock).
	AutoLockManagers bool `json:"AutoLockManagers,omitempty"`
}

// NetworkConfig is the cluster's address pool: a network created without a
// subnet gets the first free subnet of SubnetSize bits from the pools, in
// order.
type NetworkConfig struct {
	// DefaultAddrPool are IPv4 CIDRs, Docker's --default-addr-pool; empty
	// means DefaultAddrPool (10.0.0.0/8).
	DefaultAddrPool []string `json:"DefaultAddrPool,omitempty"`
	// SubnetSize is the prefix length of each network's subnet, Docker's
	// --default-addr-pool-mask-length; 0 means DefaultSubnetSize (24).
	SubnetSize uint32 `json:"SubnetSize,omitempty"`
}

// Defaults of the cluster's address pool, Swarm's.
const (
	DefaultAddrPool   = "10.0.0.0/8"
	DefaultSubnetSize = 24
)

// Pools returns the address pools, the default when none is set.
func (c NetworkConfig) Pools() []string {
	if len(c.DefaultAddrPool) == 0 {
		return []string{DefaultAddrPool}
	}
	return c.DefaultAddrPool
}

// Size returns the subnets' prefix length, the default when unset.
func (c NetworkConfig) Size() int {
	if c.SubnetSize == 0 {
		return DefaultSubnetSize
	}
	return int(c.SubnetSize)
}

// OrchestrationConfig tunes the orchestrators.
type OrchestrationConfig struct {
	// TaskHistoryRetentionLimit is how many old tasks each slot keeps
	// (default 5); older terminal tasks are deleted.
	TaskHistoryRetentionLimit int64 `json:"TaskHistoryRetentionLimit"`
}

// DispatcherConfig tunes worker sessions.
type DispatcherConfig struct {
	// HeartbeatPeriod is how often workers heartbeat; zero means adaptive
	// (1 s for small clusters, growing with node count).
	HeartbeatPeriod time.Duration `json:"HeartbeatPeriod"`
}

// CAConfig tunes the cluster's certificate authority.
type CAConfig struct {
	NodeCertExpiry time.Duration `json:"NodeCertExpiry"`
}

// Defaults of the cluster spec.
const (
	DefaultTaskHistoryRetentionLimit = 5
	DefaultNodeCertExpiry            = 90 * 24 * time.Hour
)

// DefaultClusterSpec returns the spec a new cluster starts with.
func DefaultClusterSpec() ClusterSpec {
	return ClusterSpec{
		Annotations:   Annotations{Name: DefaultClusterName},
		Orchestration: OrchestrationConfig{TaskHistoryRetentionLimit: DefaultTaskHistoryRetentionLimit},
		CAConfig:      CAConfig{NodeCertExpiry: DefaultNodeCertExpiry},
		Gossip:        GossipConfig{KeyRotation: DefaultGossipKeyRotation},
	}
}

// GetID implements Object.
func (c *Cluster) GetID() string { return c.ID }

// GetMeta implements Object.
func (c *Cluster) GetMeta() Meta { return c.Meta }

// SetMeta implements Object.
func (c *Cluster) SetMeta(m Meta) { c.Meta = m }

// Kind implements Object.
func (c *Cluster) Kind() Kind { return KindCluster }

// CopyObject implements Object.
func (c *Cluster) CopyObject() Object { return c.Copy() }

// Copy returns a deep copy.
func (c *Cluster) Copy() *Cluster {
	if c == nil {
		return nil
	}
	x := *c
	x.Spec = c.Spec.Copy()
	x.CAState = copySlice(c.CAState)
	x.RemovedNodes = copySlice(c.RemovedNodes)
	x.GossipKeys = c.GossipKeys.Copy()
	return &x
}

// Copy returns a deep copy.
func (s ClusterSpec) Copy() ClusterSpec {
	s.Annotations = s.Annotations.Copy()
	s.Network.DefaultAddrPool = copySlice(s.Network.DefaultAddrPool)
	return s
}
