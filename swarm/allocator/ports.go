package allocator

import (
	"errors"
	"fmt"
	"slices"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// The dynamic range of published ports, as Swarm's.
const (
	DynamicPortStart = 30000
	DynamicPortEnd   = 32767
)

// allocated reports whether a service's endpoint matches its spec: its
// ports, and in vip mode a host VIP and a VIP on each network of its
// template (the ingress network's, which depends on the store, is given
// with the ports); in dnsrr mode no VIP at all.
func allocated(s *api.Service) bool {
	e := s.Endpoint
	if e == nil || !sameEndpointSpec(e.Spec, wantedSpec(s)) {
		return false
	}
	if wantedSpec(s).Mode == api.ResolutionModeDNSRR {
		return len(e.VirtualIPs) == 0 && e.HostVIP == ""
	}
	if e.HostVIP == "" {
		return false
	}
	for _, p := range e.Ports {
		if !slices.ContainsFunc(e.LoopbackPorts, func(l api.LoopbackPort) bool { return l.Protocol == p.Protocol && l.TargetPort == p.TargetPort }) {
			return false // a service allocated before loopback ports
		}
	}
	for _, n := range s.Spec.TaskTemplate.Networks {
		if !slices.ContainsFunc(e.VirtualIPs, func(v api.EndpointVirtualIP) bool { return v.NetworkID == n.Target }) {
			return false
		}
	}
	return true
}

// wantedSpec is the endpoint spec a service asks for, shared with the
// service (not to be modified).
func wantedSpec(s *api.Service) api.EndpointSpec {
	if s.Spec.EndpointSpec == nil {
		return api.EndpointSpec{Mode: api.ResolutionModeVIP}
	}
	return *s.Spec.EndpointSpec
}

// sameEndpointSpec reports whether two endpoint specs ask for the same
// endpoint: the same mode and the same ports in the same order (no ports
// and an empty list are the same, as they were when specs were compared by
// their JSON encodings). It runs for every service on every allocation, so
// it compares fields rather than encodings; PortConfig is comparable, and a
// field added to EndpointSpec fails TestSameEndpointSpecComparesEveryField.
func sameEndpointSpec(a, b api.EndpointSpec) bool {
	return a.Mode == b.Mode && slices.Equal(a.Ports, b.Ports)
}

// usesPort reports whether a port of an allocated endpoint takes its
// published port from the ingress space, which services share.
func usesPort(p api.PortConfig) bool {
	return p.PublishMode != api.PublishModeHost && p.PublishedPort != 0
}

// portsUsed returns the ingress ports a service holds: none unless its
// endpoint is allocated.
func portsUsed(s *api.Service) []string {
	if s == nil || !allocated(s) {
		return nil
	}
	var out []string
	for _, p := range s.Endpoint.Ports {
		if usesPort(p) {
			out = append(out, store.PortKey(p.Protocol, p.PublishedPort))
		}
	}
	return out
}

// ErrPortInUse is the error of a published port that another service holds
// or asks for.
var ErrPortInUse = errors.New("published port already in use")

// Endpoint allocates service s's endpoint as tx sees the store: its spec's
// ports, where an explicit ingress port must be held by no other
// service's endpoint, and a port left at 0 gets the lowest port of the dynamic
// range that nobody holds or asks for. It reads the store's port index
// (store.ByPublishedPort), never every service, so a create costs the same
// beside 10 or 10,000 services. It changes nothing: the caller writes the
// endpoint, the control API in the transaction that creates or updates the
// service (one raft entry per user write), the allocator loop for a service
// that could not have its ports then.
//
// An error names the port by its place in the spec
// (endpoint_spec.ports[i]) and the service that has it, and wraps
// ErrPortInUse; only a service whose explicit ports are all free fails
// with ErrNoDynamicPort.
func Endpoint(tx store.ReadTx, s *api.Service) (*api.Endpoint, error) {
	// holder names another service that holds the port (its endpoint
	// publishes it) or, with wanting, that asks for it by number and waits
	// for its endpoint. An explicit port goes to the first service
	// allocated; a dynamic one keeps off the ports waiting services want.
	holder := func(protocol string, port uint32, wanting bool) (string, error) {
		others, err := tx.FindServices(store.ByPublishedPort(protocol, port))
		if err != nil {
			return "", err
		}
		for _, o := range others {
			if o.ID != s.ID && (wanting || o.Endpoint != nil && len(o.Endpoint.Ports) > 0) {
				return o.Spec.Name, nil
			}
		}
		return "", nil
	}
	spec := wantedSpec(s).Copy()
	ep := &api.Endpoint{Spec: spec}
	mine := map[string]bool{}
	for i, p := range spec.Ports {
		if p.Protocol == "" {
			p.Protocol = api.PortProtocolTCP
		}
		if p.PublishMode == "" {
			p.PublishMode = api.PublishModeIngress
		}
		if p.PublishMode == api.PublishModeHost {
			ep.Ports = append(ep.Ports, p)
			continue
		}
		if p.PublishedPort == 0 {
			for port := uint32(DynamicPortStart); port <= DynamicPortEnd; port++ {
				if mine[store.PortKey(p.Protocol, port)] {
					continue
				}
				owner, err := holder(p.Protocol, port, true)
				if err != nil {
					return nil, err
				}
				if owner == "" {
					p.PublishedPort = port
					break
				}
			}
			if p.PublishedPort == 0 {
				return nil, fmt.Errorf("service %q: endpoint_spec.ports[%d]: no free port left in %d-%d for target port %d: %w",
					s.Spec.Name, i, DynamicPortStart, DynamicPortEnd, p.TargetPort, ErrNoDynamicPort)
			}
		} else {
			k := store.PortKey(p.Protocol, p.PublishedPort)
			if mine[k] {
				return nil, fmt.Errorf("service %q: endpoint_spec.ports[%d].published_port: %s is published twice by this service: %w", s.Spec.Name, i, k, ErrPortInUse)
			}
			owner, err := holder(p.Protocol, p.PublishedPort, false)
			if err != nil {
				return nil, err
			}
			if owner != "" {
				return nil, fmt.Errorf("service %q: endpoint_spec.ports[%d].published_port: %s is already published by service %q: %w", s.Spec.Name, i, k, owner, ErrPortInUse)
			}
		}
		mine[store.PortKey(p.Protocol, p.PublishedPort)] = true
		ep.Ports = append(ep.Ports, p)
	}
	if err := NewSpaces(tx).virtualIPs(s, ep); err != nil {
		return nil, err
	}
	if err := loopbackPorts(s, ep, mine, holder); err != nil {
		return nil, err
	}
	return ep, nil
}

// loopbackPorts gives a service with a host VIP a loopback VIP port per
// distinct (protocol, target port) of its ports, keeping those it has
// (api.Endpoint.LoopbackPorts), each the lowest of the range that no
// service holds or asks for. They share the key space of the ingress
// ports, so neither kind takes the other's.
func loopbackPorts(s *api.Service, ep *api.Endpoint, mine map[string]bool, holder func(string, uint32, bool) (string, error)) error {
	ep.LoopbackPorts = nil
	if ep.HostVIP == "" {
		return nil
	}
	var had []api.LoopbackPort
	if s.Endpoint != nil {
		had = s.Endpoint.LoopbackPorts
	}
	for _, p := range ep.Ports {
		same := func(l api.LoopbackPort) bool { return l.Protocol == p.Protocol && l.TargetPort == p.TargetPort }
		if slices.ContainsFunc(ep.LoopbackPorts, same) {
			continue
		}
		if i := slices.IndexFunc(had, same); i >= 0 && !mine[store.PortKey(p.Protocol, had[i].Port)] {
			ep.LoopbackPorts = append(ep.LoopbackPorts, had[i])
			mine[store.PortKey(p.Protocol, had[i].Port)] = true
			continue
		}
		port := uint32(0)
		for q := uint32(api.LoopbackVIPPortStart); q <= api.LoopbackVIPPortEnd && port == 0; q++ {
			if mine[store.PortKey(p.Protocol, q)] {
				continue
			}
			owner, err := holder(p.Protocol, q, true)
			if err != nil {
				return err
			}
			if owner == "" {
				port = q
			}
		}
		if port == 0 {
			return fmt.Errorf("service %q: loopback VIP port: none left in %d-%d for target port %d/%s: %w",
				s.Spec.Name, api.LoopbackVIPPortStart, api.LoopbackVIPPortEnd, p.TargetPort, p.Protocol, ErrNoDynamicPort)
		}
		mine[store.PortKey(p.Protocol, port)] = true
		ep.LoopbackPorts = append(ep.LoopbackPorts, api.LoopbackPort{Protocol: p.Protocol, TargetPort: p.TargetPort, Port: port})
	}
	return nil
}

// ErrNoDynamicPort is the error of a service that asks for a dynamic
// published port when the whole dynamic range is taken.
var ErrNoDynamicPort = errors.New("no dynamic published port left")
