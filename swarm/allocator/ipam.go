package allocator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// IPAM: every address decision is read from the store and written to it,
// never kept in the allocator. Which addresses of a network are taken is
// rebuilt, for each allocation, from the services' VIPs and the live
// tasks' attachments the store holds (an address space); a new leader
// therefore allocates from exactly what the old one committed, and the
// store refuses, when it applies a write, an address two writers chose at
// once (store.AddrTakenError, a conflict the writer retries). A subnet is
// freed by deleting its network, a VIP by the service leaving the network
// (or being removed), a task's address by the task ending or being
// removed.

// Errors of address allocation; test with errors.Is.
var (
	// ErrNoSubnet: the cluster's address pools have no free subnet left.
	ErrNoSubnet = errors.New("no free subnet left in the address pool")
	// ErrSubnetOverlap: a subnet asked for overlaps another network's.
	ErrSubnetOverlap = errors.New("subnet overlaps another network's")
	// ErrNoAddress: a network's subnet has no free address left.
	ErrNoAddress = errors.New("no free address left in the network's subnet")
	// ErrUnknownNetwork: a service names a network that does not exist.
	ErrUnknownNetwork = errors.New("network not found")
)

// addrSpace is the addresses of one subnet and which of them are taken.
// A network's addresses are handed out lowest first; the network and
// broadcast addresses and the gateway are never handed out.
type addrSpace struct {
	network *api.Network // nil for the host VIP range
	subnet  netip.Prefix
	gateway netip.Addr
	taken   map[netip.Addr]bool
	next    netip.Addr // no free address below it
}

func newAddrSpace(n *api.Network, subnet netip.Prefix, gateway netip.Addr) *addrSpace {
	return &addrSpace{network: n, subnet: subnet, gateway: gateway, taken: map[netip.Addr]bool{}, next: subnet.Addr().Next()}
}

// take hands out the lowest free address.
func (a *addrSpace) take() (netip.Addr, error) {
	for ip := a.next; a.subnet.Contains(ip); ip = ip.Next() {
		if ip == a.gateway || a.taken[ip] || ip == lastAddr(a.subnet) {
			continue
		}
		a.taken[ip], a.next = true, ip.Next()
		return ip, nil
	}
	return netip.Addr{}, fmt.Errorf("network %q: %w (%s)", a.network.Spec.Name, ErrNoAddress, a.subnet)
}

// mark records an address as taken, if it is in the subnet.
func (a *addrSpace) mark(addr string) {
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	if ip, err := netip.ParseAddr(addr); err == nil && a.subnet.Contains(ip) {
		a.taken[ip] = true
	}
}

// cidr writes an address with its subnet's length, as Docker shows it.
func (a *addrSpace) cidr(ip netip.Addr) string {
	return netip.PrefixFrom(ip, a.subnet.Bits()).String()
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// Spaces reads the address spaces of networks from a store view, each once,
// and keeps what was taken from them since: one Spaces serves the
// allocations of one transaction (a service's VIPs, a batch of tasks'
// addresses). The view may be shared (store.ViewShared): it only reads.
type Spaces struct {
	tx          store.ReadTx
	spaces      map[string]*addrSpace
	host        *addrSpace
	ingressNet  *api.Network
	ingressRead bool
}

// NewSpaces returns the address spaces as tx sees them.
func NewSpaces(tx store.ReadTx) *Spaces {
	return &Spaces{tx: tx, spaces: map[string]*addrSpace{}}
}

// network returns the address space of a network, with its services'
// VIPs and its live tasks' addresses taken.
func (sp *Spaces) network(id string) (*addrSpace, error) {
	a := sp.spaces[id]
	if a == nil {
		n := sp.tx.GetNetwork(id)
		if n == nil {
			return nil, fmt.Errorf("network %s: %w", id, ErrUnknownNetwork)
		}
		if n.IPAM == nil || n.IPAM.Subnet == "" {
			return nil, fmt.Errorf("network %q has no subnet", n.Spec.Name)
		}
		subnet, err := netip.ParsePrefix(n.IPAM.Subnet)
		if err != nil {
			return nil, fmt.Errorf("network %q: subnet %q: %w", n.Spec.Name, n.IPAM.Subnet, err)
		}
		gw, _ := netip.ParseAddr(n.IPAM.Gateway)
		a = newAddrSpace(n, subnet, gw)
		services, err := sp.tx.FindServices(store.ByReferencedNetwork(id))
		if err != nil {
			return nil, err
		}
		for _, s := range services {
			if s.Endpoint == nil {
				continue
			}
			for _, v := range s.Endpoint.VirtualIPs {
				if v.NetworkID == id {
					a.mark(v.Addr)
				}
			}
		}
		ts, err := sp.tx.FindTasks(store.ByReferencedNetwork(id))
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if t.Status.State.Terminal() {
				continue // its addresses are free again
			}
			for _, n := range t.Networks {
				if n.NetworkID == id {
					for _, addr := range n.Addresses {
						a.mark(addr)
					}
				}
			}
		}
		sp.spaces[id] = a
	}
	return a, nil
}

