package endpoint

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/dns"
	"github.com/apiary-io/apiary/swarm/api"
)

var (
	addrA   = netip.MustParseAddr("127.0.0.10")
	addrB   = netip.MustParseAddr("127.0.0.11")
	ingress = netip.MustParseAddr("192.0.2.1")
)

// ownedBy makes the decoded entry of t published by owner at addr.
func ownedBy(t *testing.T, owner string, addr netip.Addr, lt LocalTask) owned {
	t.Helper()
	r, err := lt.record(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.validate(); err != nil {
		t.Fatal(err)
	}
	return owned{owner: owner, rec: r}
}

func TestDesiredThreeTasksOnTwoNodes(t *testing.T) {
	entries := []owned{
		ownedBy(t, "a", addrA, webTask("t1", 1, 31001, true)),
		ownedBy(t, "a", addrA, webTask("t2", 2, 31002, false)),
		ownedBy(t, "b", addrB, webTask("t3", 3, 31003, true)),
	}
	got := desired("b", ingress, entries)

	backends := []balancer.Backend{
		{Addr: netip.MustParseAddrPort("127.0.0.10:31001"), NodeID: "a", Healthy: true},
		{Addr: netip.MustParseAddrPort("127.0.0.10:31002"), NodeID: "a"},
		{Addr: netip.MustParseAddrPort("127.0.0.11:31003"), NodeID: "b", Healthy: true, Local: true},
	}
	opts := balancer.Options{TrafficPolicy: balancer.TrafficCluster}
	vipFE := balancer.Frontend{Addr: netip.AddrPortFrom(webVIP, 80), Protocol: balancer.TCP}
	inFE := balancer.Frontend{Addr: netip.AddrPortFrom(ingress, 8080), Protocol: balancer.TCP}
	want := state{
		Frontends: map[balancer.Frontend]frontend{
			vipFE: {Service: balancer.Service{Frontend: vipFE, Options: opts}, Backends: backends},
			inFE:  {Service: balancer.Service{Frontend: inFE, Options: opts}, Backends: backends},
		},
		Services: map[string]*dns.Service{"web": {
			Name: "web", Aliases: []string{"www"}, VIPs: []netip.Addr{webVIP},
			Ports: []dns.Port{{Name: "http", Protocol: "tcp", Target: 80}},
			Tasks: []dns.Task{
				{Name: "web.1.t1", Addr: addrA, HostPorts: map[uint16]uint16{80: 31001}},
				{Name: "web.3.t3", Addr: addrB, HostPorts: map[uint16]uint16{80: 31003}},
			},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("desired:\n got %+v\nwant %+v", got, want)
	}

	// No ingress address: the VIP only.
	if got := desired("b", netip.Addr{}, entries); len(got.Frontends) != 1 || got.Frontends[vipFE].Backends == nil {
		t.Errorf("without an ingress address: frontends %v, want the VIP's only", got.Frontends)
	}
}

// The same entries in any order give the same state.
func TestDesiredIgnoresOrder(t *testing.T) {
	db := LocalTask{ID: "d1", ServiceID: "svc-db", ServiceName: "db", Slot: 1, HostVIP: dbVIP, Healthy: true,
		Ports:    []Port{{PortConfig: api.PortConfig{Protocol: "tcp", TargetPort: 5432}, HostPort: 31432}},
		Networks: []Network{{ID: "net-app", Aliases: []string{"postgres", "sql"}}}}
	entries := []owned{
		ownedBy(t, "a", addrA, webTask("t1", 1, 31001, true)),
		ownedBy(t, "b", addrB, webTask("t2", 2, 31002, true)),
		ownedBy(t, "b", addrB, webTask("t3", 3, 31003, false)),
		ownedBy(t, "a", addrA, db),
	}
	want := desired("a", ingress, entries)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		shuffled := slices.Clone(entries)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := desired("a", ingress, shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v changed the state:\n got %+v\nwant %+v", shuffled, got, want)
		}
	}
}

// During an update the newest spec version says what the service's ports
// are; a task of the old version is a backend only for the ports it has.
func TestDesiredNewestVersionWins(t *testing.T) {
	old := webTask("t1", 1, 31001, true)
	old.SpecVersion = 3
	cur := webTask("t2", 1, 31002, true)
	cur.SpecVersion = 4
	cur.Ports[0].PublishedPort = 9090
	cur.Ports = append(cur.Ports, Port{PortConfig: api.PortConfig{Protocol: "tcp", TargetPort: 443}, HostPort: 31443})
	got := desired("a", ingress, []owned{ownedBy(t, "b", addrB, cur), ownedBy(t, "a", addrA, old)})

	var fes []string
	for fe, f := range got.Frontends {
		fes = append(fes, fe.String())
		wantN := 2
		if fe.Addr.Port() == 443 {
			wantN = 1
		}
		if len(f.Backends) != wantN {
			t.Errorf("%s: backends %v, want %d", fe, f.Backends, wantN)
		}
	}
	slices.Sort(fes)
	if want := []string{"127.100.0.7:443/tcp", "127.100.0.7:80/tcp", "192.0.2.1:9090/tcp"}; !slices.Equal(fes, want) {
		t.Errorf("frontends %v, want %v (version 4's ports)", fes, want)
	}
}

// Two services claiming one frontend or name: the lower service ID keeps
// it. Two entries naming one backend address make one backend.
func TestDesiredConflicts(t *testing.T) {
	a := webTask("t1", 1, 31001, true)
	b := webTask("t2", 1, 31001, false) // a stale entry on the same port
	other := webTask("t9", 1, 31009, true)
	other.ServiceID = "svc-aaa" // sorts first: keeps the VIP, ingress port and name
	got := desired("a", ingress, []owned{ownedBy(t, "a", addrA, a), ownedBy(t, "a", addrA, b), ownedBy(t, "b", addrB, other)})
	for fe, f := range got.Frontends {
		if len(f.Backends) != 1 || f.Backends[0].NodeID != "b" {
			t.Errorf("%s: backends %v, want svc-aaa's only", fe, f.Backends)
		}
	}
	if svc := got.Services["web"]; len(svc.Tasks) != 1 || svc.Tasks[0].Name != "web.1.t9" {
		t.Errorf("web is %+v, want svc-aaa's", svc)
	}

	got = desired("a", ingress, []owned{ownedBy(t, "a", addrA, b), ownedBy(t, "a", addrA, a)})
	for fe, f := range got.Frontends {
		want := []balancer.Backend{{Addr: netip.AddrPortFrom(addrA, 31001), NodeID: "a", Healthy: true, Local: true}}
		if !slices.Equal(f.Backends, want) {
			t.Errorf("%s: backends %v, want the one address, healthy: %v", fe, f.Backends, want)
		}
	}
}

// A global service's task (slot 0) is named by its node.
func TestTaskName(t *testing.T) {
	if got := TaskName("Web", 2, "n1", "abc"); got != "web.2.abc" {
		t.Errorf("replicated: %q", got)
	}
	if got := TaskName("agent", 0, "node7", "abc"); got != "agent.node7.abc" {
		t.Errorf("global: %q", got)
	}
}

// BenchmarkDesired is one recomputation for 1,000 services of 10 tasks on
// 100 nodes (10,000 entries, near gossip.MaxEntries): the work after every
// burst of changes.
func BenchmarkDesired(b *testing.B) {
	var entries []owned
	for s := range 1000 {
		for i := range 10 {
			lt := webTask(fmt.Sprintf("t%d-%d", s, i), uint64(i+1), uint16(30000+i), true)
			lt.ServiceID, lt.ServiceName = fmt.Sprintf("svc%d", s), fmt.Sprintf("web%d", s)
			lt.HostVIP = netip.AddrFrom4([4]byte{127, 100, byte(s >> 8), byte(s)})
			node := (s*10 + i) % 100
			r, err := lt.record(netip.AddrFrom4([4]byte{10, 0, 0, byte(node + 1)}))
			if err != nil {
				b.Fatal(err)
			}
			entries = append(entries, owned{owner: fmt.Sprintf("n%d", node), rec: r})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		desired("n1", ingress, entries)
	}
}
