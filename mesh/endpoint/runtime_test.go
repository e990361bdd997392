package endpoint

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/dns"
	"github.com/apiary-io/apiary/mesh/gossip"
	"github.com/apiary-io/apiary/swarm/api"
)

var all = []string{"a", "b", "c"}

// A service with three tasks on two of three nodes is routed and named on
// every node; a task that turns unhealthy, then a node that goes down,
// leave every node; the last task withdrawn takes the service away.
func TestServiceRoutedOnEveryNode(t *testing.T) {
	c := newCluster(t, all...)
	c.setLocal("a", webTask("t1", 1, 31001, true), webTask("t2", 2, 31002, true))
	c.setLocal("b", webTask("t3", 3, 31003, true))

	c.waitFrontends(all, webFrontends, []want{{"a", 31001, true}, {"a", 31002, true}, {"b", 31003, true}})
	c.waitDNS(all, "web", []string{"web.1.t1", "web.2.t2", "web.3.t3"})
	for _, id := range all {
		n := c.nodes[id]
		svc, _ := n.records.Service("www")
		if svc.Name != "web" || !slices.Equal(svc.VIPs, []netip.Addr{webVIP}) {
			t.Errorf("node %s: alias www is %+v, want service web at %v", id, svc, webVIP)
		}
		task, ok := n.records.Task("web.3.t3")
		if !ok || task.Addr != c.nodes["b"].addr || task.HostPorts[80] != 31003 {
			t.Errorf("node %s: task web.3.t3 is %+v, want at %v port 31003", id, task, c.nodes["b"].addr)
		}
		s, _ := n.bal.Service(webFrontends(n)[1])
		if s.Service.Options != (balancer.Options{TrafficPolicy: balancer.TrafficCluster}) {
			t.Errorf("node %s: ingress options %+v, want cluster policy and no PROXY header", id, s.Service.Options)
		}
	}

	c.setLocal("a", webTask("t1", 1, 31001, true), webTask("t2", 2, 31002, false))
	c.waitFrontends(all, webFrontends, []want{{"a", 31001, true}, {"a", 31002, false}, {"b", 31003, true}})
	c.waitDNS(all, "web", []string{"web.1.t1", "web.3.t3"})

	c.down("b")
	c.waitFrontends([]string{"a", "c"}, webFrontends, []want{{"a", 31001, true}, {"a", 31002, false}})
	c.waitDNS([]string{"a", "c"}, "web", []string{"web.1.t1"})

	c.setLocal("a")
	c.waitFrontends([]string{"a", "c"}, webFrontends, nil)
	c.waitDNS([]string{"a", "c"}, "web", nil)
	c.waitDNS([]string{"a", "c"}, "www", nil)
}

// A port's traffic policy and PROXY protocol reach both of its frontends;
// a host-mode port and a dnsrr service get no frontend but their names.
func TestPortOptionsAndModes(t *testing.T) {
	c := newCluster(t, all...)
	task := webTask("t1", 1, 31001, true)
	task.Ports[0].ProxyProtocol = api.ProxyProtocolV2
	task.Ports[0].TrafficPolicy = api.TrafficPolicyLocal
	task.Ports = append(task.Ports,
		Port{PortConfig: api.PortConfig{Protocol: "udp", TargetPort: 53, PublishedPort: 5353, PublishMode: api.PublishModeIngress}, HostPort: 31053},
		Port{PortConfig: api.PortConfig{Protocol: "tcp", TargetPort: 22, PublishedPort: 2222, PublishMode: api.PublishModeHost}, HostPort: 2222})
	db := LocalTask{ID: "d1", ServiceID: "svc-db", ServiceName: "db", Slot: 1, DNSRR: true, Healthy: true,
		Ports: []Port{{PortConfig: api.PortConfig{Protocol: "tcp", TargetPort: 5432}, HostPort: 31432}}}
	c.setLocal("b", task, db)

	c.waitFrontends(all, webFrontends, []want{{"b", 31001, true}})
	c.waitDNS(all, "db", []string{"db.1.d1"})
	for _, id := range all {
		n := c.nodes[id]
		for _, fe := range webFrontends(n) {
			s, _ := n.bal.Service(fe)
			if want := (balancer.Options{TrafficPolicy: balancer.TrafficLocal, ProxyProtocol: balancer.ProxyV2}); s.Service.Options != want {
				t.Errorf("node %s %s: options %+v, want %+v", id, fe, s.Service.Options, want)
			}
		}
		var got []string
		for _, s := range n.bal.Services() {
			got = append(got, s.Service.Frontend.String())
		}
		want := []string{n.addr.String() + ":5353/udp", n.addr.String() + ":8080/tcp",
			"127.100.0.7:22/tcp", "127.100.0.7:53/udp", "127.100.0.7:80/tcp"}
		if !slices.Equal(got, want) {
			t.Errorf("node %s: frontends %v, want %v (nothing for the host-mode port's 2222, nothing for dnsrr db)", id, got, want)
		}
		if svc, _ := n.records.Service("db"); len(svc.VIPs) != 0 {
			t.Errorf("node %s: dnsrr db has VIPs %v", id, svc.VIPs)
		}
	}
}

