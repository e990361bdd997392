package swarm_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// raftCluster is N managers replicating their store through raft (the
// in-memory transport) and workers whose agents follow the leader.
type raftCluster struct {
	t        *testing.T
	nw       *raft.Network
	managers []*swarm.Manager
	ids      []string
	workers  []*swarm.Worker
}

func startRaftCluster(t *testing.T, managers, workers int) *raftCluster {
	t.Helper()
	rc := &raftCluster{t: t, nw: raft.NewNetwork()}
	var peers []raft.Peer
	for i := 0; i < managers; i++ {
		id := fmt.Sprintf("manager-%d", i+1)
		rc.ids = append(rc.ids, id)
		peers = append(peers, raft.Peer{ID: swarm.RaftID(id), Addr: id})
	}
	for i, id := range rc.ids {
		cfg := swarm.DefaultManagerConfig()
		cfg.NodeID, cfg.Addr = id, id
		cfg.ClusterSpec.Dispatcher.HeartbeatPeriod = 100 * time.Millisecond
		cfg.Logger = quietLogger()
		r := raft.DefaultConfig()
		r.TickInterval = 20 * time.Millisecond
		r.Transport = rc.nw.Transport(swarm.RaftID(id))
		r.Storage = raft.NewMemoryStorage()
		r.Peers = peers
		cfg.Raft = &r
		m, err := swarm.StartManager(context.Background(), cfg)
		if err != nil {
			t.Fatalf("manager %d: %v", i, err)
		}
		rc.managers = append(rc.managers, m)
	}
	t.Cleanup(rc.stop)
	var apis []dispatcher.API
	for _, m := range rc.managers {
		apis = append(apis, m.Dispatcher())
	}
	for i := 0; i < workers; i++ {
		w, err := swarm.StartWorker(context.Background(), swarm.WorkerConfig{
			Manager:  agent.NewFailoverClient(apis, rc.ids),
			Executor: fake.New(fake.Config{Hostname: fmt.Sprintf("worker-%d", i+1)}),
			Logger:   quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		rc.workers = append(rc.workers, w)
	}
	return rc
}

func (rc *raftCluster) stop() {
	for _, w := range rc.workers {
		w.Stop()
	}
	for _, m := range rc.managers {
		if m != nil {
			m.Stop()
		}
	}
}

// leader waits for a leading manager and returns its index.
func (rc *raftCluster) leader() int {
	rc.t.Helper()
	idx := -1
	testutil.EventuallyWhy(rc.t, 20*time.Second, "a leader", func() (bool, string) {
		for i, m := range rc.managers {
			if m != nil && m.IsLeader() {
				idx = i
				return true, ""
			}
		}
		return false, "no manager leads"
	})
	return idx
}

func TestReplicatedManagersSurviveLeaderLoss(t *testing.T) {
	rc := startRaftCluster(t, 3, 2)
	lead := rc.leader()
	follower := rc.managers[(lead+1)%3]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Writes through a follower are forwarded to the leader by raft.
	c := follower.Client()
	svc, err := c.CreateService(ctx, sleeper("web", 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	before := map[string]bool{}
	for _, tk := range runningTasks(t, c, svc.ID) {
		before[tk.ID] = true
	}
	// Every manager holds the same state.
	for i, m := range rc.managers {
		testutil.EventuallyWhy(t, 10*time.Second, fmt.Sprintf("manager %d to see the service", i), func() (bool, string) {
			_, err := m.Client().GetService(ctx, "web")
			return err == nil, fmt.Sprint(err)
		})
	}

	// The leader dies; another takes over, and the tasks run on.
	rc.managers[lead].Stop()
	rc.managers[lead] = nil
	newLead := rc.leader()
	if newLead == lead {
		t.Fatal("the stopped manager still leads")
	}
	c = rc.managers[newLead].Client()
	if err := c.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 20*time.Second, "workers to reconnect to the new leader", func() (bool, string) {
		nodes, err := c.ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range nodes {
			if n.Status.State == api.NodeStateReady && n.Spec.Role == api.NodeRoleWorker {
				ready++
			}
		}
		return ready == 2, fmt.Sprintf("%d workers ready", ready)
	})
	for _, tk := range runningTasks(t, c, svc.ID) {
		if !before[tk.ID] {
			t.Fatalf("task %s is new: the failover restarted tasks", tk.ID)
		}
	}
	// The new leader takes writes.
	if _, err := c.ScaleService(ctx, "web", 6); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	// Managers record who leads.
	testutil.EventuallyWhy(t, 10*time.Second, "manager status to name the new leader", func() (bool, string) {
		n, err := c.GetNode(ctx, rc.ids[newLead])
		if err != nil || n.ManagerStatus == nil {
			return false, fmt.Sprint(err)
		}
		return n.ManagerStatus.Leader, fmt.Sprintf("%+v", *n.ManagerStatus)
	})
}

func runningTasks(t *testing.T, c *swarm.Client, ref string) []*api.Task {
	t.Helper()
	ts, err := c.ListTasks(context.Background(), swarm.TaskFilter{Service: ref, DesiredStates: []api.TaskState{api.TaskStateRunning}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*api.Task
	for _, tk := range ts {
		if tk.Status.State == api.TaskStateRunning {
			out = append(out, tk)
		}
	}
	return out
}
