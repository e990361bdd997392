package swarm_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

// A cluster as apiaryd builds one, in one process: a manager initialises
// it (root CA, its certificate, a one-member raft group) and a worker joins
// with the worker token; they talk mutual TLS over 127.0.0.1. The fake
// executor runs the tasks in memory.
func ExampleInitNode() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, _ := os.MkdirTemp("", "apiary-example-")
	defer os.RemoveAll(dir)
	nodeConfig := func(name string) swarm.NodeConfig {
		cfg := swarm.DefaultNodeConfig()
		cfg.DataDir = filepath.Join(dir, name)
		cfg.ListenAddr = freeLoopbackAddr()
		cfg.Executor = fake.New(fake.Config{Hostname: name})
		cfg.Logger = slog.New(slog.DiscardHandler)
		return cfg
	}

	mcfg := nodeConfig("m1")
	m1, err := swarm.InitNode(ctx, mcfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m1.Stop()
	client := m1.Manager().Client()
	cluster, err := client.GetCluster(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	w1, err := swarm.JoinNode(ctx, nodeConfig("w1"), cluster.JoinTokens.Worker, []string{mcfg.ListenAddr})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w1.Stop() // Stop leaves the tasks running; Worker().Kill stops them too
	fmt.Println("m1:", m1.Role(), "w1:", w1.Role())

	svc, err := client.CreateService(ctx, api.ServiceSpec{
		Annotations:  api.Annotations{Name: "web"},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 4}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"web"}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := client.WaitConverged(ctx, svc.ID); err != nil {
		fmt.Println(err)
		return
	}
	p, err := client.ServiceProgress(ctx, "web")
	if err != nil {
		fmt.Println(err)
		return
	}
	nodes, _ := client.ListNodes(ctx)
	fmt.Printf("web: %d/%d running on a cluster of %d nodes\n", p.Running, p.Desired, len(nodes))
	// Output:
	// m1: manager w1: worker
	// web: 4/4 running on a cluster of 2 nodes
}

// freeLoopbackAddr returns a loopback address with a port free right now.
func freeLoopbackAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
