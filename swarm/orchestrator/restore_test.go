package orchestrator

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// A restore of the store (a raft snapshot installed) replaces the state
// without an event per object: the loop reads the new state again and
// reconciles every service of it from that state alone, and goes on with
// the events that follow.
func TestRestoreReconcilesEveryService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		create := func(s *store.MemoryStore, svcs ...*api.Service) {
			t.Helper()
			if err := s.Update(func(tx store.Tx) error {
				for _, svc := range svcs {
					if err := tx.CreateService(svc); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		// slots lists a service's wanted tasks as slot:command.
		slots := func(s *store.MemoryStore, id string) []string {
			var out []string
			s.View(func(tx store.ReadTx) {
				ts, _ := tx.FindTasks(store.ByServiceID(id))
				for _, tk := range ts {
					if runnable(tk) {
						out = append(out, fmt.Sprintf("%d:%s", tk.Slot, tk.Spec.Process.Command[1]))
					}
				}
			})
			slices.Sort(out)
			return out
		}
		check := func(s *store.MemoryStore, what, id string, want ...string) {
			t.Helper()
			if got := slots(s, id); !slices.Equal(got, want) {
				t.Fatalf("%s: %s has tasks %q, want %q", what, id, got, want)
			}
		}

		// The snapshot: web at 3 replicas of v2 and api at 1, no tasks yet.
		other := store.NewMemoryStore(nil)
		defer other.Close()
		web := replicated("web", 3)
		web.Spec.TaskTemplate.Process.Command = []string{"app", "v2"}
		create(other, web, replicated("api", 1))
		var snap bytes.Buffer
		if err := other.Save(&snap); err != nil {
			t.Fatal(err)
		}

		// Before: web at 1 replica of v1, and old at 2.
		s := store.NewMemoryStore(nil)
		defer s.Close()
		create(s, replicated("web", 1), replicated("old", 2))
		stop := startOrchestrator(s)
		defer stop()
		synctest.Wait()
		check(s, "before", "svc-web", "1:v1")
		check(s, "before", "svc-old", "1:v1", "2:v1")

		if err := s.Restore(&snap); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// Web gets all 3 slots: its task of the old state is not counted.
		check(s, "after the restore", "svc-web", "1:v2", "2:v2", "3:v2")
		check(s, "after the restore", "svc-api", "1:v1")
		check(s, "after the restore", "svc-old")

		if err := s.Update(func(tx store.Tx) error {
			cur := tx.GetService("svc-api")
			cur.Spec.Mode.Replicated.Replicas = 2
			cur.SpecVersion++
			return tx.UpdateService(cur)
		}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		check(s, "api scaled after the restore", "svc-api", "1:v1", "2:v1")
	})
}
