package api

// Network is a virtual network tasks attach to.
type Network struct {
	ID   string      `json:"ID"`
	Meta Meta        `json:"Meta"`
	Spec NetworkSpec `json:"Spec"`
	// IPAM is what the allocator chose (the subnet when the spec left it open).
	IPAM *IPAMConfig `json:"IPAM,omitempty"`
	// VNI is the network's VXLAN ID, unique in the cluster, from
	// MinVNI up, for the kernel data path's VXLAN devices (overlay
	// networks only; 0 for other drivers).
	VNI uint32 `json:"VNI,omitempty"`
}

// The VXLAN IDs the allocator gives overlay networks: libnetwork's range
// (below 4096 are left to VLAN-like uses), 24 bits.
const (
	MinVNI = 4096
	MaxVNI = 1<<24 - 1
)

// NetworkSpec is the user-owned part of a network.
type NetworkSpec struct {
	Annotations
	// Driver is the network driver; "overlay" is the default.
	Driver string `json:"Driver,omitempty"`
	// IPAM optionally fixes the subnet and gateway.
	IPAM *IPAMConfig `json:"IPAM,omitempty"`
	// Internal networks have no route outside the cluster.
	Internal bool `json:"Internal,omitempty"`
	// Attachable networks may be joined by stand-alone containers.
	Attachable bool `json:"Attachable,omitempty"`
	// Ingress marks the routing-mesh network of published ports.
	Ingress bool `json:"Ingress,omitempty"`
}

// DriverOverlay is the default network driver.
const DriverOverlay = "overlay"

// IngressNetworkName is the name of the routing mesh's network, made at
// init: services that publish ingress ports are attached to it.
const IngressNetworkName = "ingress"

// HostVIPRange is where services' virtual IPs on the host data path come
// from (Endpoint.HostVIP): a loopback range of Linux's 127.0.0.0/8 apart
// from 127.0.0.x, where nodes that share a machine take their addresses.
// It holds MaxHostVIPs addresses (the network and broadcast addresses left
// out): at most that many services in vip mode at once.
const HostVIPRange = "127.100.0.0/16"

// MaxHostVIPs is how many services HostVIPRange serves at once.
const MaxHostVIPs = 1<<16 - 2

// HostNetworkID is the network ID the store's address index files host
// VIPs under: they are unique like a network's addresses.
const HostNetworkID = "host"

// IPAMConfig is an IPv4 subnet in CIDR form and its gateway.
type IPAMConfig struct {
	Subnet  string `json:"Subnet"`
	Gateway string `json:"Gateway,omitempty"`
}

// GetID implements Object.
func (n *Network) GetID() string { return n.ID }

// GetMeta implements Object.
func (n *Network) GetMeta() Meta { return n.Meta }

// SetMeta implements Object.
func (n *Network) SetMeta(m Meta) { n.Meta = m }

// Kind implements Object.
func (n *Network) Kind() Kind { return KindNetwork }

// CopyObject implements Object.
func (n *Network) CopyObject() Object { return n.Copy() }

// Copy returns a deep copy.
func (n *Network) Copy() *Network {
	if n == nil {
		return nil
	}
	c := *n
	c.Spec.Annotations = n.Spec.Annotations.Copy()
	c.Spec.IPAM = copyPtr(n.Spec.IPAM)
	c.IPAM = copyPtr(n.IPAM)
	return &c
}

// Copy returns a deep copy.
func (s NetworkSpec) Copy() NetworkSpec {
	s.Annotations = s.Annotations.Copy()
	s.IPAM = copyPtr(s.IPAM)
	return s
}
