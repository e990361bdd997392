package allocator_test

import (
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/allocator"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// BenchmarkTaskAddresses is what a release batch (store.MaxChangesPerTransaction
// tasks) spends on addresses: reading which addresses of the network are
// taken from the store (every live task on it) and taking the next free
// ones, beside 1,000 and 10,000 live tasks on a /16.
func BenchmarkTaskAddresses(b *testing.B) {
	for _, live := range []int{1_000, 10_000} {
		b.Run(fmt.Sprint("live=", live), func(b *testing.B) {
			s := store.NewMemoryStore(nil)
			defer s.Close()
			srv := controlapi.New(s, controlapi.Options{})
			if _, err := srv.CreateNetwork(ctx, netSpec("app", "10.8.0.0/16")); err != nil {
				b.Fatal(err)
			}
			svc, err := srv.CreateService(ctx, svcSpec("web", "app"))
			if err != nil {
				b.Fatal(err)
			}
			tasks := make([]*api.Task, live+store.MaxChangesPerTransaction)
			for i := range tasks {
				tasks[i] = taskOf(svc, fmt.Sprint("t", i), uint64(i+1))
			}
			if _, err := s.UpdateInChunks(ctx, live, func(tx store.Tx, lo, hi int) error {
				var err error
				s.ViewShared(func(latest store.ReadTx) {
					sp := allocator.NewSpaces(latest)
					for _, t := range tasks[lo:hi] {
						if t.Networks, err = sp.TaskAttachments(svc, t); err != nil {
							return
						}
						t.Status.State = api.TaskStateRunning
						if err = tx.CreateTask(t); err != nil {
							return
						}
					}
				})
				return err
			}); err != nil {
				b.Fatal(err)
			}
			batch := tasks[live:]
			b.ReportAllocs()
			for b.Loop() {
				s.ViewShared(func(tx store.ReadTx) {
					sp := allocator.NewSpaces(tx)
					for _, t := range batch {
						if _, err := sp.TaskAttachments(svc, t); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}
