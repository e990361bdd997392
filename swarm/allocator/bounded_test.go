package allocator_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// Many waiting services are allocated over several passes of bounded
// transactions, and many NEW tasks released in bounded transactions: every
// one gets there, and no transaction holds more than the store's bound.
func TestManyServicesAndTasksAllocatedInBoundedTransactions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const services, tasks = 50, 2500
		var objs []any
		for i := range services {
			objs = append(objs, service(fmt.Sprintf("s%02d", i), ports(ingress(80, 0))))
		}
		for i := range tasks {
			objs = append(objs, newTask(fmt.Sprintf("t%05d", i), fmt.Sprintf("s%02d", i%services)))
		}
		h := run(t, create(objs...))
		testutil.EventuallyWhy(t, 20*time.Second, "every service allocated and every task pending", func() (bool, string) {
			alloc, pending := 0, 0
			h.s.View(func(tx store.ReadTx) {
				ss, _ := tx.FindServices(store.All)
				for _, s := range ss {
					if s.Endpoint != nil {
						alloc++
					}
				}
				ts, _ := tx.FindTasks(store.All)
				for _, tk := range ts {
					if tk.Status.State == api.TaskStatePending && tk.Endpoint != nil {
						pending++
					}
				}
			})
			return alloc == services && pending == tasks, fmt.Sprintf("%d services allocated, %d tasks pending", alloc, pending)
		})
		perVersion := map[uint64]int{}
		seen := map[uint32]bool{}
		h.s.View(func(tx store.ReadTx) {
			ts, _ := tx.FindTasks(store.All)
			for _, tk := range ts {
				perVersion[tk.Meta.Version]++
			}
			ss, _ := tx.FindServices(store.All)
			for _, s := range ss {
				for _, p := range s.Endpoint.Ports {
					if seen[p.PublishedPort] {
						t.Errorf("port %d allocated twice", p.PublishedPort)
					}
					seen[p.PublishedPort] = true
				}
			}
		})
		for v, n := range perVersion {
			if n > store.MaxChangesPerTransaction {
				t.Fatalf("one transaction (version %d) released %d tasks, above %d", v, n, store.MaxChangesPerTransaction)
			}
		}
	})
}
