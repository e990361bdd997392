package endpoint

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/dns"
	"github.com/apiary-io/apiary/mesh/gossip"
	"github.com/apiary-io/apiary/swarm/api"
)

// converge bounds every wait for the nodes to agree; in memory they agree
// within a few milliseconds, the rest is slack for a loaded machine.
const converge = 10 * time.Second

var (
	webVIP = netip.MustParseAddr("127.100.0.7")
	dbVIP  = netip.MustParseAddr("127.100.0.8")
)

// testNode is one node of a testCluster: an in-memory gossip member, a
// recording balancer, DNS records and the runtime under test.
type testNode struct {
	id      string
	addr    netip.Addr
	gossip  *gossip.MemoryNode
	bal     *balancer.Recorder
	records *dns.Table
	rt      *Runtime
	down    bool
}

type testCluster struct {
	t     *testing.T
	hub   *gossip.MemoryHub
	nodes map[string]*testNode
}

// newCluster starts one node per ID, node i at 127.0.0.(10+i), serving
// ingress on that address.
func newCluster(t *testing.T, ids ...string) *testCluster {
	c := &testCluster{t: t, hub: gossip.NewMemoryHub(), nodes: map[string]*testNode{}}
	for i, id := range ids {
		addr := netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + i)})
		c.nodes[id] = c.start(id, addr, balancer.NewRecorder())
	}
	return c
}

func (c *testCluster) start(id string, addr netip.Addr, bal balancer.Balancer) *testNode {
	c.t.Helper()
	g, err := c.hub.Join(id)
	if err != nil {
		c.t.Fatal(err)
	}
	n := &testNode{id: id, addr: addr, gossip: g, records: dns.NewTable()}
	n.bal, _ = bal.(*balancer.Recorder)
	cfg := DefaultConfig()
	cfg.NodeID, cfg.NodeAddr, cfg.IngressAddr = id, addr, addr
	cfg.Gossip, cfg.Balancer, cfg.DNS = g, bal, n.records
	cfg.RetryInterval = 10 * time.Millisecond
	cfg.Logger = testutil.DiscardLogger()
	n.rt, err = New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		if !n.down {
			n.rt.Close()
			return
		}
		// The hub stopped the node's watcher, and a gossip watcher's stop
		// panics once its hub stopped it (mesh/gossip watch.go closes
		// quit twice), so stop the loop without Close.
		close(n.rt.quit)
		<-n.rt.done
	})
	return n
}

// down takes node id out of gossip as if it died: its runtime is not told.
func (c *testCluster) down(id string) {
	c.nodes[id].down = true
	c.hub.Down(id)
}

func (c *testCluster) setLocal(id string, tasks ...LocalTask) {
	c.t.Helper()
	if err := c.nodes[id].rt.SetLocal(tasks); err != nil {
		c.t.Fatal(err)
	}
}

// webTask is a task of service web (VIP webVIP, port 80 published on 8080
// in ingress mode, network alias www) listening on hostPort.
func webTask(id string, slot uint64, hostPort uint16, healthy bool) LocalTask {
	return LocalTask{
		ID: id, ServiceID: "svc-web", ServiceName: "web", Slot: slot, SpecVersion: 3,
		HostVIP: webVIP,
		Ports: []Port{{PortConfig: api.PortConfig{Name: "http", Protocol: "tcp", TargetPort: 80,
			PublishedPort: 8080, PublishMode: api.PublishModeIngress}, HostPort: hostPort}},
		Networks: []Network{{ID: "net-app", Aliases: []string{"www"}}},
		Healthy:  healthy,
	}
}

// want is one expected backend: the owner and host port of a task.
type want struct {
	owner   string
	port    uint16
	healthy bool
}

// backendsOn is what node self's balancer should hold for ws.
func (c *testCluster) backendsOn(self string, ws []want) []balancer.Backend {
	var out []balancer.Backend
	for _, w := range ws {
		out = append(out, balancer.Backend{Addr: netip.AddrPortFrom(c.nodes[w.owner].addr, w.port),
			NodeID: w.owner, Healthy: w.healthy, Local: w.owner == self})
	}
	slices.SortFunc(out, func(a, b balancer.Backend) int { return a.Addr.Compare(b.Addr) })
	return out
}

// waitFrontends waits until every node in on holds, at the frontends
// made by frontendsOf, exactly the backends ws (and no frontend when ws is
// nil).
func (c *testCluster) waitFrontends(on []string, frontendsOf func(n *testNode) []balancer.Frontend, ws []want) {
	c.t.Helper()
	testutil.EventuallyWhy(c.t, converge, "every node's frontends", func() (bool, string) {
		for _, id := range on {
			n := c.nodes[id]
			for _, fe := range frontendsOf(n) {
				s, ok := n.bal.Service(fe)
				if ws == nil {
					if ok {
						return false, fmt.Sprintf("node %s still has %s", id, fe)
					}
					continue
				}
				if !ok {
					return false, fmt.Sprintf("node %s has no %s", id, fe)
				}
				if exp := c.backendsOn(id, ws); !slices.Equal(s.Backends, exp) {
					return false, fmt.Sprintf("node %s %s: backends %v, want %v", id, fe, s.Backends, exp)
				}
			}
		}
		return true, ""
	})
}

// webFrontends are service web's frontends on n: the VIP's and ingress.
func webFrontends(n *testNode) []balancer.Frontend {
	return []balancer.Frontend{
		{Addr: netip.AddrPortFrom(webVIP, 80), Protocol: balancer.TCP},
		{Addr: netip.AddrPortFrom(n.addr, 8080), Protocol: balancer.TCP},
	}
}

// waitDNS waits until every node in on answers service name with the
// tasks named (none: the name is unknown when tasks is nil).
func (c *testCluster) waitDNS(on []string, name string, tasks []string) {
	c.t.Helper()
	testutil.EventuallyWhy(c.t, converge, "every node's DNS records", func() (bool, string) {
		for _, id := range on {
			svc, ok := c.nodes[id].records.Service(name)
			if tasks == nil {
				if ok {
					return false, fmt.Sprintf("node %s still knows %s", id, name)
				}
				continue
			}
			if !ok {
				return false, fmt.Sprintf("node %s does not know %s", id, name)
			}
			var got []string
			for _, t := range svc.Tasks {
				got = append(got, t.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tasks) {
				return false, fmt.Sprintf("node %s: %s has tasks %v, want %v", id, name, got, tasks)
			}
		}
		return true, ""
	})
}
