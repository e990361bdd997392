package orchestrator

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

func secretVersion(id string, n uint64, superseded bool) *api.Secret {
	return &api.Secret{ID: id, Version: n, Superseded: superseded,
		Spec: api.SecretSpec{Annotations: api.Annotations{Name: "db"}, Data: api.SecretBytes("data-" + id)}}
}

func usingSecret(id string) api.TaskSpec {
	return api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"x"}}, Secrets: []api.SecretReference{{SecretID: id, SecretName: "db"}}}
}

func keptVersions(s *store.MemoryStore) []string {
	var out []string
	s.View(func(tx store.ReadTx) {
		all, _ := tx.FindSecrets(store.ByVersionsOf("db"))
		for _, v := range all {
			out = append(out, v.ID)
		}
	})
	slices.Sort(out)
	return out
}

// A superseded version stays while a service's spec or previous spec, or
// a task that has not ended, references it, and goes once none does; the
// newest always stays. The collector's loop follows the events that let
// go of one: a task ending, a service's previous spec moving on, a
// service removed.
func TestVersionCollector(t *testing.T) {
	s := store.NewMemoryStore(nil)
	defer s.Close()
	prev := api.ServiceSpec{Annotations: api.Annotations{Name: "web"}, TaskTemplate: usingSecret("v3")}
	if err := s.Update(func(tx store.Tx) error {
		for i, id := range []string{"v1", "v2", "v3", "v4", "v5", "v6"} {
			if err := tx.CreateSecret(secretVersion(id, uint64(i+1), true)); err != nil {
				return err
			}
		}
		return firstErr(
			tx.CreateSecret(secretVersion("v7", 7, false)),
			tx.CreateService(&api.Service{ID: "web", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "web"}, TaskTemplate: usingSecret("v2")}, PreviousSpec: &prev}),
			tx.CreateService(&api.Service{ID: "api", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "api"}, TaskTemplate: usingSecret("v1")}}),
			tx.CreateTask(&api.Task{ID: "running", ServiceID: "old", Slot: 1, Spec: usingSecret("v4"), Status: api.TaskStatus{State: api.TaskStateRunning}}),
			tx.CreateTask(&api.Task{ID: "ended", ServiceID: "old", Slot: 2, Spec: usingSecret("v5"), Status: api.TaskStatus{State: api.TaskStateFailed}}),
			// Told to stop before it reached a node: it never will.
			tx.CreateTask(&api.Task{ID: "never-ran", ServiceID: "old", Slot: 3, Spec: usingSecret("v6"), DesiredState: api.TaskStateShutdown,
				Status: api.TaskStatus{State: api.TaskStatePending}}),
			// Told to stop on its node: it may still run there.
			tx.CreateTask(&api.Task{ID: "stopping", ServiceID: "old", Slot: 4, Spec: usingSecret("v4"), DesiredState: api.TaskStateShutdown,
				Status: api.TaskStatus{State: api.TaskStateRunning}}),
		)
	}); err != nil {
		t.Fatal(err)
	}
	n, err := CollectVersions(context.Background(), s, VersionKey{api.KindSecret, "db"})
	if err != nil || n != 2 {
		t.Fatalf("collected %d: %v", n, err)
	}
	if got := keptVersions(s); !slices.Equal(got, []string{"v1", "v2", "v3", "v4", "v7"}) {
		t.Fatalf("kept %v", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewVersionCollector(s, nil).Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitKept := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := keptVersions(s)
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kept %v, want %v", got, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	update := func(f func(tx store.Tx) error) {
		t.Helper()
		if err := s.Update(f); err != nil {
			t.Fatal(err)
		}
	}
	update(func(tx store.Tx) error {
		tk := tx.GetTask("running")
		tk.Status.State = api.TaskStateComplete
		return tx.UpdateTask(tk)
	})
	if _, err := CollectVersions(context.Background(), s, VersionKey{api.KindSecret, "db"}); err != nil {
		t.Fatal(err)
	}
	if got := keptVersions(s); !slices.Contains(got, "v4") {
		t.Fatalf("v4 collected while a stopping task runs with it: %v", got)
	}
	update(func(tx store.Tx) error {
		tk := tx.GetTask("stopping")
		tk.Status.State = api.TaskStateShutdown
		return tx.UpdateTask(tk)
	})
	waitKept("v1", "v2", "v3", "v7")
	update(func(tx store.Tx) error {
		svc := tx.GetService("web")
		svc.PreviousSpec = nil
		return tx.UpdateService(svc)
	})
	waitKept("v1", "v2", "v7")
	update(func(tx store.Tx) error { return tx.DeleteService("api") })
	waitKept("v2", "v7")
	update(func(tx store.Tx) error { return tx.DeleteService("web") })
	waitKept("v7")
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
