package swarmtest_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// BenchmarkScaleUp measures how long one replicated service of N tasks
// takes from its creation until every task runs, on 1 manager and 2
// workers (fake executor, 1 s heartbeats, the default period), with and
// without the routing mesh, and the heap after it (the whole cluster is
// in this process). The mesh's cost per change grows with a service's
// tasks (issue 15's notes): this is the figure to bring down.
//
//	go test -run '^$' -bench 'ScaleUp' -benchtime 1x -timeout 30m ./swarm/swarmtest/
func BenchmarkScaleUp(b *testing.B) {
	for _, mesh := range []bool{false, true} {
		for _, n := range []int{10_000, 20_000, 40_000} {
			b.Run(fmt.Sprintf("mesh=%v/tasks=%d", mesh, n), func(b *testing.B) {
				for b.Loop() {
					scaleUp(b, mesh, n)
				}
			})
		}
	}
}

func scaleUp(b *testing.B, mesh bool, n int) {
	c := swarmtest.Start(b, swarmtest.Options{Managers: 1, Workers: 2, HeartbeatPeriod: time.Second, Timeout: 10 * time.Minute,
		Configure: func(name string, cfg *swarm.NodeConfig) {
			if mesh {
				meshOn("")(name, cfg)
			}
		}})
	ctx := context.Background()
	cl := c.Client(c.Leader())
	start := time.Now()
	svc, err := cl.CreateService(ctx, spec("big", int64(n)))
	if err != nil {
		b.Fatal(err)
	}
	c.WaitFor("every task running", func() (bool, string) {
		ts, err := cl.ListTasks(ctx, control.TaskFilter{Service: svc.ID, DesiredStates: []api.TaskState{api.TaskStateRunning}})
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, t := range ts {
			if t.Status.State == api.TaskStateRunning {
				running++
			}
		}
		return running == n, fmt.Sprintf("%d of %d", running, n)
	})
	b.ReportMetric(time.Since(start).Seconds(), "s-to-running")
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc>>20), "heap-MB")
}
