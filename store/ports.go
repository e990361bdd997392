package store

import (
	"fmt"
	"strconv"

	"github.com/apiary-io/apiary/swarm/api"
)

// servicePorts indexes the ingress ports a service holds (its allocated
// endpoint's) or, before its endpoint is allocated, those its spec asks for
// by number, and its loopback VIP ports (api.Endpoint.LoopbackPorts), which
// share the key space: who holds a port is then a lookup, not a scan of
// every service, on each create and update.
func servicePorts(o any, add func(string)) {
	s := o.(*api.Service)
	if holdsPorts(s) {
		for _, k := range heldPorts(s.Endpoint) {
			add(k)
		}
		return
	}
	if s.Spec.EndpointSpec != nil {
		for _, p := range s.Spec.EndpointSpec.Ports {
			if p.PublishMode != api.PublishModeHost && p.PublishedPort != 0 {
				add(PortKey(p.Protocol, p.PublishedPort))
			}
		}
	}
}

// heldPorts are the keys of the ports an allocated endpoint holds: its
// ingress ports and its loopback VIP ports.
func heldPorts(e *api.Endpoint) []string {
	var out []string
	for _, p := range e.Ports {
		if p.PublishMode != api.PublishModeHost && p.PublishedPort != 0 {
			out = append(out, PortKey(p.Protocol, p.PublishedPort))
		}
	}
	for _, l := range e.LoopbackPorts {
		out = append(out, PortKey(l.Protocol, l.Port))
	}
	return out
}

// PortKey names a published port as the port index holds it ("tcp/8080");
// no protocol is TCP.
func PortKey(protocol string, port uint32) string {
	if protocol == "" {
		protocol = api.PortProtocolTCP
	}
	return protocol + "/" + strconv.FormatUint(uint64(port), 10)
}

// holdsPorts reports whether a service holds ingress ports: its endpoint
// is allocated with some.
func holdsPorts(s *api.Service) bool {
	return s.Endpoint != nil && (len(s.Endpoint.Ports) > 0 || len(s.Endpoint.LoopbackPorts) > 0)
}

// PortTakenError is the error of a write whose service holds a published
// port that another service came to hold first: two writers chose the
// same port on states that did not yet show the other's. It is a conflict
// (errors.Is ErrConflict): a writer that tries again on the new state sees
// the port taken.
type PortTakenError struct {
	Service, Port, Holder string
}

func (e *PortTakenError) Error() string {
	return fmt.Sprintf("service %s: published port %s is held by service %s: %v", e.Service, e.Port, e.Holder, ErrConflict)
}

func (e *PortTakenError) Unwrap() error { return ErrConflict }

// checkPortsHeld refuses a transaction after which two services hold the
// same ingress port. It reads the port index as the transaction leaves it,
// for the services it wrote that hold ports: names are unique by the same
// kind of check (checkNameWritten).
func (w *dbWriter) checkPortsHeld(changes []change) error {
	ki := kindByName[api.KindService]
	idx := ki.index(indexPort)
	for _, c := range changes {
		s, ok := c.obj.(*api.Service)
		if !ok || !holdsPorts(s) {
			continue
		}
		for _, k := range heldPorts(s.Endpoint) {
			var holder string
			w.find(ki, selector{index: idx, key: ikey{s: k}}, func(o api.Object) bool {
				if other := o.(*api.Service); other.ID != s.ID && holdsPorts(other) {
					holder = other.Spec.Name
					return false
				}
				return true
			})
			if holder != "" {
				return &PortTakenError{Service: s.Spec.Name, Port: k, Holder: holder}
			}
		}
	}
	return nil
}
