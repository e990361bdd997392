package swarmtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// Start-up safety (issue 12, items 4 and 5): what a node finds in its data
// dir at start must be its own, and complete.

// nodeConfig is the configuration swarmtest gives a member, for the calls
// a test makes itself (a restart that must fail, a join that is cut).
func nodeConfig(m *swarmtest.Member) swarm.NodeConfig {
	var w io.Writer = io.Discard
	if os.Getenv("SWARMTEST_LOG") != "" {
		w = os.Stderr
	}
	cfg := swarm.DefaultNodeConfig()
	cfg.DataDir = m.DataDir
	cfg.ListenAddr = m.Addr
	cfg.Executor = fake.New(fake.Config{Hostname: m.Name})
	cfg.Manager.ClusterSpec.Dispatcher.HeartbeatPeriod = 200 * time.Millisecond
	cfg.Manager.Raft.TickInterval = 20 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("member", m.Name)
	return cfg
}

// freeAddr returns a free address on 127.0.3.1, this file's loopback range.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.3.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustFailRestart restarts m, which must be refused with an error holding
// every one of want, and leave node.json as it was.
func mustFailRestart(t *testing.T, m *swarmtest.Member, want ...string) {
	t.Helper()
	before := readFile(t, filepath.Join(m.DataDir, "node.json"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := swarm.RestartNode(ctx, nodeConfig(m))
	if err == nil {
		n.Stop()
		t.Fatalf("%s restarted; want a refusal naming %q", m.Name, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("restart of %s: %v\nwant it to say %q", m.Name, err, w)
		}
	}
	if after := readFile(t, filepath.Join(m.DataDir, "node.json")); !bytes.Equal(before, after) {
		t.Errorf("the refused restart changed node.json:\n%s\nto\n%s", before, after)
	}
}

// A manager admitted to the raft group whose raft state is then missing,
// or empty, is refused at start with how to recover; recovering as the
// message says (demote and remove it through the others, empty the data
// dir, join again) gives the cluster its third manager back.
func TestLostRaftStateRefused(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	m := c.Members[1]
	id := m.Node.NodeID()
	var st struct{ RaftAdmitted bool }
	if err := json.Unmarshal(readFile(t, filepath.Join(m.DataDir, "node.json")), &st); err != nil || !st.RaftAdmitted {
		t.Fatalf("a joined manager's node.json does not record its admission: %+v %v", st, err)
	}
	c.Kill(m)
	raftDir := filepath.Join(m.DataDir, "raft")
	want := []string{"admitted to the raft group", "missing or empty", "apiaryctl node demote " + id, "apiaryctl node rm " + id, "--force-new-cluster"}

	// Missing.
	if err := os.Rename(raftDir, raftDir+".bak"); err != nil {
		t.Fatal(err)
	}
	mustFailRestart(t, m, want...)
	// Empty: a raft.db of no bytes.
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(raftDir, "raft.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mustFailRestart(t, m, want...)

	// The recovery the message gives.
	cl := c.Client(c.Leader())
	if _, err := cl.EditNode(ctx, id, func(s *api.NodeSpec) error { s.Role = api.NodeRoleWorker; return nil }); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the member of "+m.Name+" to be removed", func() (bool, string) {
		n, err := c.Client(c.Leader()).GetNode(ctx, id)
		if err != nil {
			return false, err.Error()
		}
		return n.ManagerStatus == nil && len(raftMembers(c)) == 2, "still a member"
	})
	c.WaitFor(m.Name+" to be removed", func() (bool, string) {
		err := c.Client(c.Leader()).RemoveNode(ctx, id, true)
		return err == nil, "remove: " + errString(err)
	})
	c.Members = c.Members[:1+copy(c.Members[1:], c.Members[2:])]
	if err := os.RemoveAll(m.DataDir); err != nil {
		t.Fatal(err)
	}
	cluster, err := cl.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := swarm.JoinNode(ctx, nodeConfig(m), cluster.JoinTokens.Manager, []string{c.Members[0].Addr})
	if err != nil {
		t.Fatal(err)
	}
	back := &swarmtest.Member{Name: m.Name, Addr: m.Addr, DataDir: m.DataDir, Manager: true, Node: n}
	c.Members = append(c.Members, back)
	c.WaitReady()
	if got := len(raftMembers(c)); got != 3 {
		t.Fatalf("%d voters after joining again, want 3", got)
	}
	if back.Node.NodeID() == id {
		t.Fatal("joined again under the old node ID")
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// A manager stopped after node.json says "manager" but before the raft
// group admitted it (here: its request to be added cannot reach anyone)
// joins again when restarted, as before admission was recorded.
func TestJoinInterruptedBeforeAdmission(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cluster, err := c.Client(c.Leader()).GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := &swarmtest.Member{Name: "manager-2", Addr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "manager-2"), Manager: true}
	cfg := nodeConfig(m)
	// The first connection (asking for the members) goes through; every
	// later one (asking to be added) is refused.
	var dials atomic.Int32
	cfg.Dialer = func(ctx context.Context, addr string) (net.Conn, error) {
		if dials.Add(1) > 1 {
			return nil, errors.New("test: network down")
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	if n, err := swarm.JoinNode(ctx, cfg, cluster.JoinTokens.Manager, []string{c.Members[0].Addr}); err == nil {
		n.Stop()
		t.Fatal("joined with the network down")
	}
	var st struct {
		Role         string
		RaftAdmitted bool
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(m.DataDir, "node.json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Role != "manager" || st.RaftAdmitted {
		t.Fatalf("node.json after the interrupted join: %+v, want a manager not yet admitted", st)
	}
	n, err := swarm.RestartNode(ctx, nodeConfig(m))
	if err != nil {
		t.Fatalf("restart after an interrupted join: %v", err)
	}
	m.Node = n
	c.Members = append(c.Members, m)
	c.WaitReady()
	if got := len(raftMembers(c)); got != 2 {
		t.Fatalf("%d voters, want 2", got)
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(m.DataDir, "node.json")), &st); err != nil || !st.RaftAdmitted {
		t.Fatalf("node.json once admitted: %+v %v", st, err)
	}
}

// Another node's certificates copied into a data dir are refused at start,
// naming both nodes, and nothing changes; with its own certificates back
// the node runs.
func TestCopiedCertificatesRefused(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 2})
	mgr, w1, w2 := c.Members[0], c.Members[1], c.Members[2]
	ids := map[*swarmtest.Member]string{mgr: mgr.Node.NodeID(), w1: w1.Node.NodeID(), w2: w2.Node.NodeID()}
	for _, m := range c.Members {
		c.Kill(m)
	}
	for _, tc := range []struct{ victim, donor *swarmtest.Member }{{mgr, w1}, {w2, w1}} {
		certs := filepath.Join(tc.victim.DataDir, "certificates")
		if err := os.Rename(certs, certs+".own"); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(certs, os.DirFS(filepath.Join(tc.donor.DataDir, "certificates"))); err != nil {
			t.Fatal(err)
		}
		mustFailRestart(t, tc.victim, "the certificate is node "+ids[tc.donor]+"'s", "node.json is node "+ids[tc.victim]+"'s", "another node's certificates were copied here")
		if err := os.RemoveAll(certs); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(certs+".own", certs); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range c.Members {
		c.Restart(m)
	}
	c.WaitReady()
}

// A manager that stopped after its demotion brought it a worker
// certificate, but before node.json said so, starts as a worker: the CA
// issues that certificate only once the member is out of the raft group.
func TestDemotedCertificateRunsAsWorker(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 2})
	m := c.Members[1]
	c.SetRole(m, api.NodeRoleWorker)
	c.Kill(m)
	// node.json as it was before the switch recorded the role.
	path := filepath.Join(m.DataDir, "node.json")
	var st map[string]any
	if err := json.Unmarshal(readFile(t, path), &st); err != nil {
		t.Fatal(err)
	}
	st["Role"], st["RaftAdmitted"] = "manager", true
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Restart(m)
	if got := m.Node.Role(); got != "worker" {
		t.Fatalf("restarted as %s, want worker", got)
	}
	if got := savedRole(t, m); got != "worker" {
		t.Errorf("node.json role %s, want worker", got)
	}
	c.WaitReady()
}

// A cluster of three managers that lost two recovers from the third's data
// with ForceNewCluster (what `apiaryd run --force-new-cluster` sets): the
// services and their tasks are all there, the lost managers are recorded
// as workers, a new manager joins with the join token of before, and a
// lost manager that comes back with its old data runs as a worker.
func TestForceNewCluster(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, Workers: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	m1, m2, m3 := c.Members[0], c.Members[1], c.Members[2]
	cl := c.Client(c.Leader())
	for _, s := range []api.ServiceSpec{spec("web", 4), spec("api", 2)} {
		svc, err := cl.CreateService(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.WaitConverged(ctx, svc.ID); err != nil {
			t.Fatal(err)
		}
	}
	cluster, err := cl.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, err := cl.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost := map[string]bool{m2.Node.NodeID(): true, m3.Node.NodeID(): true}

	c.Kill(m2)
	c.Kill(m3)
	c.Kill(m1)
	cfg := nodeConfig(m1)
	cfg.ForceNewCluster = true
	n, err := swarm.RestartNode(ctx, cfg)
	if err != nil {
		t.Fatalf("force new cluster: %v", err)
	}
	m1.Node = n
	m2.Manager, m3.Manager = false, false
	if got := len(raftMembers(c)); got != 1 {
		t.Fatalf("%d voters after forcing a new cluster, want 1", got)
	}
	cl = c.Client(m1)
	after, err := cl.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d services after recovery, %d before", len(after), len(before))
	}
	for i := range before {
		if after[i].ID != before[i].ID || after[i].Spec.Annotations.Name != before[i].Spec.Annotations.Name || after[i].Spec.Mode.Replicated.Replicas != before[i].Spec.Mode.Replicated.Replicas {
			t.Errorf("service %d: %+v after recovery, %+v before", i, after[i].Spec, before[i].Spec)
		}
		waitConverged(t, c, cl, after[i].ID)
	}
	c.WaitFor("the lost managers recorded as workers", func() (bool, string) {
		nodes, err := cl.ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if lost[n.ID] && (n.Spec.Role != api.NodeRoleWorker || n.ManagerStatus != nil) {
				return false, n.ID + " is still a " + string(n.Spec.Role)
			}
		}
		return true, ""
	})

	// The manager token of before still joins managers.
	m4 := &swarmtest.Member{Name: "manager-4", Addr: freeAddr(t), DataDir: filepath.Join(t.TempDir(), "manager-4"), Manager: true}
	if m4.Node, err = swarm.JoinNode(ctx, nodeConfig(m4), cluster.JoinTokens.Manager, []string{m1.Addr}); err != nil {
		t.Fatalf("join a manager after the recovery: %v", err)
	}
	c.Members = append(c.Members, m4)
	c.WaitReady()
	if got := len(raftMembers(c)); got != 2 {
		t.Fatalf("%d voters after a manager joined, want 2", got)
	}
	if _, err := c.Client(m4).ScaleService(ctx, "web", 6); err != nil {
		t.Fatal(err)
	}
	for _, svc := range after {
		waitConverged(t, c, c.Client(c.Leader()), svc.ID)
	}

	// A lost manager restarted with its old data is refused by the group
	// and follows the role the cluster gives it now.
	c.Restart(m2)
	c.WaitFor(m2.Name+" to run as a worker", func() (bool, string) {
		return m2.Node.Role() == "worker", "runs as " + m2.Node.Role()
	})
	c.WaitReady()
	if got := len(raftMembers(c)); got != 2 {
		t.Fatalf("%d voters after a lost manager came back, want 2", got)
	}
}

// waitConverged waits for a service to converge; on failure it lists the
// nodes and tasks the client sees.
func waitConverged(t *testing.T, c *swarmtest.Cluster, cl *swarm.Client, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cl.WaitConverged(ctx, id)
	if err == nil {
		return
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer lcancel()
	names := map[string]string{}
	for _, m := range c.Members {
		if m.Node != nil {
			names[m.Node.NodeID()] = m.Name
		}
	}
	if nodes, err := cl.ListNodes(lctx); err == nil {
		for _, n := range nodes {
			t.Logf("node %s (%s): %s %s, manager status %+v", n.ID, names[n.ID], n.Spec.Role, n.Status.State, n.ManagerStatus)
		}
	}
	if tasks, err := cl.ListTasks(lctx, swarm.TaskFilter{Service: id}); err == nil {
		for _, tk := range tasks {
			t.Logf("task %s slot %d on %s (%s): %s, desired %s: %s", tk.ID, tk.Slot, tk.NodeID, names[tk.NodeID], tk.Status.State, tk.DesiredState, tk.Status.Message)
		}
	}
	t.Fatalf("service %s: %v", id, err)
}
