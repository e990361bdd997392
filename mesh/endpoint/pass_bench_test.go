package endpoint

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/dns"
	"github.com/apiary-io/apiary/mesh/gossip"
)

// BenchmarkPass is what one node does after one entry changed among
// 10,000 (1,000 services of 10 tasks on 100 nodes): read and decode the
// table (the unchanged entries from its cache), compute the state, apply
// the difference to a balancer and DNS records.
func BenchmarkPass(b *testing.B) {
	hub := gossip.NewMemoryHub()
	var nodes []*gossip.MemoryNode
	for i := range 100 {
		n, err := hub.Join(fmt.Sprintf("n%d", i))
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	put := func(s, i int, healthy bool) {
		lt := webTask(fmt.Sprintf("t%d-%d", s, i), uint64(i+1), uint16(30000+i), healthy)
		lt.ServiceID, lt.ServiceName = fmt.Sprintf("svc%d", s), fmt.Sprintf("web%d", s)
		lt.HostVIP = netip.AddrFrom4([4]byte{127, 100, byte(s >> 8), byte(s)})
		lt.Ports[0].PublishedPort = uint32(10000 + s)
		node := (s*10 + i) % 100
		r, err := lt.record(netip.AddrFrom4([4]byte{10, 0, 0, byte(node + 1)}))
		if err != nil {
			b.Fatal(err)
		}
		v, err := r.encode()
		if err != nil {
			b.Fatal(err)
		}
		if err := nodes[node].Put(GossipNetwork, GossipTable, lt.ID, v); err != nil {
			b.Fatal(err)
		}
	}
	for s := range 1000 {
		for i := range 10 {
			put(s, i, true)
		}
	}
	r := bareRuntime("n1", balancer.NewRecorder())
	nodes[1].Walk(GossipNetwork, GossipTable, func(e gossip.Entry) bool { r.put(e); return true })
	r.apply.apply(r.desired())
	owner := nodes[(7*10+3)%100]
	b.ReportAllocs()
	healthy := false
	for b.Loop() {
		put(7, 3, healthy)
		healthy = !healthy
		e, _ := owner.Get(GossipNetwork, GossipTable, owner.NodeID(), "t7-3")
		r.put(e)
		r.apply.apply(r.desired())
	}
}

// bareRuntime is a Runtime without its loop, for tests and benchmarks that
// drive put, drop and desired themselves.
func bareRuntime(self string, bal balancer.Balancer) *Runtime {
	return &Runtime{cfg: Config{NodeID: self, IngressAddr: ingress}, log: testutil.DiscardLogger(),
		apply:   newApplier(bal, dns.NewTable(), testutil.DiscardLogger()),
		entries: map[entryKey]owned{}, byService: map[string]map[entryKey]owned{},
		parts: map[string]*serviceState{}, dirty: map[string]bool{}}
}
