package swarm_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// grpcCluster is one manager serving gRPC on loopback and n fake-executor
// workers that reach it only through gRPC.
func grpcCluster(b *testing.B, workers int, heartbeat time.Duration) (*swarm.Manager, []*swarm.Worker) {
	b.Helper()
	log := testutil.DiscardLogger()
	cfg := swarm.DefaultManagerConfig()
	cfg.ClusterSpec.Dispatcher.HeartbeatPeriod = heartbeat
	cfg.Logger = log
	mgr, err := swarm.StartManager(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go mgr.ServeInsecure(l)
	var ws []*swarm.Worker
	for i := 0; i < workers; i++ {
		conn, err := swarm.DialInsecure(l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		w, err := swarm.StartWorker(context.Background(), swarm.WorkerConfig{
			Manager:  dispatcher.NewClient(conn),
			Executor: fake.New(fake.Config{Hostname: fmt.Sprintf("w%d", i)}),
			Logger:   log,
		})
		if err != nil {
			b.Fatal(err)
		}
		ws = append(ws, w)
	}
	b.Cleanup(func() {
		for _, w := range ws {
			w.Stop()
		}
		mgr.Stop()
	})
	return mgr, ws
}

// waitRunning waits until n tasks of the service run, counting from the
// store's events.
func waitRunning(b *testing.B, w *store.Watcher, serviceID string, n int, deadline time.Duration) {
	b.Helper()
	running := map[string]bool{}
	timeout := time.After(deadline)
	for len(running) < n {
		select {
		case ev := <-w.Events():
			t, ok := ev.Object.(*api.Task)
			if !ok || t.ServiceID != serviceID {
				continue
			}
			if t.Status.State == api.TaskStateRunning && t.DesiredState == api.TaskStateRunning {
				running[t.ID] = true
			} else {
				delete(running, t.ID)
			}
		case <-timeout:
			b.Fatalf("only %d of %d tasks running after %v", len(running), n, deadline)
		}
	}
}

// BenchmarkCreate10kReplicasOn1kWorkers: issue 5's scale test. One op is a
// service of 10,000 replicas created on 1,000 workers connected over gRPC,
// until every task is RUNNING. Target: ≤ 10 s (Swarm: 1,000 containers on
// 100 workers in < 2.5 s).
func BenchmarkCreate10kReplicasOn1kWorkers(b *testing.B) {
	mgr, _ := grpcCluster(b, benchWorkers, 0)
	c := mgr.Client()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		w := mgr.Store().Watch(store.ByKinds(api.KindTask))
		spec := sleeper(fmt.Sprintf("big%d", i), int64(benchTasks))
		start := time.Now()
		svc, err := c.CreateService(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		waitRunning(b, w, svc.ID, benchTasks, 5*time.Minute)
		b.ReportMetric(time.Since(start).Seconds(), "s/10k-running")
		w.Close()
		b.StopTimer()
		if err := c.RemoveService(ctx, svc.ID); err != nil {
			b.Fatal(err)
		}
		waitGone(b, c, svc.ID)
		b.StartTimer()
	}
}

func waitGone(b *testing.B, c *swarm.Client, id string) {
	b.Helper()
	testutil.EventuallyWhy(b, 5*time.Minute, "the tasks of "+id+" removed", func() (bool, string) {
		ts, err := c.ListTasks(context.Background(), swarm.TaskFilter{})
		if err != nil {
			return false, err.Error()
		}
		return len(ts) == 0, fmt.Sprintf("%d tasks left", len(ts))
	})
}

// BenchmarkNodeDownToReplacementRunning: from the moment a worker dies to
// the moment its tasks' replacements run elsewhere, with the default
// heartbeat settings (1 s period, grace 3). Target: ≤ 5 s.
func BenchmarkNodeDownToReplacementRunning(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		mgr, ws := grpcCluster(b, 3, 0)
		c := mgr.Client()
		svc, err := c.CreateService(ctx, sleeper("web", 6))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.WaitConverged(ctx, svc.ID); err != nil {
			b.Fatal(err)
		}
		w := mgr.Store().Watch(store.ByKinds(api.KindTask))
		b.StartTimer()
		start := time.Now()
		ws[0].Stop() // the node goes silent; its tasks are lost with it
		replaced := 0
		lost := map[string]bool{}
		ts, _ := c.ListTasks(ctx, swarm.TaskFilter{Service: svc.ID})
		for _, t := range ts {
			if t.NodeID == ws[0].NodeID() && t.DesiredState == api.TaskStateRunning {
				lost[t.ID] = true
			}
		}
		for replaced < len(lost) {
			ev := <-w.Events()
			t, ok := ev.Object.(*api.Task)
			if !ok || t.NodeID == ws[0].NodeID() || t.Status.State != api.TaskStateRunning {
				continue
			}
			if old, _ := ev.Old.(*api.Task); old != nil && old.Status.State == api.TaskStateRunning {
				continue
			}
			replaced++
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/replaced")
		b.StopTimer()
		w.Close()
		b.StartTimer()
	}
}

// The scale of BenchmarkCreate10kReplicasOn1kWorkers (variables so a
// profile can be taken at a smaller scale).
var benchWorkers, benchTasks = 1000, 10000