// A frontend that cannot bind is retried; the others are applied at once.
func TestBindErrorRetried(t *testing.T) {
	c := newCluster(t, "a", "b")
	b := c.nodes["b"]
	ingress := webFrontends(b)[1]
	b.bal.FailBind(ingress, errors.New("address in use"))
	c.setLocal("a", webTask("t1", 1, 31001, true))

	c.waitFrontends([]string{"b"}, func(n *testNode) []balancer.Frontend { return webFrontends(n)[:1] }, []want{{"a", 31001, true}})
	if _, ok := b.bal.Service(ingress); ok {
		t.Fatalf("%s added though its bind fails", ingress)
	}
	b.bal.FailBind(ingress, nil)
	c.waitFrontends([]string{"b"}, webFrontends, []want{{"a", 31001, true}})
}

// An entry that does not decode (put past Admit: the in-memory gossip does
// not call it) never reaches the balancer; the others do.
func TestMalformedEntryIgnored(t *testing.T) {
	c := newCluster(t, "a", "b")
	rogue, err := c.hub.Join("rogue")
	if err != nil {
		t.Fatal(err)
	}
	if err := rogue.Put(GossipNetwork, GossipTable, "x1", []byte(`{"t":"x1","s":"svc-web","n":"web","a":"0.0.0.0","h":true,"p":[[80,22,0,0]]}`)); err != nil {
		t.Fatal(err)
	}
	c.setLocal("a", webTask("t1", 1, 31001, true))
	c.waitFrontends([]string{"a", "b"}, webFrontends, []want{{"a", 31001, true}})
}

// SetLocal puts only what changed, withdraws what is no longer listed, and
// publishes the valid tasks of a list with invalid ones, naming them.
func TestSetLocal(t *testing.T) {
	c := newCluster(t, "a")
	n := c.nodes["a"]
	c.setLocal("a", webTask("t1", 1, 31001, true), webTask("t2", 2, 31002, true))
	e1, _ := n.gossip.Get(GossipNetwork, GossipTable, "a", "t1")
	c.setLocal("a", webTask("t1", 1, 31001, true), webTask("t2", 2, 31002, true))
	if again, _ := n.gossip.Get(GossipNetwork, GossipTable, "a", "t1"); again.Version != e1.Version {
		t.Errorf("an unchanged task was put again: version %d, then %d", e1.Version, again.Version)
	}

	bad := webTask("t3", 3, 31003, true)
	bad.Ports[0].Protocol = "icmp"
	big := webTask("t4", 4, 31004, true)
	for i := range 12 {
		big.Networks = append(big.Networks, Network{ID: strings.Repeat("n", 25) + string(rune('a'+i)), Aliases: []string{strings.Repeat("x", 62) + string(rune('a'+i))}})
	}
	err := n.rt.SetLocal([]LocalTask{webTask("t1", 1, 31001, true), bad, big, webTask("t1", 1, 31001, true)})
	for _, frag := range []string{`task "t3": ports[0]: Protocol "icmp"`, "task t4: entry is", `task "t1" listed twice`} {
		if err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("SetLocal error %v, want it to say %q", err, frag)
		}
	}
	var keys []string
	n.gossip.Walk(GossipNetwork, GossipTable, func(e gossip.Entry) bool { keys = append(keys, e.Key); return true })
	if !slices.Equal(keys, []string{"t1"}) {
		t.Errorf("published %v, want [t1] (t2 withdrawn, t3 and t4 refused)", keys)
	}

	if err := n.rt.SetLocal(make([]LocalTask, MaxLocalTasks+1)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("SetLocal of %d tasks: %v, want refused", MaxLocalTasks+1, err)
	}
}

// Close withdraws the node's entries and removes what it applied.
func TestClose(t *testing.T) {
	c := newCluster(t, "a", "b")
	c.setLocal("a", webTask("t1", 1, 31001, true))
	c.waitFrontends([]string{"a", "b"}, webFrontends, []want{{"a", 31001, true}})
	a := c.nodes["a"]
	if err := a.rt.Close(); err != nil {
		t.Fatal(err)
	}
	if got := a.bal.Services(); len(got) != 0 {
		t.Errorf("closed runtime left frontends %v", got)
	}
	if _, ok := a.records.Service("web"); ok {
		t.Error("closed runtime left web in DNS")
	}
	c.waitFrontends([]string{"b"}, webFrontends, nil)
	if err := a.rt.SetLocal(nil); err == nil {
		t.Error("SetLocal after Close succeeded")
	}
}

