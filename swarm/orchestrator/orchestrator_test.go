package orchestrator

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// playWorkers moves the store's tasks as workers would, until ctx ends:
// wanted tasks run, unwanted ones stop.
func playWorkers(ctx context.Context, s *store.MemoryStore) {
	for ctx.Err() == nil {
		_ = s.Update(func(tx store.Tx) error {
			tasks, err := tx.FindTasks(store.All)
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			for _, t := range tasks {
				var next api.TaskStatus
				switch {
				case t.Status.State.Terminal():
					continue
				case t.DesiredState > api.TaskStateRunning:
					next = api.TaskStatus{State: api.TaskStateShutdown, ContainerStatus: t.Status.ContainerStatus}
				case t.DesiredState == api.TaskStateRunning && t.Status.State < api.TaskStateRunning:
					next = api.TaskStatus{State: api.TaskStateRunning, ContainerStatus: &api.ContainerStatus{PID: 1, StartedAt: now}}
				case t.DesiredState == api.TaskStateReady && t.Status.State < api.TaskStateReady:
					next = api.TaskStatus{State: api.TaskStateReady}
				default:
					continue
				}
				next.Timestamp = now
				t.NodeID = "n1"
				t.Status = next
				if err := tx.UpdateTask(t); err != nil {
					return err
				}
			}
			return nil
		})
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func startOrchestrator(s *store.MemoryStore) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	o := New(s, testutil.DiscardLogger())
	go func() { defer close(done); _ = o.Run(ctx) }()
	return func() { cancel(); <-done }
}

// waitStore waits until cond holds on the store. Inside a synctest bubble
// its sleeps run the fake clock, so the deadline is of fake time.
func waitStore(t *testing.T, s *store.MemoryStore, what string, cond func(tx store.ReadTx) (bool, string)) {
	t.Helper()
	testutil.EventuallyWhy(t, time.Minute, what, func() (ok bool, why string) {
		s.View(func(tx store.ReadTx) { ok, why = cond(tx) })
		return ok, why
	})
}

// TestNewLeaderResumesRolloutMidBatch stops the orchestrator in the middle
// of a stop-first batch (the old task told to stop, its successor held) and
// starts another on the same store: it resumes from the store alone,
// without duplicating or losing a replacement. The workers, the update's
// delays and the waits run on synctest's fake clock.
func TestNewLeaderResumesRolloutMidBatch(t *testing.T) {
	synctest.Test(t, testNewLeaderResumesRolloutMidBatch)
}

func testNewLeaderResumesRolloutMidBatch(t *testing.T) {
	s := store.NewMemoryStore(nil)
	defer s.Close()
	if err := s.Update(func(tx store.Tx) error {
		return tx.CreateNode(readyNode("n1"))
	}); err != nil {
		t.Fatal(err)
	}
	svc := replicated("web", 4)
	svc.Spec.UpdateConfig = &api.UpdateConfig{Parallelism: 1, Delay: 50 * time.Millisecond, Monitor: 20 * time.Millisecond, Order: api.UpdateOrderStopFirst}
	if err := s.Update(func(tx store.Tx) error { return tx.CreateService(svc) }); err != nil {
		t.Fatal(err)
	}
	stop := startOrchestrator(s)
	wctx, stopWorkers := context.WithCancel(context.Background())
	workersDone := make(chan struct{})
	go func() { defer close(workersDone); playWorkers(wctx, s) }()
	running := func(tx store.ReadTx, cmd string) int {
		ts, _ := tx.FindTasks(store.ByServiceID(svc.ID))
		n := 0
		for _, tk := range ts {
			if runnable(tk) && tk.Status.State == api.TaskStateRunning && tk.Spec.Process.Command[1] == cmd {
				n++
			}
		}
		return n
	}
	waitStore(t, s, "4 tasks running", func(tx store.ReadTx) (bool, string) { n := running(tx, "v1"); return n == 4, fmt.Sprint(n) })

	// Update, and pause the workers so the first batch stays in flight.
	stopWorkers()
	<-workersDone
	if err := s.Update(func(tx store.Tx) error {
		cur := tx.GetService(svc.ID)
		prev := cur.Spec.Copy()
		cur.PreviousSpec = &prev
		cur.Spec.TaskTemplate.Process.Command = []string{"app", "v2"}
		cur.SpecVersion++
		cur.UpdateStatus = nil
		return tx.UpdateService(cur)
	}); err != nil {
		t.Fatal(err)
	}
	waitStore(t, s, "the first batch made", func(tx store.ReadTx) (bool, string) {
		ts, _ := tx.FindTasks(store.ByServiceID(svc.ID))
		for _, tk := range ts {
			if tk.Spec.Process.Command[1] == "v2" && tk.DesiredState == api.TaskStateReady {
				return true, ""
			}
		}
		return false, "no held successor"
	})
	stop() // the leader is gone mid-batch

	// A new leader, and the workers again.
	stop = startOrchestrator(s)
	defer stop()
	wctx, stopWorkers = context.WithCancel(context.Background())
	defer stopWorkers()
	go playWorkers(wctx, s)
	waitStore(t, s, "the update to complete", func(tx store.ReadTx) (bool, string) {
		u := tx.GetService(svc.ID).UpdateStatus
		return u.GetState() == api.UpdateStateCompleted && running(tx, "v2") == 4, fmt.Sprintf("%+v, %d v2 running", u, running(tx, "v2"))
	})
	s.View(func(tx store.ReadTx) {
		ts, _ := tx.FindTasks(store.ByServiceID(svc.ID))
		perSlot := map[uint64]int{}
		for _, tk := range ts {
			if tk.Spec.Process.Command[1] == "v2" {
				perSlot[tk.Slot]++
			}
		}
		if fmt.Sprint(perSlot) != "map[1:1 2:1 3:1 4:1]" {
			t.Fatalf("v2 tasks per slot %v: a replacement was duplicated or lost across the leader change", perSlot)
		}
	})
}
