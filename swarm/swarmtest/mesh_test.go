package swarmtest_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// The routing mesh on the host data path, end to end through the nodes:
// the managers hand out gossip keys and peers, every node gossips its
// tasks' backends, and then a service's published port answers on every
// node (including those that run none of its tasks) and reaches each
// task, and every node's DNS server resolves the service to its VIP and
// tasks.<service> to the nodes that run it. The fake executor runs no
// process: the test listens where each task was told to (its host port on
// its node's address), as the task would.
func TestMeshIngressOnEveryNode(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 2, Configure: meshOn("")})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	cl := c.Client(c.Leader())
	// A target port of its own: the VIP's address range is the machine's,
	// shared with any other test cluster running now.
	target := uint32(20000 + rand.IntN(9000))
	svc := globalWeb(ctx, t, cl, api.PortConfig{TargetPort: target})
	if len(svc.Endpoint.Ports) != 1 || svc.Endpoint.Ports[0].PublishedPort == 0 || svc.Endpoint.HostVIP == "" {
		t.Fatalf("web's endpoint: %+v", svc.Endpoint)
	}
	published := svc.Endpoint.Ports[0].PublishedPort

	tasks := serveAsTasks(ctx, t, c, svc.ID)

	// Every node's ingress reaches every task.
	for _, m := range c.Members {
		host, _, _ := net.SplitHostPort(m.Addr)
		addr := net.JoinHostPort(host, fmt.Sprint(published))
		seen := map[string]bool{}
		testutil.EventuallyWhy(t, 60*time.Second, "ingress on "+m.Name+" reaching every task", func() (bool, string) {
			id, err := ask(addr)
			if err != nil {
				return false, err.Error()
			}
			seen[id] = true
			return len(seen) == len(tasks), fmt.Sprintf("answered by %v", seen)
		})
	}

	// Every node's DNS server: the service's VIP, and its tasks' nodes.
	for _, m := range c.Members {
		dnsAddr := m.Node.DNSAddr()
		testutil.EventuallyWhy(t, 30*time.Second, "DNS on "+m.Name, func() (bool, string) {
			vips, err := lookupA(dnsAddr, "web.apiary.internal.")
			if err != nil || len(vips) != 1 || vips[0] != svc.Endpoint.HostVIP {
				return false, fmt.Sprintf("web: %v %v, want %s", vips, err, svc.Endpoint.HostVIP)
			}
			nodes, err := lookupA(dnsAddr, "tasks.web.apiary.internal.")
			if err != nil || len(nodes) != len(c.Members) {
				return false, fmt.Sprintf("tasks.web: %v %v", nodes, err)
			}
			return true, ""
		})
	}
}

// ask connects to addr and reads the line the task answers with.
func ask(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read from %s: %w", addr, err)
	}
	return strings.TrimSpace(line), nil
}

// lookupA asks server for name's A records.
func lookupA(server, name string) ([]string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	r, err := mdns.Exchange(m, server)
	if err != nil {
		return nil, err
	}
	if r.Rcode != mdns.RcodeSuccess {
		return nil, fmt.Errorf("%s: %s", name, mdns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, a := range r.Answer {
		if rec, ok := a.(*mdns.A); ok {
			out = append(out, rec.A.String())
		}
	}
	return out, nil
}

// Gossip's verdict that a node is dead reaches the leader's dispatcher,
// which declares the node down at its first missed heartbeat instead of
// after the whole grace: with a 10 s heartbeat period (grace 30 s), a
// stopped worker is down within a period and a half of its last
// heartbeat, and the node's status says gossip found it.
func TestGossipSuspicionDeclaresNodeDownEarly(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 2, HeartbeatPeriod: 10 * time.Second, Timeout: 90 * time.Second,
		Configure: meshOn("")})
	c.WaitFor("every node's gossip seeing the two others", func() (bool, string) {
		for _, m := range c.Members {
			if peers := m.Node.MeshPeers(); len(peers) != len(c.Members)-1 {
				return false, fmt.Sprintf("%s sees %v", m.Name, peers)
			}
		}
		return true, ""
	})
	var victim *swarmtest.Member
	for _, m := range c.Members {
		if !m.Manager {
			victim = m
		}
	}
	id := victim.Node.NodeID()
	c.Kill(victim)
	killed := time.Now()
	cl := c.Client(c.Leader())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var n *api.Node
	c.WaitFor("the stopped worker down", func() (bool, string) {
		var err error
		if n, err = cl.GetNode(ctx, id); err != nil {
			return false, err.Error()
		}
		return n.Status.State == api.NodeStateDown, string(n.Status.State)
	})
	t.Logf("stopped worker declared down %v after it stopped: %q", time.Since(killed).Round(time.Millisecond), n.Status.Message)
	if !strings.Contains(n.Status.Message, "gossip") {
		t.Fatalf("node down with message %q: the heartbeat grace ran out before gossip's suspicion counted", n.Status.Message)
	}
}