func TestConfigRefused(t *testing.T) {
	hub := gossip.NewMemoryHub()
	g, _ := hub.Join("a")
	base := DefaultConfig()
	base.NodeID, base.NodeAddr, base.Gossip = "a", netip.MustParseAddr("127.0.0.1"), g
	base.Balancer = balancer.NewRecorder()
	base.DNS = dns.NewTable()
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no gossip", func(c *Config) { c.Gossip = nil }, "Config.Gossip"},
		{"no balancer", func(c *Config) { c.Balancer = nil }, "Config.Balancer"},
		{"no dns", func(c *Config) { c.DNS = nil }, "Config.DNS"},
		{"other node", func(c *Config) { c.NodeID = "b" }, "Config.NodeID"},
		{"no addr", func(c *Config) { c.NodeAddr = netip.Addr{} }, "Config.NodeAddr"},
		{"wildcard addr", func(c *Config) { c.NodeAddr = netip.IPv4Unspecified() }, "Config.NodeAddr"},
		{"retry", func(c *Config) { c.RetryInterval = 0 }, "Config.RetryInterval"},
	} {
		cfg := base
		tc.edit(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: New: %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
	rt, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// Update publishes what changed and withdraws what went, leaves unchanged
// tasks as they are, withdraws a published task whose change cannot be
// published, and keeps the node within MaxLocalTasks.
func TestUpdate(t *testing.T) {
	c := newCluster(t, "a", "b")
	n := c.nodes["a"]
	if err := n.rt.Update([]LocalTask{webTask("t1", 1, 31001, true), webTask("t2", 2, 31002, true)}, nil); err != nil {
		t.Fatal(err)
	}
	c.waitFrontends([]string{"a", "b"}, webFrontends, []want{{"a", 31001, true}, {"a", 31002, true}})
	e1, _ := n.gossip.Get(GossipNetwork, GossipTable, "a", "t1")

	// t1 again unchanged, t2 unhealthy, t3 new: only t2 and t3 are put.
	if err := n.rt.Update([]LocalTask{webTask("t1", 1, 31001, true), webTask("t2", 2, 31002, false), webTask("t3", 3, 31003, true)}, []string{"t-never-published"}); err != nil {
		t.Fatal(err)
	}
	if again, _ := n.gossip.Get(GossipNetwork, GossipTable, "a", "t1"); again.Version != e1.Version {
		t.Errorf("an unchanged task was put again: version %d, then %d", e1.Version, again.Version)
	}
	c.waitFrontends([]string{"a", "b"}, webFrontends, []want{{"a", 31001, true}, {"a", 31002, false}, {"a", 31003, true}})

	// t1 goes; t3 changes into something that cannot be published.
	bad := webTask("t3", 3, 31003, true)
	bad.Ports[0].Protocol = "icmp"
	err := n.rt.Update([]LocalTask{bad}, []string{"t1"})
	if err == nil || !strings.Contains(err.Error(), `task "t3": ports[0]: Protocol "icmp"`) {
		t.Errorf("Update error %v, want it to name t3's protocol", err)
	}
	c.waitFrontends([]string{"a", "b"}, webFrontends, []want{{"a", 31002, false}})

	// The bound: a node publishing MaxLocalTasks takes no new task, but
	// still changes and withdraws the ones it has.
	many := make([]LocalTask, 0, MaxLocalTasks)
	for i := range MaxLocalTasks - 1 {
		many = append(many, webTask(fmt.Sprintf("m%d", i), uint64(10+i), uint16(20000+i%10000), true))
	}
	if err := n.rt.Update(many, nil); err != nil {
		t.Fatal(err)
	}
	err = n.rt.Update([]LocalTask{webTask("over", 9, 31009, true), webTask("t2", 2, 31002, true)}, nil)
	if err == nil || !strings.Contains(err.Error(), "publish task over: this node already publishes 4096 tasks") {
		t.Errorf("Update beyond the bound: %v, want task over refused", err)
	}
	if e, ok := n.gossip.Get(GossipNetwork, GossipTable, "a", "over"); ok {
		t.Errorf("task over published beyond the bound: %+v", e)
	}
	if _, ok := n.gossip.Get(GossipNetwork, GossipTable, "a", "t2"); !ok {
		t.Error("t2 withdrawn")
	}
	if err := n.rt.Update(nil, []string{"m0"}); err != nil {
		t.Fatal(err)
	}
	if err := n.rt.Update([]LocalTask{webTask("over", 9, 31009, true)}, nil); err != nil {
		t.Errorf("Update after a withdrawal made room: %v", err)
	}

	if err := n.rt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.rt.Update([]LocalTask{webTask("t9", 9, 31009, true)}, nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Update after Close: %v, want refused", err)
	}
}
