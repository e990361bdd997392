package api

import "time"

// NodeRole is the role a node acts in.
type NodeRole string

// Node roles.
const (
	NodeRoleWorker  NodeRole = "worker"
	NodeRoleManager NodeRole = "manager"
)

// NodeAvailability says whether the scheduler may place tasks on a node.
type NodeAvailability string

// Availabilities: active takes new tasks; pause keeps its tasks but takes no
// new ones; drain moves its tasks elsewhere.
const (
	NodeAvailabilityActive NodeAvailability = "active"
	NodeAvailabilityPause  NodeAvailability = "pause"
	NodeAvailabilityDrain  NodeAvailability = "drain"
)

// NodeState is the node's condition as the managers see it.
type NodeState string

// Node states.
const (
	NodeStateUnknown      NodeState = "unknown"
	NodeStateDown         NodeState = "down"
	NodeStateReady        NodeState = "ready"
	NodeStateDisconnected NodeState = "disconnected"
)

// Node is a machine of the cluster: a manager, a worker, or both.
type Node struct {
	ID            string           `json:"ID"`
	Meta          Meta             `json:"Meta"`
	Spec          NodeSpec         `json:"Spec"`
	Description   *NodeDescription `json:"Description,omitempty"`
	Status        NodeStatus       `json:"Status"`
	ManagerStatus *ManagerStatus   `json:"ManagerStatus,omitempty"`
	// Certificate describes the certificate the cluster's CA last issued
	// to the node (root rotation waits until every node holds one signed by
	// the new root).
	Certificate *NodeCertificate `json:"Certificate,omitempty"`
	// DataKey is how a manager's data key is wrapped, as the manager
	// reports it once it has applied a change of the cluster's
	// (Cluster.KEKGeneration); nil on a node that never managed.
	DataKey *NodeDataKey `json:"DataKey,omitempty"`
}

// NodeDataKey is a manager's report of its data-encryption key.
type NodeDataKey struct {
	// KEKGeneration is the Cluster.KEKGeneration the manager has applied:
	// its data key is wrapped as the cluster said then, and, when that
	// was a new unlock key, the data key was rotated and all its data
	// rewritten under the new one.
	KEKGeneration uint64 `json:"KEKGeneration"`
	// Locked: the data key is wrapped by the unlock key (autolock).
	Locked bool `json:"Locked,omitempty"`
}

// NodeCertificate identifies a node's current certificate.
type NodeCertificate struct {
	Role        string    `json:"Role"`
	IssuerKeyID string    `json:"IssuerKeyID"`
	Serial      string    `json:"Serial"`
	NotAfter    time.Time `json:"NotAfter"`
}

// NodeSpec is the user-owned part of a node.
type NodeSpec struct {
	Annotations
	Role         NodeRole         `json:"Role"`
	Availability NodeAvailability `json:"Availability"`
}

// NodeDescription is what the node reports about itself when it registers.
type NodeDescription struct {
	Hostname  string            `json:"Hostname"`
	Platform  Platform          `json:"Platform"`
	Resources Resources         `json:"Resources"`
	Engine    EngineDescription `json:"Engine"`
	// Executor names the kind of executor the node runs tasks with
	// ("process", "docker", "fake").
	Executor string `json:"Executor"`
}

// Platform is an OS and CPU architecture, as Go names them.
type Platform struct {
	Architecture string `json:"Architecture"`
	OS           string `json:"OS"`
}

// EngineDescription describes the runtime on a node.
type EngineDescription struct {
	EngineVersion string            `json:"EngineVersion,omitempty"`
	Labels        map[string]string `json:"Labels,omitempty"`
}

// Resources are amounts of CPU (in billionths of a CPU), memory and generic
// resources.
type Resources struct {
	NanoCPUs         int64             `json:"NanoCPUs,omitempty"`
	MemoryBytes      int64             `json:"MemoryBytes,omitempty"`
	GenericResources []GenericResource `json:"GenericResources,omitempty"`
}

// GenericResource is a user-defined resource: either a count of
// interchangeable units (DiscreteResourceSpec) or one named unit
// (NamedResourceSpec), e.g. gpu=2 or gpu=GPU-a3f1.
type GenericResource struct {
	NamedResourceSpec    *NamedGenericResource    `json:"NamedResourceSpec,omitempty"`
	DiscreteResourceSpec *DiscreteGenericResource `json:"DiscreteResourceSpec,omitempty"`
}

