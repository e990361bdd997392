// Package balancertest is the contract every balancer.Balancer meets: the
// userspace Proxy, the in-memory Recorder, and the kernel data paths to
// come. It checks the state a balancer keeps and the errors it gives, not
// how it moves packets (the implementations' own tests do that).
package balancertest

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/mesh/balancer"
)

// Run runs the contract against balancers made by newBalancer, one per
// subtest; Run closes them.
func Run(t *testing.T, newBalancer func(t *testing.T) balancer.Balancer) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, b balancer.Balancer)
	}{
		{"AddUpdateRemove", testAddUpdateRemove},
		{"BadServicesRefused", testBadServicesRefused},
		{"BadBackendsRefusedAndNothingChanged", testBadBackendsRefused},
		{"UnknownService", testUnknownService},
		{"Closed", testClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBalancer(t)
			t.Cleanup(func() { b.Close() })
			tc.fn(t, b)
		})
	}
}

// FreeFrontend returns a frontend on 127.0.0.1 at a port the system just
// handed out and took back, so a balancer that listens can listen there.
func FreeFrontend(t testing.TB, proto balancer.Protocol) balancer.Frontend {
	t.Helper()
	var addr net.Addr
	if proto == balancer.UDP {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr()
		pc.Close()
	} else {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr()
		ln.Close()
	}
	return balancer.Frontend{Addr: netip.MustParseAddrPort(addr.String()), Protocol: proto}
}

func backends(addrs ...string) []balancer.Backend {
	var out []balancer.Backend
	for i, a := range addrs {
		out = append(out, balancer.Backend{Addr: netip.MustParseAddrPort(a), NodeID: "node" + a, Healthy: i%2 == 0})
	}
	return out
}

func find(b balancer.Balancer, fe balancer.Frontend) (balancer.ServiceStats, bool) {
	for _, s := range b.Stats() {
		if s.Frontend == fe {
			return s, true
		}
	}
	return balancer.ServiceStats{}, false
}

func listed(t *testing.T, b balancer.Balancer, fe balancer.Frontend, want []balancer.Backend) {
	t.Helper()
	s, ok := find(b, fe)
	if !ok {
		t.Fatalf("Stats does not list %s", fe)
	}
	var got []balancer.Backend
	for _, bs := range s.Backends {
		got = append(got, balancer.Backend{Addr: bs.Addr, NodeID: bs.NodeID, Healthy: bs.Healthy})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("backends of %s: %+v, want %+v", fe, got, want)
	}
}

func testAddUpdateRemove(t *testing.T, b balancer.Balancer) {
	tcp, udp := FreeFrontend(t, balancer.TCP), FreeFrontend(t, balancer.UDP)
	for _, fe := range []balancer.Frontend{tcp, udp} {
		if err := b.UpsertService(balancer.Service{Frontend: fe}); err != nil {
			t.Fatalf("adding %s: %v", fe, err)
		}
		listed(t, b, fe, nil)
	}
	want := backends("127.0.0.1:1001", "127.0.0.1:1002")
	if err := b.SetBackends(tcp, want); err != nil {
		t.Fatal(err)
	}
	listed(t, b, tcp, want)
	// An update changes the options and keeps the backends.
	if err := b.UpsertService(balancer.Service{Frontend: tcp, Options: balancer.Options{
		Scheduler: balancer.LeastConnections, TrafficPolicy: balancer.TrafficLocal,
		ProxyProtocol: balancer.ProxyV2, MaxConnections: 10}}); err != nil {
		t.Fatal(err)
	}
	listed(t, b, tcp, want)
	first, second := tcp, udp // sorted by address, then protocol
	if udp.Addr.Compare(tcp.Addr) < 0 {
		first, second = udp, tcp
	}
	if got := b.Stats(); len(got) != 2 || got[0].Frontend != first || got[1].Frontend != second {
		t.Fatalf("Stats lists %+v, want %s then %s", got, first, second)
	}
	if err := b.SetBackends(tcp, nil); err != nil {
		t.Fatal(err)
	}
	listed(t, b, tcp, nil)
	if err := b.RemoveService(tcp); err != nil {
		t.Fatal(err)
	}
	if _, ok := find(b, tcp); ok {
		t.Fatalf("Stats still lists removed %s", tcp)
	}
	// And it can come back.
	if err := b.UpsertService(balancer.Service{Frontend: tcp}); err != nil {
		t.Fatalf("adding %s again: %v", tcp, err)
	}
	listed(t, b, tcp, nil)
}

