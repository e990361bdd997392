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

// The README's embedding snippet is the code between the markers below,
// byte for byte (TestREADMEEmbeddingSnippet).

// README: begin
func runCluster(ctx context.Context, dataDir string) error {
	mgr, err := swarm.StartManager(ctx, swarm.DefaultManagerConfig())
	if err != nil {
		return err
	}
	defer mgr.Stop()
	exec, err := process.New(process.Config{DataDir: dataDir}) // on Windows: not supported
	if err != nil {
		return err
	}
	defer exec.Close()
	worker, err := swarm.StartWorker(ctx, swarm.WorkerConfig{Manager: mgr.Dispatcher(), Executor: exec})
	if err != nil {
		return err
	}
	defer worker.Kill(ctx) // stops the tasks too; worker.Stop() would leave them running

	client := mgr.Client()
	svc, err := client.CreateService(ctx, api.ServiceSpec{
		Annotations:  api.Annotations{Name: "web"},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 3}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"sleep", "600"}}},
	})
	if err != nil {
		return err // bad input names the field: service "web": replicas: must be >= 0, got -1
	}
	return client.WaitConverged(ctx, svc.ID)
}

// README: end

// A manager and a worker in one program, running a replicated service of
// OS processes (runCluster above).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, _ := os.MkdirTemp("", "apiary-example-")
	defer os.RemoveAll(dir)
	if err := runCluster(ctx, dir); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("converged, then stopped with its tasks")
	// Output: converged, then stopped with its tasks
}
