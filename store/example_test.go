package store_test

import (
	"errors"
	"fmt"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// A transaction creates a service and its task at once; a second one that
// read a stale version is refused; reads see a consistent snapshot.
func ExampleMemoryStore_Update() {
	s := store.NewMemoryStore(nil) // nil: no raft, commits apply at once
	defer s.Close()

	err := s.Update(func(tx store.Tx) error {
		svc := &api.Service{ID: "svc1", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "web"}}}
		if err := tx.CreateService(svc); err != nil {
			return err
		}
		return tx.CreateTask(&api.Task{ID: "task1", ServiceID: "svc1", Slot: 1})
	})
	if err != nil {
		fmt.Println(err)
	}

	var stale *api.Service
	s.View(func(tx store.ReadTx) { stale = tx.GetService("svc1") })
	rename := func(name string) error {
		return s.Update(func(tx store.Tx) error {
			svc := stale.Copy()
			svc.Spec.Annotations.Name = name
			return tx.UpdateService(svc)
		})
	}
	fmt.Println("first rename:", rename("www"))
	// The first rename bumped the stored version: this writer's copy is old.
	fmt.Println("second rename conflicts:", errors.Is(rename("w3"), store.ErrConflict))

	s.View(func(tx store.ReadTx) {
		tasks, _ := tx.FindTasks(store.ByServiceID("svc1"))
		fmt.Println(tx.GetService("svc1").Spec.Annotations.Name, len(tasks), "task")
	})
	// Output:
	// first rename: <nil>
	// second rename conflicts: true
	// www 1 task
}

// A watcher receives every change in commit order, each transaction ended
// by a commit event; filters pick what it cares about.
func ExampleMemoryStore_Watch() {
	s := store.NewMemoryStore(nil)
	defer s.Close()
	w := s.Watch(
		store.ByKinds(api.KindTask, api.KindService),
		store.ByActions(store.ActionCreate, store.ActionUpdate, store.ActionCommit),
	)
	defer w.Close()

	err := s.Update(func(tx store.Tx) error {
		if err := tx.CreateService(&api.Service{ID: "svc1", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "web"}}}); err != nil {
			return err
		}
		return tx.CreateTask(&api.Task{ID: "task1", ServiceID: "svc1", Slot: 1})
	})
	if err != nil {
		fmt.Println(err)
	}
	err = s.Update(func(tx store.Tx) error {
		t := tx.GetTask("task1")
		t.Status.State = api.TaskStateRunning
		return tx.UpdateTask(t)
	})
	if err != nil {
		fmt.Println(err)
	}

	for commits := 0; commits < 2; {
		ev := <-w.Events()
		switch ev.Action {
		case store.ActionCommit:
			fmt.Println("commit", ev.Version)
			commits++
		case store.ActionUpdate:
			fmt.Println(ev.Action, ev.Kind(), ev.Object.GetID(), ev.Old.(*api.Task).Status.State, "->", ev.Object.(*api.Task).Status.State)
		default:
			fmt.Println(ev.Action, ev.Kind(), ev.Object.GetID())
		}
	}
	// Output:
	// create service svc1
	// create task task1
	// commit 1
	// update task task1 new -> running
	// commit 2
}