// Outside Linux a node serves VIPs on 127.0.0.1 and each service port's
// loopback VIP port (MeshConfig.VIPs, loopback on this Linux machine by
// choice): every node's DNS answers the service with 127.0.0.1 and the
// port in its SRV record, and that address reaches the tasks.
func TestMeshLoopbackVIPs(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1, Configure: meshOn(swarm.VIPsLoopback)})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	svc := globalWeb(ctx, t, c.Client(c.Leader()), api.PortConfig{TargetPort: 80, PublishMode: api.PublishModeHost})
	if len(svc.Endpoint.LoopbackPorts) != 1 {
		t.Fatalf("web's loopback VIP ports: %+v", svc.Endpoint.LoopbackPorts)
	}
	loop := svc.Endpoint.LoopbackPorts[0].Port
	tasks := serveAsTasks(ctx, t, c, svc.ID)
	for _, m := range c.Members {
		dnsAddr := m.Node.DNSAddr()
		c.WaitFor("DNS on "+m.Name+" answering the loopback VIP", func() (bool, string) {
			vips, err := lookupA(dnsAddr, "web.apiary.internal.")
			if err != nil || len(vips) != 1 || vips[0] != "127.0.0.1" {
				return false, fmt.Sprintf("web: %v %v", vips, err)
			}
			q := new(mdns.Msg)
			q.SetQuestion("_80._tcp.web.apiary.internal.", mdns.TypeSRV)
			r, err := mdns.Exchange(q, dnsAddr)
			if err != nil || len(r.Answer) != 1 {
				return false, fmt.Sprintf("SRV: %v %v", r, err)
			}
			srv, ok := r.Answer[0].(*mdns.SRV)
			return ok && uint32(srv.Port) == loop, fmt.Sprintf("SRV %v, want port %d", r.Answer[0], loop)
		})
	}
	seen := map[string]bool{}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(loop))
	c.WaitFor("127.0.0.1:"+fmt.Sprint(loop)+" reaching every task", func() (bool, string) {
		id, err := ask(addr)
		if err != nil {
			return false, err.Error()
		}
		seen[id] = true
		return len(seen) == len(tasks), fmt.Sprintf("answered by %v", seen)
	})
}

// meshOn is a Configure that puts every node in the mesh on the host data
// path (ports left to the system), its VIPs served as vips says.
func meshOn(vips string) func(string, *swarm.NodeConfig) {
	return func(name string, cfg *swarm.NodeConfig) {
		host, _, _ := net.SplitHostPort(cfg.ListenAddr)
		cfg.Mesh = swarm.MeshConfig{DataPath: swarm.DataPathHost, GossipAddr: host + ":0", DNSAddr: host + ":0", VIPs: vips}
	}
}

// globalWeb creates a global service "web" with one port, waits until it
// converged, and returns it as stored (its endpoint allocated).
func globalWeb(ctx context.Context, t *testing.T, cl *swarm.Client, port api.PortConfig) *api.Service {
	t.Helper()
	web := spec("web", 2)
	web.Mode.Replicated = nil
	web.Mode.Global = &api.GlobalService{}
	web.EndpointSpec = &api.EndpointSpec{Ports: []api.PortConfig{port}}
	svc, err := cl.CreateService(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	if svc, err = cl.GetService(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	return svc
}

// serveAsTasks waits until the service runs one task per member, each
// with its host port, then listens as each task would (its node's
// address, its host port), answering every connection with the task's
// ID, until the test ends. The fake executor runs no process.
func serveAsTasks(ctx context.Context, t *testing.T, c *swarmtest.Cluster, serviceID string) []*api.Task {
	t.Helper()
	cl := c.Client(c.Leader())
	hostOf := map[string]string{} // node ID → host
	for _, m := range c.Members {
		host, _, _ := net.SplitHostPort(m.Addr)
		hostOf[m.Node.NodeID()] = host
	}
	var tasks []*api.Task
	testutil.EventuallyWhy(t, 60*time.Second, "every task running with its host port", func() (bool, string) {
		var err error
		tasks, err = cl.ListTasks(ctx, control.TaskFilter{Service: serviceID, DesiredStates: []api.TaskState{api.TaskStateRunning}})
		if err != nil {
			return false, err.Error()
		}
		if len(tasks) != len(c.Members) {
			return false, fmt.Sprintf("%d tasks", len(tasks))
		}
		for _, tk := range tasks {
			if tk.Status.State != api.TaskStateRunning || len(tk.Status.PortStatus) != 1 {
				return false, fmt.Sprintf("task %s: %s %+v", tk.ID, tk.Status.State, tk.Status.PortStatus)
			}
		}
		return true, ""
	})
	var wg sync.WaitGroup
	var listeners []net.Listener
	t.Cleanup(func() {
		for _, l := range listeners {
			l.Close()
		}
		wg.Wait()
	})
	for _, tk := range tasks {
		l, err := net.Listen("tcp", net.JoinHostPort(hostOf[tk.NodeID], fmt.Sprint(tk.Status.PortStatus[0].PublishedPort)))
		if err != nil {
			t.Fatalf("listen as task %s: %v", tk.ID, err)
		}
		listeners = append(listeners, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(conn, "%s\n", tk.ID)
				conn.Close()
			}
		}()
	}
	return tasks
}
