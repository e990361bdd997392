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
	x.Spec.Annotations = c.Spec.Annotations.Copy()
	x.CAState = copySlice(c.CAState)
	x.RemovedNodes = copySlice(c.RemovedNodes)
	return &x
}

// Copy returns a deep copy.
func (s ClusterSpec) Copy() ClusterSpec {
	s.Annotations = s.Annotations.Copy()
	return s
}