// NamedGenericResource is one named unit of a resource kind.
type NamedGenericResource struct {
	Kind  string `json:"Kind"`
	Value string `json:"Value"`
}

// DiscreteGenericResource is a count of units of a resource kind.
type DiscreteGenericResource struct {
	Kind  string `json:"Kind"`
	Value int64  `json:"Value"`
}

// NodeStatus is the system-owned condition of a node.
type NodeStatus struct {
	State   NodeState `json:"State"`
	Message string    `json:"Message,omitempty"`
	// Addr is the address the node was last seen from.
	Addr string `json:"Addr,omitempty"`
	// GossipAddr is where the node gossips, as it registered (empty: it
	// takes no part in the routing mesh).
	GossipAddr string `json:"GossipAddr,omitempty"`
}

// Reachability is a manager's standing in the raft quorum.
type Reachability string

// Reachabilities.
const (
	ReachabilityUnknown     Reachability = "unknown"
	ReachabilityUnreachable Reachability = "unreachable"
	ReachabilityReachable   Reachability = "reachable"
)

// ManagerStatus is set on managers only.
type ManagerStatus struct {
	Leader       bool         `json:"Leader,omitempty"`
	Reachability Reachability `json:"Reachability"`
	Addr         string       `json:"Addr"`
	RaftID       uint64       `json:"RaftID,omitempty"`
	// SchedulerPlugins is the manager's placement pipeline, in order: its
	// filters, then its scores, then its reserve plugins, as the manager
	// reports it when it starts. Each manager places with its own while it
	// leads, so managers that disagree place differently after a failover:
	// this is where that shows.
	SchedulerPlugins []SchedulerPlugin `json:"SchedulerPlugins,omitempty"`
}

// SchedulerPlugin is one plugin of a manager's scheduler.
type SchedulerPlugin struct {
	// Stage is the extension point: "filter", "score" or "reserve".
	Stage string `json:"Stage"`
	Name  string `json:"Name"`
	// Weight is a score's weight in the sum that ranks the nodes.
	Weight int64 `json:"Weight,omitempty"`
}

// Scheduler plugin stages.
const (
	SchedulerFilter  = "filter"
	SchedulerScore   = "score"
	SchedulerReserve = "reserve"
)

// GetID implements Object.
func (n *Node) GetID() string { return n.ID }

// GetMeta implements Object.
func (n *Node) GetMeta() Meta { return n.Meta }

// SetMeta implements Object.
func (n *Node) SetMeta(m Meta) { n.Meta = m }

// Kind implements Object.
func (n *Node) Kind() Kind { return KindNode }

// CopyObject implements Object.
func (n *Node) CopyObject() Object { return n.Copy() }

// Copy returns a deep copy.
func (n *Node) Copy() *Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Spec.Annotations = n.Spec.Annotations.Copy()
	if n.Description != nil {
		d := n.Description.Copy()
		c.Description = &d
	}
	if n.ManagerStatus != nil {
		ms := *n.ManagerStatus
		ms.SchedulerPlugins = copySlice(ms.SchedulerPlugins)
		c.ManagerStatus = &ms
	}
	c.Certificate = copyPtr(n.Certificate)
	c.DataKey = copyPtr(n.DataKey)
	return &c
}

// Copy returns a deep copy.
func (d NodeDescription) Copy() NodeDescription {
	d.Resources = d.Resources.Copy()
	d.Engine.Labels = copyMap(d.Engine.Labels)
	return d
}

// Copy returns a deep copy.
func (r Resources) Copy() Resources {
	if r.GenericResources != nil {
		g := make([]GenericResource, len(r.GenericResources))
		for i, x := range r.GenericResources {
			g[i] = GenericResource{
				NamedResourceSpec:    copyPtr(x.NamedResourceSpec),
				DiscreteResourceSpec: copyPtr(x.DiscreteResourceSpec),
			}
		}
		r.GenericResources = g
	}
	return r
}

// Copy returns a deep copy.
func (s NodeSpec) Copy() NodeSpec {
	s.Annotations = s.Annotations.Copy()
	return s
}

// CertificateRole is the role the cluster's CA issues the node's
// certificate for. A promotion takes effect at once (the node needs a
// manager certificate to join the raft group); a demotion only once the
// node has left the raft group (its ManagerStatus is cleared then), so that
// a member never loses the right to speak to its peers while it is one.
func (n *Node) CertificateRole() NodeRole {
	if n.Spec.Role == NodeRoleManager || n.ManagerStatus != nil {
		return NodeRoleManager
	}
	return NodeRoleWorker
}
