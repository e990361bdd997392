package allocator_test

import (
	"testing"
	"testing/synctest"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/allocator"
	"github.com/apiary-io/apiary/swarm/api"
)

// Every vip-mode service gets a loopback VIP port per distinct (protocol,
// target port), unique in the cluster and kept across reallocations; an
// ingress port cannot take one, nor one an ingress port; dnsrr services
// get none.
func TestLoopbackVIPPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		udp := ingress(53, 0)
		udp.Protocol = api.PortProtocolUDP
		dnsrr := service("rr", ports(ingress(8080, 0)))
		dnsrr.Spec.EndpointSpec.Mode = api.ResolutionModeDNSRR
		h := run(t, create(service("a", ports(ingress(80, 0), udp, ingress(80, 0))), service("b", ports(ingress(80, 0))), dnsrr))
		h.sync()
		a, b := h.waitAllocated("a"), h.waitAllocated("b")
		want := []api.LoopbackPort{
			{Protocol: api.PortProtocolTCP, TargetPort: 80, Port: api.LoopbackVIPPortStart},
			{Protocol: api.PortProtocolUDP, TargetPort: 53, Port: api.LoopbackVIPPortStart},
		}
		if len(a.Endpoint.LoopbackPorts) != 2 || a.Endpoint.LoopbackPorts[0] != want[0] || a.Endpoint.LoopbackPorts[1] != want[1] {
			t.Fatalf("a's loopback ports %+v, want %+v (80/tcp listed twice takes one)", a.Endpoint.LoopbackPorts, want)
		}
		if got := b.Endpoint.LoopbackPorts; len(got) != 1 || got[0].Port == api.LoopbackVIPPortStart {
			t.Fatalf("b's loopback ports %+v: want one, not a's", got)
		}
		if rr := h.waitAllocated("rr"); len(rr.Endpoint.LoopbackPorts) != 0 {
			t.Errorf("a dnsrr service got loopback ports %+v", rr.Endpoint.LoopbackPorts)
		}

		// An ingress port asked for by number cannot take a held one.
		var err error
		h.s.View(func(tx store.ReadTx) {
			_, err = allocator.Endpoint(tx, service("c", ports(ingress(80, api.LoopbackVIPPortStart))))
		})
		if err == nil {
			t.Errorf("an ingress port took a's loopback VIP port %d", api.LoopbackVIPPortStart)
		}
		// Reallocated (a new port), a keeps its loopback ports.
		h.update(func(tx store.Tx) error {
			s := tx.GetService("a")
			s.Spec.EndpointSpec.Ports = append(s.Spec.EndpointSpec.Ports, ingress(81, 0))
			return tx.UpdateService(s)
		})
		h.sync()
		again := h.waitAllocated("a")
		if lp := again.Endpoint.LoopbackPorts; len(lp) != 3 || lp[0] != want[0] || lp[1] != want[1] {
			t.Errorf("after an update a's loopback ports are %+v, want %+v and one more", lp, want)
		}
	})
}
