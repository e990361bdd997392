package store

import (
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

func shareService() *api.Service {
	return &api.Service{ID: "svc", Spec: api.ServiceSpec{
		Annotations: api.Annotations{Name: "web", Labels: map[string]string{"tier": "front"}},
		TaskTemplate: api.TaskSpec{
			Process:   &api.ProcessSpec{Command: []string{"app", "--port", "80"}},
			Placement: &api.Placement{Constraints: []string{"node.role==worker"}},
		},
	}}
}

// taskOf makes a task of s with its own copy of the template, as a
// decoded entry or the orchestrator's copied service would give it.
func taskOf(s *api.Service, id string) *api.Task {
	c := s.Copy()
	return &api.Task{ID: id, ServiceID: s.ID, ServiceAnnotations: c.Spec.Annotations, Spec: c.Spec.TaskTemplate,
		DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: api.TaskStateNew}}
}

// stored returns the stored (shared) service and task.
func stored(s *MemoryStore, taskID string) (svc *api.Service, task *api.Task) {
	s.ViewShared(func(tx ReadTx) {
		svc, task = tx.GetService("svc"), tx.GetTask(taskID)
	})
	return svc, task
}

// A task stored with its service's template shares it, on the manager
// that wrote it, on one that decoded the entry and in a restored snapshot;
// a status update keeps sharing; a task with another spec keeps its own;
// and no reader can tell.
func TestTasksShareTheirServiceTemplate(t *testing.T) {
	_, rs := newReplicated(t, 2)
	direct := NewMemoryStore(nil)
	t.Cleanup(direct.Close)
	for _, s := range []*MemoryStore{direct, rs[0]} {
		svc := shareService()
		mustUpdate(t, s, func(tx Tx) error {
			if err := tx.CreateService(svc); err != nil {
				return err
			}
			other := taskOf(svc, "other")
			other.Spec.Process.Command = []string{"app", "--port", "81"}
			if err := tx.CreateTask(other); err != nil {
				return err
			}
			return tx.CreateTask(taskOf(svc, "t1")) // in the service's transaction
		})
		mustUpdate(t, s, func(tx Tx) error { return tx.CreateTask(taskOf(svc, "t2")) }) // in a later one
	}
	stores := map[string]*MemoryStore{"direct": direct, "proposer": rs[0], "follower": rs[1]}
	stores["restored"] = restored(t, save(t, rs[1]))
	check := func(when string) {
		t.Helper()
		for name, s := range stores {
			for _, id := range []string{"t1", "t2"} {
				svc, task := stored(s, id)
				if task.Spec.Process != svc.Spec.TaskTemplate.Process || task.Spec.Placement != svc.Spec.TaskTemplate.Placement {
					t.Errorf("%s, %s: task %s holds a copy of its service's template", when, name, id)
				}
				if len(task.ServiceAnnotations.Labels) != 1 || task.ServiceAnnotations.Labels["tier"] != "front" {
					t.Errorf("%s, %s: task %s has labels %v", when, name, id, task.ServiceAnnotations.Labels)
				}
			}
			svc, other := stored(s, "other")
			if other.Spec.Process == svc.Spec.TaskTemplate.Process {
				t.Errorf("%s, %s: a task with another command shares the template's", when, name)
			}
			if got := other.Spec.Process.Command[2]; got != "81" {
				t.Errorf("%s, %s: the other task's port is %s", when, name, got)
			}
		}
	}
	check("created")

	// A status update decodes (or copies) the whole task again.
	for _, s := range []*MemoryStore{direct, rs[0]} {
		mustUpdate(t, s, func(tx Tx) error {
			task := tx.GetTask("t1")
			task.Status.State = api.TaskStateRunning
			return tx.UpdateTask(task)
		})
	}
	check("after a status update")

	// A copy read is the reader's own: changing it changes nothing stored.
	var read *api.Task
	direct.View(func(tx ReadTx) { read = tx.GetTask("t1") })
	read.Spec.Process.Command[0] = "changed"
	read.Spec.Placement.Constraints = nil
	svc, _ := stored(direct, "t2")
	if svc.Spec.TaskTemplate.Process.Command[0] != "app" || len(svc.Spec.TaskTemplate.Placement.Constraints) != 1 {
		t.Fatalf("changing a task read changed the service: %+v", svc.Spec.TaskTemplate)
	}

	// A new template leaves the tasks with the one they were made from.
	for _, s := range []*MemoryStore{direct, rs[0]} {
		mustUpdate(t, s, func(tx Tx) error {
			svc := tx.GetService("svc")
			svc.Spec.TaskTemplate.Process.Command = []string{"app2"}
			return tx.UpdateService(svc)
		})
	}
	for name, s := range stores {
		if name == "restored" {
			continue
		}
		_, task := stored(s, "t1")
		if got := task.Spec.Process.Command; len(got) != 3 || got[0] != "app" {
			t.Errorf("%s: after the service's update the task's command is %v", name, got)
		}
	}
}
