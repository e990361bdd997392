package endpoint

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/balancer/proxyproto"
	"github.com/apiary-io/apiary/mesh/gossip"
	"github.com/apiary-io/apiary/swarm/api"
)

// Ingress on node A reaches a task on node C, through node A's real
// userspace proxy, with the client's address in a PROXY v2 header; so does
// the service's VIP on A. When the task turns unhealthy, A stops sending
// it connections.
func TestIngressOnAReachesTaskOnC(t *testing.T) {
	addrOf := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, last}) }
	c := &testCluster{t: t, hub: gossip.NewMemoryHub(), nodes: map[string]*testNode{}}
	proxy, err := balancer.New(balancer.Config{Logger: testutil.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	c.nodes["a"] = c.start("a", addrOf(1), proxy)
	c.nodes["b"] = c.start("b", addrOf(2), balancer.NewRecorder())
	c.nodes["c"] = c.start("c", addrOf(3), balancer.NewRecorder())

	task := startTask(t, addrOf(3))
	vip := netip.MustParseAddr("127.100.251.9") // far from other tests' VIPs
	target, published := freePort(t, vip), freePort(t, addrOf(1))
	lt := LocalTask{ID: "t1", ServiceID: "svc-web", ServiceName: "web", Slot: 1, HostVIP: vip, Healthy: true,
		Ports: []Port{{PortConfig: api.PortConfig{Protocol: "tcp", TargetPort: uint32(target), PublishedPort: uint32(published),
			PublishMode: api.PublishModeIngress, ProxyProtocol: api.ProxyProtocolV2}, HostPort: task.port}}}
	c.setLocal("c", lt)

	for _, fe := range []netip.AddrPort{netip.AddrPortFrom(addrOf(1), published), netip.AddrPortFrom(vip, target)} {
		var reply string
		testutil.EventuallyWhy(t, converge, "a connection to "+fe.String()+" reaching the task", func() (bool, string) {
			var err error
			reply, err = ask(fe)
			return err == nil, fmt.Sprint(err)
		})
		if !strings.HasPrefix(reply, "task on c, client 127.0.0.1:") {
			t.Errorf("%s answered %q, want the task on c seeing the client at 127.0.0.1", fe, reply)
		}
	}

	lt.Healthy = false
	c.setLocal("c", lt)
	ingress := netip.AddrPortFrom(addrOf(1), published)
	testutil.EventuallyWhy(t, converge, "node a refusing connections to an unhealthy task", func() (bool, string) {
		reply, err := ask(ingress)
		return err != nil, fmt.Sprintf("still answered %q", reply)
	})
}

// taskServer is a task listening on its node's address: it reads the PROXY
// v2 header and answers with the client address it carries.
type taskServer struct {
	port uint16
}

func startTask(t *testing.T, addr netip.Addr) taskServer {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				h, err := proxyproto.Read(conn)
				if err != nil {
					fmt.Fprintf(conn, "no PROXY header: %v\n", err)
					return
				}
				fmt.Fprintf(conn, "task on c, client %v\n", h.Source)
			})
		}
	})
	return taskServer{port: uint16(ln.Addr().(*net.TCPAddr).Port)}
}

// ask connects to addr and returns the first line it answers.
func ask(addr netip.AddrPort) (string, error) {
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return bufio.NewReader(conn).ReadString('\n')
}

// freePort is a TCP port on addr the system just handed out and took back.
func freePort(t *testing.T, addr netip.Addr) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}
