package endpoint

import (
	"net/netip"
	"testing"

	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/swarm/api"
)

// A node in loopback mode (outside Linux) serves each VIP port on
// 127.0.0.1 and its loopback VIP port, and its DNS answers the service
// with 127.0.0.1 and that port in SRV records; ingress is the same in both
// modes. A port the managers gave no loopback VIP port gets no VIP
// frontend there.
func TestLoopbackVIP(t *testing.T) {
	lt := webTask("t1", 1, 31001, true)
	lt.Ports[0].LoopbackPort = api.LoopbackVIPPortStart
	entries := []owned{ownedBy(t, "a", addrA, lt)}
	ingress := netip.MustParseAddr("127.0.0.20")

	fe := func(addr netip.Addr, port uint16) balancer.Frontend {
		return balancer.Frontend{Addr: netip.AddrPortFrom(addr, port), Protocol: balancer.TCP}
	}
	for _, tc := range []struct {
		loopback bool
		vip      balancer.Frontend
		dnsVIP   netip.Addr
		srvPort  uint16
	}{
		{false, fe(webVIP, 80), webVIP, 0},
		{true, fe(loopbackAddr, api.LoopbackVIPPortStart), loopbackAddr, api.LoopbackVIPPortStart},
	} {
		st := desiredIn(view{self: "b", ingress: ingress, loopback: tc.loopback}, entries)
		if len(st.Frontends) != 2 {
			t.Fatalf("loopback %v: frontends %v, want the VIP's and ingress", tc.loopback, st.Frontends)
		}
		if _, ok := st.Frontends[tc.vip]; !ok {
			t.Errorf("loopback %v: no VIP frontend %v in %v", tc.loopback, tc.vip, st.Frontends)
		}
		if _, ok := st.Frontends[fe(ingress, 8080)]; !ok {
			t.Errorf("loopback %v: no ingress frontend in %v", tc.loopback, st.Frontends)
		}
		svc := st.Services["web"]
		if len(svc.VIPs) != 1 || svc.VIPs[0] != tc.dnsVIP || svc.Ports[0].VIPPort != tc.srvPort {
			t.Errorf("loopback %v: DNS service %+v, want VIP %v, VIP port %d", tc.loopback, svc, tc.dnsVIP, tc.srvPort)
		}
	}

	none := webTask("t1", 1, 31001, true)
	st := desiredIn(view{self: "b", ingress: ingress, loopback: true}, []owned{ownedBy(t, "a", addrA, none)})
	if len(st.Frontends) != 1 {
		t.Errorf("a port without a loopback VIP port: frontends %v, want ingress alone", st.Frontends)
	}
}

// A node that may not listen below port 1024 (not root) serves a VIP port
// 80 on the VIP's loopback VIP port instead, and says so in SRV records;
// ports it may listen on are served as they are.
func TestVIPPortsBelowTheUnprivilegedStart(t *testing.T) {
	lt := webTask("t1", 1, 31001, true)
	lt.Ports[0].LoopbackPort = api.LoopbackVIPPortStart
	high := Port{PortConfig: api.PortConfig{Name: "admin", Protocol: "tcp", TargetPort: 9000}, HostPort: 31002, LoopbackPort: api.LoopbackVIPPortStart + 1}
	lt.Ports = append(lt.Ports, high)
	st := desiredIn(view{self: "b", privBelow: 1024}, []owned{ownedBy(t, "a", addrA, lt)})
	for _, fe := range []balancer.Frontend{
		{Addr: netip.AddrPortFrom(webVIP, api.LoopbackVIPPortStart), Protocol: balancer.TCP},
		{Addr: netip.AddrPortFrom(webVIP, 9000), Protocol: balancer.TCP},
	} {
		if _, ok := st.Frontends[fe]; !ok {
			t.Errorf("no frontend %v in %v", fe, st.Frontends)
		}
	}
	if len(st.Frontends) != 2 {
		t.Errorf("frontends %v, want the two above", st.Frontends)
	}
	svc := st.Services["web"]
	if svc.VIPs[0] != webVIP || svc.Ports[0].VIPPort != api.LoopbackVIPPortStart || svc.Ports[1].VIPPort != 0 {
		t.Errorf("DNS service %+v: want the VIP, port 80 at %d, port 9000 as it is", svc, api.LoopbackVIPPortStart)
	}
}
