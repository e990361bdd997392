package allocator

import (
	"fmt"
	"slices"

	"github.com/apiary-io/apiary/swarm/api"
)

// The dynamic range of published ports, as Swarm's.
const (
	DynamicPortStart = 30000
	DynamicPortEnd   = 32767
)

// allocated reports whether a service's endpoint matches its spec.
func allocated(s *api.Service) bool {
	return s.Endpoint != nil && sameEndpointSpec(s.Endpoint.Spec, wantedSpec(s))
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
			out = append(out, portKey(p))
		}
	}
	return out
}

// portUse returns the ingress ports allocated services hold, and those
// that services waiting for allocation ask for by number: a dynamic port
// must not take one of them from a service allocated later.
func portUse(services []*api.Service) (used, wanted map[string]bool) {
	used, wanted = map[string]bool{}, map[string]bool{}
	for _, s := range services {
		if allocated(s) {
			for _, k := range portsUsed(s) {
				used[k] = true
			}
			continue
		}
		for _, p := range wantedSpec(s).Ports {
			if usesPort(p) {
				if p.Protocol == "" {
					p.Protocol = api.PortProtocolTCP
				}
				wanted[portKey(p)] = true
			}
		}
	}
	return used, wanted
}

func portKey(p api.PortConfig) string { return fmt.Sprintf("%s/%d", p.Protocol, p.PublishedPort) }

// allocate fills in a service's endpoint: explicit ingress ports must be
// free, ports left at 0 get the lowest port of the dynamic range that is
// neither used nor wanted by number. It changes neither s nor the maps.
func allocate(s *api.Service, used, wanted map[string]bool) (*api.Endpoint, error) {
	spec := wantedSpec(s).Copy()
	ep := &api.Endpoint{Spec: spec}
	mine := map[string]bool{}
	taken := func(k string) bool { return used[k] || mine[k] }
	for _, p := range spec.Ports {
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
				p.PublishedPort = port
				if k := portKey(p); !taken(k) && !wanted[k] {
					break
				}
				p.PublishedPort = 0
			}
			if p.PublishedPort == 0 {
				return nil, fmt.Errorf("service %q: no free port left in %d-%d for target port %d", s.Spec.Name, DynamicPortStart, DynamicPortEnd, p.TargetPort)
			}
		} else if taken(portKey(p)) {
			return nil, fmt.Errorf("service %q: published port %s is already in use", s.Spec.Name, portKey(p))
		}
		mine[portKey(p)] = true
		ep.Ports = append(ep.Ports, p)
	}
	return ep, nil
}