func testBadServicesRefused(t *testing.T, b balancer.Balancer) {
	fe := FreeFrontend(t, balancer.TCP)
	ufe := FreeFrontend(t, balancer.UDP)
	for _, tc := range []struct {
		svc  balancer.Service
		want string
	}{
		{balancer.Service{}, "Frontend.Addr: not set"},
		{balancer.Service{Frontend: balancer.Frontend{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Protocol: balancer.TCP}}, "port 0"},
		{balancer.Service{Frontend: balancer.Frontend{Addr: fe.Addr, Protocol: "sctp"}}, `Frontend.Protocol "sctp"`},
		{balancer.Service{Frontend: balancer.Frontend{Addr: netip.MustParseAddrPort("[::ffff:127.0.0.1]:80"), Protocol: balancer.TCP}}, "IPv4-mapped"},
		{balancer.Service{Frontend: fe, Options: balancer.Options{Scheduler: "random"}}, `Options.Scheduler "random"`},
		{balancer.Service{Frontend: fe, Options: balancer.Options{TrafficPolicy: "nearest"}}, `Options.TrafficPolicy "nearest"`},
		{balancer.Service{Frontend: fe, Options: balancer.Options{ProxyProtocol: "v1"}}, `Options.ProxyProtocol "v1"`},
		{balancer.Service{Frontend: ufe, Options: balancer.Options{ProxyProtocol: balancer.ProxyV2}}, "TCP services only"},
		{balancer.Service{Frontend: fe, Options: balancer.Options{MaxConnections: -1}}, "Options.MaxConnections -1"},
		{balancer.Service{Frontend: fe, Options: balancer.Options{MaxConnections: balancer.MaxConnectionsLimit + 1}}, "Options.MaxConnections"},
	} {
		err := b.UpsertService(tc.svc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UpsertService(%+v) = %v, want an error containing %q", tc.svc, err, tc.want)
		}
	}
	if got := b.Stats(); len(got) != 0 {
		t.Fatalf("refused services were added: %+v", got)
	}
}

func testBadBackendsRefused(t *testing.T, b balancer.Balancer) {
	fe := FreeFrontend(t, balancer.TCP)
	if err := b.UpsertService(balancer.Service{Frontend: fe}); err != nil {
		t.Fatal(err)
	}
	good := backends("127.0.0.1:2001")
	if err := b.SetBackends(fe, good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		list []balancer.Backend
		want string
	}{
		{[]balancer.Backend{{}}, "backends[0].Addr: not set"},
		{backends("127.0.0.1:1", "0.0.0.0:80"), "backends[1].Addr 0.0.0.0:80: unspecified"},
		{backends("127.0.0.1:0"), "backends[0].Addr 127.0.0.1:0: port 0"},
		{backends("127.0.0.1:5", "127.0.0.1:5"), "backends[1].Addr 127.0.0.1:5: listed twice"},
		{[]balancer.Backend{{Addr: netip.MustParseAddrPort("127.0.0.1:5"), NodeID: strings.Repeat("n", balancer.MaxNodeIDLen+1)}}, "backends[0].NodeID"},
		{make([]balancer.Backend, balancer.MaxBackends+1), "more than the 100000 allowed"},
	} {
		err := b.SetBackends(fe, tc.list)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fe.String()) {
			t.Errorf("SetBackends(%d backends) = %v, want an error naming %s and containing %q", len(tc.list), err, fe, tc.want)
		}
	}
	listed(t, b, fe, good)
}

func testUnknownService(t *testing.T, b balancer.Balancer) {
	fe := FreeFrontend(t, balancer.TCP)
	for name, err := range map[string]error{
		"SetBackends":   b.SetBackends(fe, nil),
		"RemoveService": b.RemoveService(fe),
	} {
		if !errors.Is(err, balancer.ErrUnknownService) || !strings.Contains(err.Error(), fe.String()) {
			t.Errorf("%s of an unknown service: %v, want ErrUnknownService naming %s", name, err, fe)
		}
	}
}

func testClosed(t *testing.T, b balancer.Balancer) {
	fe := FreeFrontend(t, balancer.TCP)
	if err := b.UpsertService(balancer.Service{Frontend: fe}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.Stats(); len(got) != 0 {
		t.Fatalf("Stats after Close: %+v, want none", got)
	}
	for name, err := range map[string]error{
		"UpsertService": b.UpsertService(balancer.Service{Frontend: fe}),
		"SetBackends":   b.SetBackends(fe, nil),
		"RemoveService": b.RemoveService(fe),
		"Close":         b.Close(),
	} {
		if !errors.Is(err, balancer.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
