package api

import (
	"net/netip"
	"regexp"
	"time"
)

// The rules of the stored objects other than a service spec: a service,
// a node, the cluster, a network, a task.

// Validate checks the service's spec (the rest is the system's own).
func (s *Service) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "service", Field: "service", Problem: "must not be nil"}
	}
	return s.Spec.Validate()
}

// Validate checks a node spec.
func (s *NodeSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "node", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "node", name: s.Name}
	s.validate(v)
	return v.err()
}

func (s *NodeSpec) validate(v *validator) {
	// A node's name is optional (Docker shows the hostname instead), so
	// only its labels are checked.
	v.labels("labels", s.Labels)
	v.oneOf("role", string(s.Role), false, string(NodeRoleWorker), string(NodeRoleManager))
	v.oneOf("availability", string(s.Availability), false,
		string(NodeAvailabilityActive), string(NodeAvailabilityPause), string(NodeAvailabilityDrain))
	v.specBytes("spec", s)
}

// Validate checks the node's spec; problems name the node by its spec name,
// or by its ID when it has none.
func (n *Node) Validate() error {
	if n == nil {
		return &ValidationError{Kind: "node", Field: "node", Problem: "must not be nil"}
	}
	name := n.Spec.Name
	if name == "" {
		name = n.ID
	}
	v := &validator{kind: "node", name: name}
	n.Spec.validate(v)
	return v.err()
}

// minNodeCertExpiry is Swarm's shortest node certificate lifetime: shorter
// ones would be renewed almost continuously.
const minNodeCertExpiry = time.Hour

// Validate checks the cluster spec.
func (s *ClusterSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "cluster", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "cluster", name: s.Name}
	v.checkName("name", s.Name)
	v.labels("labels", s.Labels)
	switch r := s.Orchestration.TaskHistoryRetentionLimit; {
	case r < 0:
		v.addf("orchestration.task_history_retention_limit", "must be >= 0, got %d", r)
	case r > MaxTaskHistoryRetention:
		v.addf("orchestration.task_history_retention_limit", "must be <= %d, got %d", MaxTaskHistoryRetention, r)
	}
	if p := s.Dispatcher.HeartbeatPeriod; p != 0 && (p < MinHeartbeatPeriod || p > MaxHeartbeatPeriod) {
		v.addf("dispatcher.heartbeat_period", "must be 0 (adaptive) or between %s and %s, got %s", MinHeartbeatPeriod, MaxHeartbeatPeriod, p)
	}
	if e := s.CAConfig.NodeCertExpiry; e != 0 && (e < minNodeCertExpiry || e > MaxNodeCertExpiry) {
		v.addf("ca_config.node_cert_expiry", "must be 0 (default %s) or between %s and %s, got %s", DefaultNodeCertExpiry, minNodeCertExpiry, MaxNodeCertExpiry, e)
	}
	if r := s.Gossip.KeyRotation; r != 0 && (r < MinGossipKeyRotation || r > MaxGossipKeyRotation) {
		v.addf("gossip.key_rotation", "must be 0 (default %s) or between %s and %s, got %s", DefaultGossipKeyRotation, MinGossipKeyRotation, MaxGossipKeyRotation, r)
	}
	validateAddrPool(v, "network", s.Network)
	v.specBytes("spec", s)
	return v.err()
}

// Validate checks the cluster's spec.
func (c *Cluster) Validate() error {
	if c == nil {
		return &ValidationError{Kind: "cluster", Field: "cluster", Problem: "must not be nil"}
	}
	return c.Spec.Validate()
}

