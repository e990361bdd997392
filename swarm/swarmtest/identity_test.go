package swarmtest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
	"github.com/apiary-io/apiary/swarm/encryption"
	"github.com/apiary-io/apiary/swarm/rpc"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// identityOf loads a copy of m's certificate and key (into a directory of
// the test's, so the running node's files are never touched).
func identityOf(t testing.TB, m *swarmtest.Member) *pki.NodeIdentity {
	t.Helper()
	dir := filepath.Join(m.DataDir, "certificates")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// A manager's key file is sealed with its data key.
	var sealer pki.KeySealer
	if encryption.Exists(m.DataDir) {
		keys, err := encryption.Open(m.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		sealer = keys.DEK()
	}
	key, err := pki.ReadNodeKeyPEM(m.DataDir, sealer)
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.NewNodeIdentityFromPEM(key, read("node.crt"), read("ca.crt"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// dialAs opens a mutual-TLS connection to a manager with ident's
// certificate, as that node's agent does.
func dialAs(t *testing.T, ident *pki.NodeIdentity, addr string) *grpc.ClientConn {
	t.Helper()
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(ident.ClientTLSConfig(pki.RoleManager)))}, rpc.DialOptions()...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// clusterView is what a forged call must not change: every node's
// identity, role and self-description, and every task's place and state.
func clusterView(t *testing.T, ctx context.Context, c *swarmtest.Cluster) (nodes, tasks []string) {
	t.Helper()
	cl := c.Client(c.Leader())
	ns, err := cl.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		host := ""
		if n.Description != nil {
			host = n.Description.Hostname
		}
		nodes = append(nodes, n.ID+" "+string(n.Spec.Role)+" "+host+" "+string(n.Status.State))
	}
	ts, err := cl.ListTasks(ctx, swarm.TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range ts {
		tasks = append(tasks, tk.ID+" "+tk.NodeID+" "+tk.Status.State.String()+" "+tk.DesiredState.String()+" "+tk.Status.Message)
	}
	slices.Sort(nodes)
	slices.Sort(tasks)
	return nodes, tasks
}

// A worker's certificate speaks for its own node only (issue 12, item 1):
// with worker-1's certificate, registering as a manager, as worker-2 or
// with no node ID, heartbeating, streaming assignments or reporting status
// for another node are refused with PermissionDenied naming both IDs, and
// nothing in the cluster changes; the one thing it may do, open its own
// session, shows it its own tasks alone.
func TestWorkerCertificateSpeaksOnlyForItsNode(t *testing.T) {
	// A slow heartbeat: the comparison below must not see a node flap
	// down on a loaded machine.
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, Workers: 2, HeartbeatPeriod: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	svc, err := c.Client(c.Leader()).CreateService(ctx, spec("web", 6))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Client(c.Leader()).WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*swarmtest.Member{}
	for _, m := range c.Members {
		byName[m.Name] = m
	}
	w1, w2, mgr := byName["worker-1"], byName["worker-2"], c.Leader()
	w1ID, w2ID, mgrID := w1.Node.NodeID(), w2.Node.NodeID(), mgr.Node.NodeID()
	// A task running on worker-2, for the forged status report.
	var w2Task *api.Task
	c.WaitFor("a task running on worker-2", func() (bool, string) {
		ts, err := c.Client(mgr).ListTasks(ctx, swarm.TaskFilter{Node: w2ID})
		if err != nil {
			return false, err.Error()
		}
		for _, tk := range ts {
			if tk.ServiceID == svc.ID && tk.Status.State == api.TaskStateRunning {
				w2Task = tk
				return true, ""
			}
		}
		return false, "none yet"
	})
	nodesBefore, tasksBefore := clusterView(t, ctx, c)

	forger := dispatcher.NewClient(dialAs(t, identityOf(t, w1), mgr.Addr))
	call := func(what string, f func(context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return f(cctx)
	}
	desc := api.NodeDescription{Hostname: "forged"}
	refusals := []struct {
		name    string
		claimed string
		call    func(context.Context) error
	}{
		{"register as the manager", mgrID, func(ctx context.Context) error {
			_, err := forger.Register(ctx, &dispatcher.RegisterRequest{NodeID: mgrID, Description: desc})
			return err
		}},
		{"register as worker-2", w2ID, func(ctx context.Context) error {
			_, err := forger.Register(ctx, &dispatcher.RegisterRequest{NodeID: w2ID, Description: desc})
			return err
		}},
		{"register with no node ID", "", func(ctx context.Context) error {
			_, err := forger.Register(ctx, &dispatcher.RegisterRequest{Description: desc})
			return err
		}},
		{"heartbeat as worker-2", w2ID, func(ctx context.Context) error {
			_, err := forger.Heartbeat(ctx, &dispatcher.HeartbeatRequest{NodeID: w2ID, SessionID: "x"})
			return err
		}},
		{"assignments of the manager", mgrID, func(ctx context.Context) error {
			st, err := forger.Assignments(ctx, &dispatcher.AssignmentsRequest{NodeID: mgrID, SessionID: "x"})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}},
		{"status report as worker-2", w2ID, func(ctx context.Context) error {
			return forger.UpdateTaskStatus(ctx, &dispatcher.UpdateTaskStatusRequest{NodeID: w2ID, SessionID: "x", Updates: []dispatcher.TaskStatusUpdate{
				{TaskID: w2Task.ID, Status: api.TaskStatus{State: api.TaskStateFailed, Message: "forged", Timestamp: time.Now()}},
			}})
		}},
	}
	for _, r := range refusals {
		err := call(r.name, r.call)
		if err == nil {
			t.Fatalf("%s: accepted", r.name)
		}
		if status.Code(err) != codes.PermissionDenied || !errors.Is(err, pki.ErrPermissionDenied) {
			t.Fatalf("%s: want PermissionDenied, got %v (code %s)", r.name, err, status.Code(err))
		}
		if !strings.Contains(err.Error(), w1ID) || !strings.Contains(err.Error(), "\""+r.claimed+"\"") {
			t.Fatalf("%s: the refusal does not name both %s and %q: %v", r.name, w1ID, r.claimed, err)
		}
	}
	nodesAfter, tasksAfter := clusterView(t, ctx, c)
	if !slices.Equal(nodesBefore, nodesAfter) {
		t.Fatalf("forged calls changed the nodes:\nbefore %q\nafter  %q", nodesBefore, nodesAfter)
	}
	if !slices.Equal(tasksBefore, tasksAfter) {
		t.Fatalf("forged calls changed the tasks:\nbefore %q\nafter  %q", tasksBefore, tasksAfter)
	}

	// Its own session is allowed, and shows worker-1's tasks only; a
	// report it slips in for worker-2's task is dropped.
	sess, err := forger.Register(ctx, &dispatcher.RegisterRequest{NodeID: w1ID, Description: api.NodeDescription{Hostname: w1.Name}})
	if err != nil {
		t.Fatalf("register as itself: %v", err)
	}
	st, err := forger.Assignments(ctx, &dispatcher.AssignmentsRequest{NodeID: w1ID, SessionID: sess.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Tasks) == 0 {
		t.Fatal("worker-1's own assignments are empty")
	}
	for _, tk := range first.Tasks {
		if tk.NodeID != w1ID {
			t.Fatalf("worker-1 was sent task %s of node %s", tk.ID, tk.NodeID)
		}
	}
	if err := forger.UpdateTaskStatus(ctx, &dispatcher.UpdateTaskStatusRequest{NodeID: w1ID, SessionID: sess.SessionID, Updates: []dispatcher.TaskStatusUpdate{
		{TaskID: w2Task.ID, Status: api.TaskStatus{State: api.TaskStateFailed, Message: "forged", Timestamp: time.Now()}},
	}}); err != nil {
		t.Fatalf("a report in its own session: %v", err)
	}
	got, err := c.Client(mgr).ListTasks(ctx, swarm.TaskFilter{Node: w2ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range got {
		if tk.ID == w2Task.ID && tk.Status.State != api.TaskStateRunning {
			t.Fatalf("worker-1 changed worker-2's task: %s %q", tk.Status.State, tk.Status.Message)
		}
	}
}
