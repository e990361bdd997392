package swarm_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

// A manager and a worker in one program, running a replicated service of
// OS processes.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mgr, err := swarm.StartManager(ctx, swarm.DefaultManagerConfig())
	if err != nil {
		panic(err)
	}
	defer mgr.Stop()

	dir, _ := os.MkdirTemp("", "apiary-example-")
	defer os.RemoveAll(dir)
	cfg := process.DefaultConfig()
	cfg.DataDir = dir
	exec, err := process.New(cfg)
	if err != nil {
		panic(err)
	}
	defer exec.Close()
	worker, err := swarm.StartWorker(ctx, swarm.WorkerConfig{Manager: mgr.Dispatcher(), Executor: exec})
	if err != nil {
		panic(err)
	}
	defer worker.Kill(ctx)

	client := mgr.Client()
	svc, err := client.CreateService(ctx, api.ServiceSpec{
		Annotations:  api.Annotations{Name: "sleepy"},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 3}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"sleep", "600"}}},
	})
	if err != nil {
		panic(err)
	}
	if err := client.WaitConverged(ctx, svc.ID); err != nil {
		panic(err)
	}
	p, _ := client.ServiceProgress(ctx, "sleepy")
	fmt.Printf("%d/%d running\n", p.Running, p.Desired)
	// Output: 3/3 running
}
