package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func nodeConfig(t *testing.T, dir, name string) swarm.NodeConfig {
	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir = filepath.Join(dir, name)
	cfg.ListenAddr = freeAddr(t)
	cfg.Executor = fake.New(fake.Config{Hostname: name})
	cfg.Manager.ClusterSpec.Dispatcher.HeartbeatPeriod = 200 * time.Millisecond
	cfg.Manager.Raft.TickInterval = 20 * time.Millisecond
	cfg.Logger = quietLogger()
	return cfg
}

func socketClient(t *testing.T, dataDir string) *swarm.Client {
	t.Helper()
	c, closeFn, err := swarm.DialClient("unix://" + swarm.ControlSocket(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return c
}

// TestNodesJoinWithTokensOverMutualTLS builds a cluster the way apiaryd
// does: init, tokens, joins of managers and workers, all over mutual TLS,
// then loses its first manager and restarts it from its data dir.
func TestNodesJoinWithTokensOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	first := nodeConfig(t, dir, "m1")
	m1, err := swarm.InitNode(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	stopped := map[*swarm.Node]bool{}
	var nodes []*swarm.Node
	t.Cleanup(func() {
		for _, n := range nodes {
			if !stopped[n] {
				n.Stop()
			}
		}
	})
	nodes = append(nodes, m1)
	c1 := socketClient(t, first.DataDir)
	cluster, err := c1.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cluster.JoinTokens.Worker == "" || cluster.JoinTokens.Manager == "" || len(cluster.CAState) != 0 {
		t.Fatalf("cluster as the API shows it: tokens %+v, CA state leaked: %d bytes", cluster.JoinTokens, len(cluster.CAState))
	}

	// A rotated token no longer admits anyone.
	old := cluster.JoinTokens.Worker
	if cluster.JoinTokens.Worker, err = c1.RotateJoinToken(ctx, "worker"); err != nil {
		t.Fatal(err)
	}
	bad := nodeConfig(t, dir, "bad")
	if _, err := swarm.JoinNode(ctx, bad, old, []string{first.ListenAddr}); !errors.Is(err, pki.ErrTokenInvalid) {
		t.Fatalf("join with a rotated token: %v", err)
	}

	var mcfgs []swarm.NodeConfig
	mcfgs = append(mcfgs, first)
	for _, name := range []string{"m2", "m3"} {
		cfg := nodeConfig(t, dir, name)
		n, err := swarm.JoinNode(ctx, cfg, cluster.JoinTokens.Manager, []string{first.ListenAddr})
		if err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
		if n.Role() != "manager" {
			t.Fatalf("%s joined as %s", name, n.Role())
		}
		nodes = append(nodes, n)
		mcfgs = append(mcfgs, cfg)
	}
	var addrs []string
	for _, c := range mcfgs {
		addrs = append(addrs, c.ListenAddr)
	}
	for _, name := range []string{"w1", "w2"} {
		n, err := swarm.JoinNode(ctx, nodeConfig(t, dir, name), cluster.JoinTokens.Worker, addrs)
		if err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
		nodes = append(nodes, n)
	}

	testutil.EventuallyWhy(t, 30*time.Second, "5 ready nodes, 3 managers, one leader", func() (bool, string) {
		ns, err := c1.ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		ready, managers, leaders := 0, 0, 0
		for _, n := range ns {
			if n.Status.State == api.NodeStateReady {
				ready++
			}
			if n.Spec.Role == api.NodeRoleManager {
				managers++
				if n.ManagerStatus != nil && n.ManagerStatus.Leader {
					leaders++
				}
			}
		}
		return ready == 5 && managers == 3 && leaders == 1, fmt.Sprintf("%d ready, %d managers, %d leaders", ready, managers, leaders)
	})

	svc, err := c1.CreateService(ctx, sleeper("web", 5))
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}

	// The first manager (the leader so far) goes away; the others carry on.
	m1.Stop()
	stopped[m1] = true
	c2 := socketClient(t, mcfgs[1].DataDir)
	testutil.EventuallyWhy(t, 30*time.Second, "a new leader to take writes", func() (bool, string) {
		_, err := c2.ScaleService(ctx, "web", 6)
		return err == nil, fmt.Sprint(err)
	})
	if err := c2.WaitConverged(ctx, svc.ID); err != nil {
		for i, nd := range nodes {
			if nd.Manager() != nil && !stopped[nd] {
				l, err := nd.Manager().Client().ListNodes(context.Background())
				t.Logf("manager %d (leader %v) sees %d nodes (%v)", i, nd.Manager().IsLeader(), len(l), err)
			}
		}
		ns, err := c2.ListNodes(context.Background())
		t.Logf("socket list: %d %v", len(ns), err)
		for _, n := range ns {
			t.Logf("node %s role %s state %s %s", n.ID, n.Spec.Role, n.Status.State, n.Status.Message)
		}
		ts, _ := c2.ListTasks(context.Background(), swarm.TaskFilter{Service: "web"})
		for _, tk := range ts {
			t.Logf("task %s slot %d node %s desired %s state %s", tk.ID, tk.Slot, tk.NodeID, tk.DesiredState, tk.Status.State)
		}
		t.Fatal(err)
	}

	// It comes back from its data dir alone, with its identity and state.
	again := nodeConfig(t, dir, "m1")
	again.ListenAddr = "" // node.json has it
	m1b, err := swarm.RestartNode(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, m1b)
	if m1b.NodeID() != m1.NodeID() {
		t.Fatalf("restarted with another identity: %s, was %s", m1b.NodeID(), m1.NodeID())
	}
	c1 = socketClient(t, first.DataDir)
	testutil.EventuallyWhy(t, 30*time.Second, "the restarted manager to catch up", func() (bool, string) {
		s, err := c1.GetService(ctx, "web")
		if err != nil {
			return false, err.Error()
		}
		return s.Spec.Mode.Replicated.Replicas == 6, fmt.Sprint(s.Spec.Mode.Replicated.Replicas)
	})
}
