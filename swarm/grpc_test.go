package swarm_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// TestClusterOverGRPC runs workers and a client that reach the manager only
// through its gRPC services on loopback.
func TestClusterOverGRPC(t *testing.T) {
	cfg := swarm.DefaultManagerConfig()
	cfg.ClusterSpec.Dispatcher.HeartbeatPeriod = 100 * time.Millisecond
	cfg.Logger = quietLogger()
	mgr, err := swarm.StartManager(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- mgr.ServeInsecure(l) }()
	addr := l.Addr().String()

	var workers []*swarm.Worker
	for i := 0; i < 2; i++ {
		conn, err := swarm.DialInsecure(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		w, err := swarm.StartWorker(context.Background(), swarm.WorkerConfig{
			Manager:  dispatcher.NewClient(conn),
			Executor: fake.New(fake.Config{Hostname: "remote"}),
			Logger:   quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		workers = append(workers, w)
	}

	c, closeConn, err := swarm.DialClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	svc, err := c.CreateService(ctx, sleeper("remote", 4))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.ListNodes(ctx)
	if err != nil || len(nodes) != 2 {
		t.Fatalf("nodes over gRPC: %d, %v", len(nodes), err)
	}
	tasks, err := c.ListTasks(ctx, swarm.TaskFilter{Service: "remote", DesiredStates: []api.TaskState{api.TaskStateRunning}})
	if err != nil || len(tasks) != 4 {
		t.Fatalf("tasks over gRPC: %d, %v", len(tasks), err)
	}
	for _, tk := range tasks {
		if tk.Status.State != api.TaskStateRunning {
			t.Fatalf("task %s %s", tk.ID, tk.Status.State)
		}
	}

	// Errors keep their identity across the wire.
	if _, err := c.CreateService(ctx, sleeper("bad", -1)); !errors.Is(err, controlapi.ErrInvalidArgument) || !strings.Contains(err.Error(), "replicas: must be >= 0, got -1") {
		t.Fatalf("invalid spec over gRPC: %v", err)
	}
	if _, err := c.GetService(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("not found over gRPC: %v", err)
	}
	if _, err := c.CreateService(ctx, sleeper("remote", 1)); !errors.Is(err, store.ErrNameConflict) {
		t.Fatalf("name conflict over gRPC: %v", err)
	}
	if _, err := c.UpdateService(ctx, svc.ID, svc.Meta.Version-1, svc.Spec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale version over gRPC: %v", err)
	}
	if _, err := dispatcher.NewClient(mustDial(t, addr)).Heartbeat(ctx, &dispatcher.HeartbeatRequest{NodeID: "x", SessionID: "y"}); !errors.Is(err, dispatcher.ErrSessionInvalid) {
		t.Fatalf("bad session over gRPC: %v", err)
	}

	if _, err := c.ScaleService(ctx, "remote", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	mgr.Stop()
	if err := <-served; err != nil {
		t.Fatalf("Serve after Stop: %v", err)
	}
}

func mustDial(t *testing.T, addr string) *grpc.ClientConn {
	conn, err := swarm.DialInsecure(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