// driverPattern is a network driver name, including a plugin reference such
// as "vendor/driver:tag".
var driverPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:/-]*$`)

// Validate checks a network spec.
func (s *NetworkSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "network", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "network", name: s.Name}
	v.checkName("name", s.Name)
	v.labels("labels", s.Labels)
	if s.Driver != "" && !driverPattern.MatchString(s.Driver) {
		v.addf("driver", "must be a driver name such as overlay, got %q", s.Driver)
	}
	if s.Ingress {
		// Swarm's rules: the routing mesh is an overlay, and it carries
		// only published ports, never stand-alone containers.
		if s.Driver != "" && s.Driver != "overlay" {
			v.addf("driver", "must be overlay for an ingress network, got %q", s.Driver)
		}
		if s.Attachable {
			v.addf("attachable", "must be false for an ingress network")
		}
	}
	if s.IPAM != nil {
		validateIPAM(v, "ipam", s.IPAM)
	}
	v.specBytes("spec", s)
	return v.err()
}

// validateAddrPool checks the cluster's address pools: IPv4 network
// addresses that do not overlap, each at least as large as the subnets cut
// from it.
func validateAddrPool(v *validator, p string, c NetworkConfig) {
	size := c.Size()
	if c.SubnetSize != 0 && (size < MinSubnetBits || size > MaxSubnetBits) {
		v.addf(fieldPath(p, "subnet_size"), "must be 0 (default %d) or between %d and %d, got %d", DefaultSubnetSize, MinSubnetBits, MaxSubnetBits, c.SubnetSize)
		return
	}
	if !v.maxItems(fieldPath(p, "default_addr_pool"), len(c.DefaultAddrPool), MaxAddrPools) {
		return
	}
	var pools []netip.Prefix
	for i, s := range c.DefaultAddrPool {
		f := fieldIndex(fieldPath(p, "default_addr_pool"), i)
		pool, err := netip.ParsePrefix(s)
		switch {
		case err != nil || !pool.Addr().Is4():
			v.addf(f, "must be an IPv4 CIDR such as 10.0.0.0/8, got %q", s)
			continue
		case pool.Masked() != pool:
			v.addf(f, "must be a network address, %s rather than %s", pool.Masked(), s)
			continue
		case pool.Bits() > size:
			v.addf(f, "must be at least as large as the subnets cut from it (/%d), got %s", size, s)
			continue
		}
		for j, q := range pools {
			if q.Overlaps(pool) {
				v.addf(f, "overlaps default_addr_pool[%d] %s, got %s", j, q, s)
			}
		}
		pools = append(pools, pool)
	}
}

func validateIPAM(v *validator, p string, c *IPAMConfig) {
	if c.Subnet == "" {
		if c.Gateway != "" {
			v.addf(fieldPath(p, "gateway"), "needs %s to be set", fieldPath(p, "subnet"))
		}
		return // the allocator chooses the subnet
	}
	prefix, err := netip.ParsePrefix(c.Subnet)
	switch {
	case err != nil:
		v.addf(fieldPath(p, "subnet"), "must be an IPv4 CIDR such as 10.0.1.0/24, got %q", c.Subnet)
		return
	case !prefix.Addr().Is4():
		v.addf(fieldPath(p, "subnet"), "must be an IPv4 CIDR such as 10.0.1.0/24, got %q", c.Subnet)
		return
	case prefix.Masked() != prefix:
		// Host bits set are almost always a typo for another subnet.
		v.addf(fieldPath(p, "subnet"), "must be a network address, %s rather than %s", prefix.Masked(), c.Subnet)
		return
	case prefix.Bits() < MinSubnetBits || prefix.Bits() > MaxSubnetBits:
		v.addf(fieldPath(p, "subnet"), "must have a prefix length between /%d and /%d, got %s", MinSubnetBits, MaxSubnetBits, c.Subnet)
		return
	case prefix.Addr().IsLoopback() || prefix.Addr().IsMulticast() || prefix.Addr().IsUnspecified():
		v.addf(fieldPath(p, "subnet"), "must not be a loopback, multicast or unspecified range, got %s", c.Subnet)
		return
	}
	if c.Gateway == "" {
		return
	}
	gw, err := netip.ParseAddr(c.Gateway)
	switch {
	case err != nil || !gw.Is4():
		v.addf(fieldPath(p, "gateway"), "must be an IPv4 address, got %q", c.Gateway)
	case !prefix.Contains(gw):
		v.addf(fieldPath(p, "gateway"), "must be inside subnet %s, got %s", prefix, gw)
	case prefix.Bits() < 31 && (gw == prefix.Addr() || gw == lastAddr(prefix)):
		v.addf(fieldPath(p, "gateway"), "must be a host address of subnet %s, not its network or broadcast address, got %s", prefix, gw)
	}
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// Validate checks the network's spec.
func (n *Network) Validate() error {
	if n == nil {
		return &ValidationError{Kind: "network", Field: "network", Problem: "must not be nil"}
	}
	return n.Spec.Validate()
}

// Validate checks a task: its identity fields, its states and its spec
// (fields "spec.…"). Problems name the task by Name, or by ID.
func (t *Task) Validate() error {
	if t == nil {
		return &ValidationError{Kind: "task", Field: "task", Problem: "must not be nil"}
	}
	name := t.Name
	if name == "" {
		name = t.ID
	}
	v := &validator{kind: "task", name: name}
	if t.ServiceID == "" {
		v.addf("service_id", "must not be empty")
	}
	if t.Slot == 0 && t.NodeID == "" {
		// A replicated task lives in a slot, a global one on a node; with
		// neither the orchestrator cannot tell what the task replaces.
		v.addf("slot", "must be > 0 when node_id is empty (replicated tasks have a slot, global tasks a node)")
	}
	if !validTaskState(t.DesiredState) {
		v.addf("desired_state", "must be a task state, got %d", int(t.DesiredState))
	}
	if !validTaskState(t.Status.State) {
		v.addf("status.state", "must be a task state, got %d", int(t.Status.State))
	}
	validateTaskSpec(v, "spec", &t.Spec)
	return v.err()
}

func validTaskState(s TaskState) bool { return s >= 0 && int(s) < len(taskStateNames) }