// hostVIPNext is where this process tries its next host VIP: an offset
// into HostVIPRange, from a random place at start. Every try takes the
// offset after the last one (next fit), so that:
//   - the services a manager creates get addresses in order, and the
//     store's address index, whose copy-on-write nodes a write copies,
//     grows at its end instead of at a random leaf per create (random
//     addresses cost the apply of a create twice the time and bytes on
//     every manager, BenchmarkApplyBatchServices);
//   - concurrent creates on one manager never try the same address (each
//     takes its own offset), where a shared "lowest free" would make every
//     pair of them conflict in the store;
//   - the control APIs of several managers, and the clusters of one
//     machine, start apart at random and stay apart unless they meet.
//
// Freed addresses are given again once the offsets wrap around the range.
var hostVIPNext = func() *atomic.Uint32 {
	var n atomic.Uint32
	n.Store(rand.Uint32N(api.MaxHostVIPs))
	return &n
}()

// hostVIP returns a free host VIP: the next offset (hostVIPNext) whose
// address no service holds, as the store's address index says; the range
// is large and the taken part of it is mostly behind the cursor, so the
// first look almost always finds it.
func (sp *Spaces) hostVIP() (netip.Addr, error) {
	if sp.host == nil {
		sp.host = newAddrSpace(nil, netip.MustParsePrefix(api.HostVIPRange), netip.Addr{})
	}
	a := sp.host
	base := u32(a.subnet.Addr()) + 1
	for range uint32(api.MaxHostVIPs) {
		ip := fromU32(base + (hostVIPNext.Add(1)-1)%api.MaxHostVIPs)
		if a.taken[ip] {
			continue
		}
		holders, err := sp.tx.FindServices(store.ByAddress(api.HostNetworkID, ip.String()))
		if err != nil {
			return netip.Addr{}, err
		}
		if len(holders) == 0 {
			a.taken[ip] = true
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("the host VIP range: %w (%s)", ErrNoAddress, a.subnet)
}

// ingress returns the cluster's ingress network, nil when it has none,
// looked up once per Spaces (a batch of tasks asks for each).
func (sp *Spaces) ingress() (*api.Network, error) {
	if sp.ingressRead {
		return sp.ingressNet, nil
	}
	nets, err := sp.tx.FindNetworks(store.All)
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.Spec.Ingress {
			sp.ingressNet = n
			break
		}
	}
	sp.ingressRead = true
	return sp.ingressNet, nil
}

// publishesIngress reports whether an endpoint spec publishes a port
// through the routing mesh.
func publishesIngress(e api.EndpointSpec) bool {
	for _, p := range e.Ports {
		if p.PublishMode != api.PublishModeHost {
			return true
		}
	}
	return false
}

// serviceNetworks are the networks a service's VIPs and its tasks'
// addresses are on: those of its template (network IDs, as the control
// API stores them), then the ingress network when it publishes ingress
// ports.
func (sp *Spaces) serviceNetworks(s *api.Service) ([]string, error) {
	var ids []string
	for _, n := range s.Spec.TaskTemplate.Networks {
		ids = append(ids, n.Target)
	}
	if publishesIngress(wantedSpec(s)) {
		in, err := sp.ingress()
		if err != nil {
			return nil, err
		}
		if in != nil && !slices.Contains(ids, in.ID) {
			ids = append(ids, in.ID)
		}
	}
	return ids, nil
}

// virtualIPs gives service s its VIPs in ep: one per network it is on
// (keeping those it has), and its host VIP, in endpoint mode vip; none in
// dnsrr.
func (sp *Spaces) virtualIPs(s *api.Service, ep *api.Endpoint) error {
	ep.VirtualIPs, ep.HostVIP = nil, ""
	if wantedSpec(s).Mode == api.ResolutionModeDNSRR {
		return nil
	}
	var had []api.EndpointVirtualIP
	if s.Endpoint != nil {
		had = s.Endpoint.VirtualIPs
		ep.HostVIP = s.Endpoint.HostVIP
	}
	ids, err := sp.serviceNetworks(s)
	if err != nil {
		return err
	}
	for i, id := range ids {
		if j := slices.IndexFunc(had, func(v api.EndpointVirtualIP) bool { return v.NetworkID == id }); j >= 0 {
			ep.VirtualIPs = append(ep.VirtualIPs, had[j])
			continue
		}
		a, err := sp.network(id)
		if err != nil {
			if errors.Is(err, ErrUnknownNetwork) && i < len(s.Spec.TaskTemplate.Networks) {
				return fmt.Errorf("service %q: task_template.networks[%d].target: %w", s.Spec.Name, i, err)
			}
			return fmt.Errorf("service %q: %w", s.Spec.Name, err)
		}
		ip, err := a.take()
		if err != nil {
			return fmt.Errorf("service %q: virtual IP: %w", s.Spec.Name, err)
		}
		ep.VirtualIPs = append(ep.VirtualIPs, api.EndpointVirtualIP{NetworkID: id, Addr: a.cidr(ip)})
	}
	if ep.HostVIP == "" {
		ip, err := sp.hostVIP()
		if err != nil {
			return fmt.Errorf("service %q: host VIP: %w", s.Spec.Name, err)
		}
		ep.HostVIP = ip.String()
	}
	return nil
}

// TaskAttachments gives a task of service s an address on each network
// of its template, then on the ingress network when s publishes ingress
// ports (as its endpoint says), keeping any it has already.
func (sp *Spaces) TaskAttachments(s *api.Service, t *api.Task) ([]api.NetworkAttachment, error) {
	var ids []string
	aliases := map[string][]string{}
	for _, n := range t.Spec.Networks {
		ids = append(ids, n.Target)
		aliases[n.Target] = n.Aliases
	}
	if s.Endpoint != nil && publishesIngress(s.Endpoint.Spec) {
		in, err := sp.ingress()
		if err != nil {
			return nil, err
		}
		if in != nil && !slices.Contains(ids, in.ID) {
			ids = append(ids, in.ID)
		}
	}
	var out []api.NetworkAttachment
	for _, id := range ids {
		if j := slices.IndexFunc(t.Networks, func(n api.NetworkAttachment) bool { return n.NetworkID == id }); j >= 0 && len(t.Networks[j].Addresses) > 0 {
			out = append(out, t.Networks[j])
			continue
		}
		a, err := sp.network(id)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", t.ID, err)
		}
		ip, err := a.take()
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", t.ID, err)
		}
		out = append(out, api.NetworkAttachment{NetworkID: id, Addresses: []string{a.cidr(ip)}, Aliases: slices.Clone(aliases[id])})
	}
	return out, nil
}
