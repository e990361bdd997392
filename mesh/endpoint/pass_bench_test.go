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
// 10,000 or more: read and decode the table (the unchanged entries from
// its cache), compute the state, apply the difference to a balancer and DNS
// records. "services=1000" is 1,000 services of 10 tasks on 100 nodes;
// "services=1" one service of 12,000 tasks on 3 nodes (4,000 each, about
// gossip's bound per node), where a pass must not grow as the square of
// the service's tasks.
func BenchmarkPass(b *testing.B) {
	for _, c := range []struct{ services, tasks, nodes int }{{1000, 10, 100}, {1, 12_000, 3}} {
		b.Run(fmt.Sprintf("services=%d/tasks=%d", c.services, c.tasks), func(b *testing.B) {
			benchPass(b, c.services, c.tasks, c.nodes)
		})
	}
}

func benchPass(b *testing.B, services, tasks, nodeCount int) {
	hub := gossip.NewMemoryHub()
	var nodes []*gossip.MemoryNode
	for i := range nodeCount {
		n, err := hub.Join(fmt.Sprintf("n%d", i))
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	nodeOf := func(s, i int) int { return (s*tasks + i) % nodeCount }
	put := func(s, i int, healthy bool) {
		lt := webTask(fmt.Sprintf("t%d-%d", s, i), uint64(i+1), uint16(20000+i/nodeCount), healthy)
		lt.ServiceID, lt.ServiceName = fmt.Sprintf("svc%d", s), fmt.Sprintf("web%d", s)
		lt.HostVIP = netip.AddrFrom4([4]byte{127, 100, byte(s >> 8), byte(s)})
		lt.Ports[0].PublishedPort = uint32(10000 + s)
		node := nodeOf(s, i)
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
	for s := range services {
		for i := range tasks {
			put(s, i, true)
		}
	}
	r := bareRuntime("n1", balancer.NewRecorder())
	nodes[1].Walk(GossipNetwork, GossipTable, func(e gossip.Entry) bool { r.put(e); return true })
	r.apply.apply(r.desired())
	s, i := services/2, tasks/2+1
	owner := nodes[nodeOf(s, i)]
	key := fmt.Sprintf("t%d-%d", s, i)
	b.ReportAllocs()
	healthy := false
	for b.Loop() {
		put(s, i, healthy)
		healthy = !healthy
		e, _ := owner.Get(GossipNetwork, GossipTable, owner.NodeID(), key)
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
