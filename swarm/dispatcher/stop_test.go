package dispatcher_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// TestUpdateTaskStatusReturnsWhenRunStops: reports in flight while the
// dispatcher stops must not wait forever for a writer that is gone, even
// when the caller's context has no deadline.
func TestUpdateTaskStatusReturnsWhenRunStops(t *testing.T) {
	for round := range 20 {
		s := store.NewMemoryStore(nil)
		if err := s.Update(func(tx store.Tx) error {
			n := readyNodeObj("a")
			n.Status.State = api.NodeStateDown
			if err := tx.CreateNode(n); err != nil {
				return err
			}
			return tx.CreateTask(mkTask("t", "a", api.TaskStateAssigned))
		}); err != nil {
			t.Fatal(err)
		}
		h := &harness{t: t, s: s, d: dispatcher.New(s, config(0).Config)}
		h.start()
		sess := h.register("a", "a")
		var wg sync.WaitGroup
		var calls atomic.Int64
		stop := make(chan struct{})
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := &dispatcher.UpdateTaskStatusRequest{NodeID: sess.NodeID, SessionID: sess.SessionID,
					Updates: []dispatcher.TaskStatusUpdate{{TaskID: "t", Status: api.TaskStatus{State: api.TaskStateRunning}}}}
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := h.d.UpdateTaskStatus(context.Background(), req); err != nil {
						return // not running any more
					}
					calls.Add(1)
				}
			}()
		}
		// Stop at a different point of the traffic each round.
		testutil.EventuallyWhy(t, 5*time.Second, "reports to flow", func() (bool, string) {
			return calls.Load() > int64(round*3), "not yet"
		})
		h.stop()
		close(stop)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: UpdateTaskStatus calls still blocked 5s after Run returned", round)
		}
		s.Close()
	}
}
