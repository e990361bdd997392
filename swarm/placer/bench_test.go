package placer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/placer"
)

// benchmarkSchedulerStore is the workload swarmkit's BenchmarkScheduler*
// measures, end to end through the store: one transaction creates the ready
// nodes and the pending tasks of one service; the clock stops when the store
// shows every task ASSIGNED (scheduling, write-back and events included).
func benchmarkSchedulerStore(b *testing.B, nodes, tasks int) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := store.NewMemoryStore(nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- placer.New(s, nil, log).Run(ctx) }()
		w := s.Watch(store.ByKinds(api.KindTask), store.ByActions(store.ActionUpdate))
		b.StartTimer()

		err := s.Update(func(tx store.Tx) error {
			for n := 0; n < nodes; n++ {
				if err := tx.CreateNode(&api.Node{
					ID:     fmt.Sprintf("node-%06d", n),
					Spec:   api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
					Status: api.NodeStatus{State: api.NodeStateReady},
					Description: &api.NodeDescription{Hostname: fmt.Sprintf("host-%d", n), Executor: "fake",
						Platform:  api.Platform{OS: "linux", Architecture: "amd64"},
						Resources: api.Resources{NanoCPUs: 16e9, MemoryBytes: 64 << 30}},
				}); err != nil {
					return err
				}
			}
			for t := 0; t < tasks; t++ {
				if err := tx.CreateTask(&api.Task{
					ID: fmt.Sprintf("task-%07d", t), ServiceID: "svc", Slot: uint64(t + 1), SpecVersion: 1,
					Spec:         api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
					DesiredState: api.TaskStateRunning,
					Status:       api.TaskStatus{State: api.TaskStatePending},
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		assigned := 0
		for assigned < tasks {
			ev := <-w.Events()
			if t, ok := ev.Object.(*api.Task); ok && t.Status.State == api.TaskStateAssigned {
				if old, _ := ev.Old.(*api.Task); old == nil || old.Status.State != api.TaskStateAssigned {
					assigned++
				}
			}
		}

		b.StopTimer()
		w.Close()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(tasks)*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

func BenchmarkSchedulerStore1kNodes1kTasks(b *testing.B)   { benchmarkSchedulerStore(b, 1000, 1000) }
func BenchmarkSchedulerStore1kNodes100kTasks(b *testing.B) { benchmarkSchedulerStore(b, 1000, 100000) }
func BenchmarkSchedulerStore10kNodes100kTasks(b *testing.B) {
	benchmarkSchedulerStore(b, 10000, 100000)
}
func BenchmarkSchedulerStore100kNodes100kTasks(b *testing.B) {
	benchmarkSchedulerStore(b, 100000, 100000)
}
