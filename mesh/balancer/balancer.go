package balancer

import (
	"errors"
	"fmt"
	"net/netip"
)

// Balancer is a virtual-service table: each service is a frontend (an
// address, a port and a protocol) with options, and the backends it spreads
// connections over. It is the contract the userspace Proxy implements here
// and the kernel data paths (IPVS, nftables DNAT) implement later, so it says
// only what every one of them can do: add or update a service, set its
// backends, remove it, read its counters, close the table.
//
// Methods are safe for concurrent use. A frontend names at most one
// service; the frontend is the service's key.
type Balancer interface {
	// UpsertService adds the service, or updates the options of the one
	// with the same frontend. Adding starts listening on the frontend (a
	// *BindError if it cannot); an update applies to new connections and
	// keeps the backends. A new service has no backends.
	UpsertService(svc Service) error
	// SetBackends replaces the backends of the service at fe. Backends no
	// longer listed, or no longer healthy, get no new connections; their
	// open connections drain (see the package documentation).
	// ErrUnknownService if no service has that frontend.
	SetBackends(fe Frontend, backends []Backend) error
	// RemoveService stops accepting on fe; open connections drain.
	// ErrUnknownService if no service has that frontend.
	RemoveService(fe Frontend) error
	// Stats returns the counters of every service, sorted by frontend.
	Stats() []ServiceStats
	// Close removes every service and closes every connection at once,
	// without draining. Calls after Close return ErrClosed.
	Close() error
}

// Errors of Balancer implementations; test with errors.Is.
var (
	ErrUnknownService = errors.New("balancer: unknown service")
	ErrClosed         = errors.New("balancer: closed")
)

// Bounds on what a caller may ask for; a request beyond one is refused with
// an error naming the field.
const (
	// MaxServices bounds the services of one Balancer: each is a listening
	// socket (two file descriptors with its accept loop's), and 65,536
	// covers one per port of an address.
	MaxServices = 65536
	// MaxBackends bounds the backends of one service. It matches the
	// largest replica count a service may have (design §9, 100,000); the
	// backend choice is linear in it.
	MaxBackends = 100_000
	// MaxConnectionsLimit bounds Options.MaxConnections and
	// Config.MaxConnections: each connection holds two sockets and two
	// goroutines, so a million is already more than a node should carry.
	MaxConnectionsLimit = 1 << 20
	// MaxNodeIDLen bounds Backend.NodeID (node IDs are 25-character
	// strings; the bound leaves room without letting a caller store a
	// megabyte per backend).
	MaxNodeIDLen = 128
)

// Protocol is a frontend's transport.
type Protocol string

// Protocols.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// Scheduler chooses among a service's eligible backends.
type Scheduler string

// Schedulers (IPVS calls them rr and lc).
const (
	// RoundRobin hands new connections to eligible backends in turn.
	RoundRobin Scheduler = "round-robin"
	// LeastConnections hands a new connection to the eligible backend with
	// the fewest open connections (UDP flows count as connections), ties
	// broken in turn so equal backends share the load.
	LeastConnections Scheduler = "least-connections"
)

// TrafficPolicy says which backends are eligible for a connection.
type TrafficPolicy string

// Traffic policies, the values of PortConfig's TrafficPolicy field.
const (
	// TrafficCluster makes every healthy backend eligible, on any node.
	TrafficCluster TrafficPolicy = "cluster"
	// TrafficLocal makes the healthy backends on the receiving node
	// (Backend.Local) eligible, and every healthy backend when none is
	// local. Kubernetes' Local drops the connection instead; we fall back
	// because a published port must answer on every node (the promise of
	// Swarm's ingress) and no external load balancer steers clients away
	// from nodes without a task. See the package documentation.
	TrafficLocal TrafficPolicy = "local"
)

// ProxyProtocol says what the balancer writes to a backend before the
// client's bytes.
type ProxyProtocol string

// PROXY protocol settings, the values of PortConfig's ProxyProtocol field.
const (
	// ProxyNone forwards the client's bytes only.
	ProxyNone ProxyProtocol = ""
	// ProxyV2 writes a PROXY protocol version 2 header (see package
	// proxyproto) carrying the client's and the frontend's addresses. TCP
	// only: a UDP datagram cannot carry it without the backend expecting it
	// in every datagram.
	ProxyV2 ProxyProtocol = "v2"
)

// Frontend is where a service listens: an address, a port and a protocol.
// The zero address (0.0.0.0 or ::) listens on every address of the machine.
type Frontend struct {
	Addr     netip.AddrPort
	Protocol Protocol
}

// String is "127.0.0.1:8080/tcp".
func (f Frontend) String() string { return f.Addr.String() + "/" + string(f.Protocol) }

