package swarmtest_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/encryption"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// tasksOn returns the IDs of the running tasks on a node.
func tasksOn(t *testing.T, c *swarmtest.Cluster, nodeID string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tasks, err := c.Client(c.Alive()).ListTasks(ctx, swarm.TaskFilter{Node: nodeID})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tk := range tasks {
		if tk.Status.State == api.TaskStateRunning && tk.DesiredState == api.TaskStateRunning {
			ids = append(ids, tk.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func raftMembers(c *swarmtest.Cluster) []uint64 {
	var ids []uint64
	for _, m := range c.Leader().Node.Manager().Raft().Members() {
		if !m.Learner {
			ids = append(ids, m.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func savedRole(t *testing.T, m *swarmtest.Member) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.DataDir, "node.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Role string }
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.Role
}

// certRole reads the role (OU) of the certificate a member holds on disk,
// "" while the node is writing a new one. It only reads: loading the
// identity would complete an interrupted save under the running node.
func certRole(t *testing.T, m *swarmtest.Member) pki.Role {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.DataDir, "certificates", "node.crt"))
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return ""
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil || len(c.Subject.OrganizationalUnit) != 1 {
		return ""
	}
	return pki.Role(c.Subject.OrganizationalUnit[0])
}

// A worker promoted to manager becomes a voting raft member that the
// quorum depends on; a demoted manager (the leader here) leaves the raft
// group and runs on as a worker; a node demoted and promoted again joins
// under a new member ID. Tasks keep running through every switch, and each
// node's certificate, node.json and raft data follow its role.
func TestPromoteAndDemote(t *testing.T) {
	c, ctx, svc := withService(t, 10)
	m1, m2, m3, w1 := c.Members[0], c.Members[1], c.Members[2], c.Members[3]
	onWorker := tasksOn(t, c, w1.Node.NodeID())
	if len(onWorker) == 0 {
		t.Fatal("no task on worker-1")
	}
	if got := len(raftMembers(c)); got != 3 {
		t.Fatalf("%d voters before the promotion", got)
	}

	// Promote worker-1.
	c.SetRole(w1, api.NodeRoleManager)
	if got := len(raftMembers(c)); got != 4 {
		t.Errorf("%d voters after the promotion, want 4", got)
	}
	if r := certRole(t, w1); r != pki.RoleManager {
		t.Errorf("promoted node's certificate role = %s", r)
	}
	if r := savedRole(t, w1); r != "manager" {
		t.Errorf("promoted node's node.json role = %s", r)
	}
	if got := tasksOn(t, c, w1.Node.NodeID()); !slices.Equal(got, onWorker) {
		t.Errorf("tasks on worker-1 changed through its promotion: %v, then %v", onWorker, got)
	}

	// Demote the leader.
	lead := c.Leader()
	if lead == w1 {
		t.Fatal("the promoted node leads already")
	}
	onLead := tasksOn(t, c, lead.Node.NodeID())
	c.SetRole(lead, api.NodeRoleWorker)
	if got := len(raftMembers(c)); got != 3 {
		t.Errorf("%d voters after the demotion, want 3", got)
	}
	if c.Leader() == lead {
		t.Error("the demoted manager still leads")
	}
	if r := certRole(t, lead); r != pki.RoleWorker {
		t.Errorf("demoted node's certificate role = %s", r)
	}
	if r := savedRole(t, lead); r != "worker" {
		t.Errorf("demoted node's node.json role = %s", r)
	}
	if _, err := os.Stat(filepath.Join(lead.DataDir, "raft")); !os.IsNotExist(err) {
		t.Errorf("demoted node kept its raft data: %v", err)
	}
	if got := tasksOn(t, c, lead.Node.NodeID()); !slices.Equal(got, onLead) {
		t.Errorf("tasks on the demoted node changed: %v, then %v", onLead, got)
	}
	// Its control socket answers as a worker's now.
	if _, err := c.Client(lead).ListServices(ctx); err == nil {
		t.Error("the demoted node's control socket still serves the control API")
	}

	// The promoted node is a voter the quorum needs: with one of the two
	// other managers down, it and the remaining one elect a leader and
	// accept writes.
	var other *swarmtest.Member
	for _, m := range []*swarmtest.Member{m1, m2, m3} {
		if m != lead && other == nil {
			other = m
		}
	}
	c.Kill(other)
	if _, err := c.Client(c.Leader()).ScaleService(ctx, "web", 12); err != nil {
		t.Fatal(err)
	}
	if err := c.Client(c.Leader()).WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	c.Restart(other)
	c.WaitReady()

	// The demoted node restarts as a worker, and is promoted again under a
	// new raft member ID (raft refuses a removed member's ID for ever).
	c.Kill(lead)
	c.Restart(lead)
	if lead.Node.Role() != "worker" {
		t.Fatalf("demoted node restarted as %s", lead.Node.Role())
	}
	c.WaitReady()
	c.SetRole(lead, api.NodeRoleManager)
	after := raftMembers(c)
	if len(after) != 4 {
		t.Fatalf("voters after the second promotion: %x", after)
	}
	for _, id := range after {
		if id == swarm.RaftID(lead.Node.NodeID()) {
			t.Errorf("re-promoted node reuses its removed member ID %x", id)
		}
	}
	// And it survives a restart as a manager.
	c.Kill(lead)
	c.Restart(lead)
	if lead.Node.Role() != "manager" {
		t.Fatalf("re-promoted node restarted as %s", lead.Node.Role())
	}
	c.WaitReady()
	if got := len(raftMembers(c)); got != 4 {
		t.Errorf("%d voters after restarting the re-promoted manager", got)
	}
}

// A manager demoted while it is down: the leader removes its member at
// once (the rest keep a quorum), and when the node comes back it learns it
// is a worker from its first heartbeats, whatever its raft member makes of
// having been removed meanwhile: it may find out from its peers, or (the
// node stopped again after it did) find its data dir marked removed and
// start as a worker straight away.
func TestDemoteWhileDown(t *testing.T) {
	for _, marked := range []bool{false, true} {
		t.Run(map[bool]string{false: "peers tell it", true: "data dir marked removed"}[marked], func(t *testing.T) {
			demoteWhileDown(t, marked)
		})
	}
}

func demoteWhileDown(t *testing.T, marked bool) {
	c, ctx, _ := withService(t, 4)
	lead := c.Leader()
	var m *swarmtest.Member
	for _, x := range c.Members[:3] {
		if x != lead {
			m = x
			break
		}
	}
	nodeID := m.Node.NodeID()
	c.Kill(m)
	cl := c.Client(lead)
	if _, err := cl.EditNode(ctx, nodeID, func(s *api.NodeSpec) error { s.Role = api.NodeRoleWorker; return nil }); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the down manager's member removed", func() (bool, string) {
		n, err := cl.GetNode(ctx, nodeID)
		if err != nil {
			return false, err.Error()
		}
		return n.ManagerStatus == nil && len(raftMembers(c)) == 2, fmt.Sprintf("manager status %+v, voters %x", n.ManagerStatus, raftMembers(c))
	})
	if marked {
		keys, err := encryption.Open(m.DataDir) // a manager's raft data is sealed
		if err != nil {
			t.Fatal(err)
		}
		st, err := raft.OpenEncryptedDiskStorage(filepath.Join(m.DataDir, "raft"), raft.Encryption{Key: keys.DEK()})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.MarkRemoved(); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	c.Restart(m)
	c.WaitFor("the node back as a worker", func() (bool, string) {
		if m.Node.Role() != "worker" || savedRole(t, m) != "worker" || certRole(t, m) != pki.RoleWorker {
			return false, fmt.Sprintf("runs as %q, node.json %s, certificate %s", m.Node.Role(), savedRole(t, m), certRole(t, m))
		}
		if _, err := os.Stat(filepath.Join(m.DataDir, "raft")); !os.IsNotExist(err) {
			return false, "raft data still there"
		}
		return true, ""
	})
	m.Manager = false
	c.WaitReady()
	if got := len(raftMembers(c)); got != 2 {
		t.Errorf("%d voters after the demoted node came back, want 2", got)
	}
}