// Options are a service's settings; the zero value is round robin, cluster
// policy, no PROXY header and Config.MaxConnections.
type Options struct {
	Scheduler     Scheduler
	TrafficPolicy TrafficPolicy
	ProxyProtocol ProxyProtocol
	// MaxConnections caps the service's open TCP connections or UDP flows
	// on this balancer; beyond it a new connection is closed at once and a
	// new flow's datagrams are dropped (counted in ServiceStats.Refused).
	// Zero means Config.MaxConnections (TCP) or Config.MaxUDPFlows (UDP).
	MaxConnections int
}

// Service is a virtual service: a frontend and its options.
type Service struct {
	Frontend Frontend
	Options  Options
}

// Backend is one destination of a service: for the host data path, the
// address of the node running a task and the task's host port.
type Backend struct {
	Addr netip.AddrPort
	// NodeID is the node running the backend; informative (logs, stats).
	NodeID string
	// Healthy backends get new connections; others only keep (and drain)
	// the ones they have.
	Healthy bool
	// Local is true when the backend runs on the receiving node; the local
	// traffic policy prefers such backends.
	Local bool
}

// Validate checks the frontend; errors name the field.
func (f Frontend) Validate() error {
	if !f.Addr.IsValid() {
		return errors.New("Frontend.Addr: not set")
	}
	if f.Addr.Port() == 0 {
		return fmt.Errorf("Frontend.Addr %s: port 0 (a service listens on a fixed port)", f.Addr)
	}
	if f.Addr.Addr().Is4In6() {
		return fmt.Errorf("Frontend.Addr %s: an IPv4-mapped IPv6 address, write it as IPv4", f.Addr)
	}
	if f.Addr.Addr().Zone() != "" {
		return fmt.Errorf("Frontend.Addr %s: zoned addresses are not supported", f.Addr)
	}
	switch f.Protocol {
	case TCP, UDP:
	default:
		return fmt.Errorf("Frontend.Protocol %q: want %q or %q", f.Protocol, TCP, UDP)
	}
	return nil
}

// Validate checks the service; errors name the service and the field.
func (s Service) Validate() error {
	if err := s.Frontend.Validate(); err != nil {
		return fmt.Errorf("service %s: %w", s.Frontend, err)
	}
	o := s.Options
	var err error
	switch {
	case o.Scheduler != "" && o.Scheduler != RoundRobin && o.Scheduler != LeastConnections:
		err = fmt.Errorf("Options.Scheduler %q: want %q or %q", o.Scheduler, RoundRobin, LeastConnections)
	case o.TrafficPolicy != "" && o.TrafficPolicy != TrafficCluster && o.TrafficPolicy != TrafficLocal:
		err = fmt.Errorf("Options.TrafficPolicy %q: want %q or %q", o.TrafficPolicy, TrafficCluster, TrafficLocal)
	case o.ProxyProtocol != ProxyNone && o.ProxyProtocol != ProxyV2:
		err = fmt.Errorf("Options.ProxyProtocol %q: want empty or %q", o.ProxyProtocol, ProxyV2)
	case o.ProxyProtocol == ProxyV2 && s.Frontend.Protocol != TCP:
		err = fmt.Errorf("Options.ProxyProtocol %q: TCP services only", o.ProxyProtocol)
	case o.MaxConnections < 0 || o.MaxConnections > MaxConnectionsLimit:
		err = fmt.Errorf("Options.MaxConnections %d: want 0 (the default) to %d", o.MaxConnections, MaxConnectionsLimit)
	}
	if err != nil {
		return fmt.Errorf("service %s: %w", s.Frontend, err)
	}
	return nil
}

// ValidateBackends checks a backend list for fe: at most MaxBackends, each
// with a usable address, no address twice.
func ValidateBackends(fe Frontend, backends []Backend) error {
	if len(backends) > MaxBackends {
		return fmt.Errorf("service %s: %d backends, more than the %d allowed", fe, len(backends), MaxBackends)
	}
	seen := make(map[netip.AddrPort]struct{}, len(backends))
	for i, b := range backends {
		switch {
		case !b.Addr.IsValid():
			return fmt.Errorf("service %s: backends[%d].Addr: not set", fe, i)
		case b.Addr.Addr().IsUnspecified():
			return fmt.Errorf("service %s: backends[%d].Addr %s: unspecified, want a host address", fe, i, b.Addr)
		case b.Addr.Port() == 0:
			return fmt.Errorf("service %s: backends[%d].Addr %s: port 0", fe, i, b.Addr)
		case len(b.NodeID) > MaxNodeIDLen:
			return fmt.Errorf("service %s: backends[%d].NodeID: %d bytes, more than %d", fe, i, len(b.NodeID), MaxNodeIDLen)
		}
		if _, dup := seen[b.Addr]; dup {
			return fmt.Errorf("service %s: backends[%d].Addr %s: listed twice", fe, i, b.Addr)
		}
		seen[b.Addr] = struct{}{}
	}
	return nil
}

// BindError reports a frontend that could not listen, usually because
// another program holds the port without SO_REUSEPORT.
type BindError struct {
	Frontend Frontend
	Err      error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("balancer: listen on %s: %v", e.Frontend, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }
