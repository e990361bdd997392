package controlapi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// readyNode adds a ready, active node with cpus CPUs and labels.
func readyNode(t *testing.T, s *store.MemoryStore, id string, cpus int64, labels map[string]string) {
	t.Helper()
	mustUpdate(t, s, func(tx store.Tx) error {
		return tx.CreateNode(&api.Node{ID: id,
			Spec:        api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive, Annotations: api.Annotations{Labels: labels}},
			Status:      api.NodeStatus{State: api.NodeStateReady},
			Description: &api.NodeDescription{Hostname: "host-" + id, Resources: api.Resources{NanoCPUs: cpus * 1e9, MemoryBytes: 1 << 30}}})
	})
}

// A dry run writes nothing (the store's index does not move) and answers
// from the scheduler: a constraint no node meets leaves every task
// unplaced with the scheduler's reason; a spread places them over the
// label's values; an update plans replacements of the running tasks.
func TestPlanServiceWritesNothing(t *testing.T) {
	srv, s := newServer(t)
	readyNode(t, s, "n1", 2, map[string]string{"zone": "a"})
	readyNode(t, s, "n2", 2, map[string]string{"zone": "b"})
	idx := s.Index()
	sp := spec("web", 4)
	sp.TaskTemplate.Placement = &api.Placement{Preferences: []api.PlacementPreference{{Spread: &api.SpreadOver{SpreadDescriptor: "node.labels.zone"}}}}
	p, err := srv.PlanService(ctx, "", sp)
	if err != nil {
		t.Fatal(err)
	}
	if s.Index() != idx {
		t.Fatalf("the dry run moved the store from %d to %d", idx, s.Index())
	}
	per := map[string]int{}
	for _, c := range p.Create {
		per[c.NodeHostname]++
	}
	if len(p.Create) != 4 || per["host-n1"] != 2 || per["host-n2"] != 2 || p.ServiceID != "" || p.Mode != "replicated" {
		t.Fatalf("plan %+v, per node %v", p, per)
	}

	sp.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.labels.zone==c"}}
	p, err = srv.PlanService(ctx, "", sp)
	if err != nil {
		t.Fatal(err)
	}
	if p.Unplaced != 4 || !strings.HasPrefix(p.Create[0].Reason, "no suitable node (") || !strings.Contains(p.Create[0].Reason, "node.labels.zone==c") {
		t.Fatalf("unplaceable plan %+v", p)
	}

	// An update of a service whose tasks run: every slot replaced.
	svc := mustCreate(t, srv, spec("api", 2))
	mustUpdate(t, s, func(tx store.Tx) error {
		for i, slot := range []uint64{1, 2} {
			t := &api.Task{ID: api.NewID(), ServiceID: svc.ID, Slot: slot, Name: "api." + string(rune('1'+i)), NodeID: "n1",
				Spec: svc.Spec.TaskTemplate, SpecVersion: svc.SpecVersion, DesiredState: api.TaskStateRunning,
				Status: api.TaskStatus{State: api.TaskStateRunning}}
			if err := tx.CreateTask(t); err != nil {
				return err
			}
		}
		return nil
	})
	idx = s.Index()
	up := svc.Spec.Copy()
	up.TaskTemplate.Process.Command = []string{"app", "v2"}
	p, err = srv.PlanService(ctx, "api", up)
	if err != nil {
		t.Fatal(err)
	}
	if s.Index() != idx {
		t.Fatal("the update's dry run wrote")
	}
	if len(p.Replace) != 2 || p.Replace[0].OldNodeID != "n1" || p.Replace[0].NodeID == "" || p.ServiceID != svc.ID || p.UpdateState != api.UpdateStateCompleted {
		t.Fatalf("update plan %+v", p)
	}
	// Bad input answers as the write would, naming the field.
	bad := spec("bad", -1)
	if _, err := srv.PlanService(ctx, "", bad); !errors.Is(err, controlapi.ErrInvalidArgument) || !strings.Contains(err.Error(), "replicas") {
		t.Fatalf("negative replicas: %v", err)
	}
	if _, err := srv.PlanService(ctx, "nosuch", spec("nosuch", 1)); !errors.Is(err, controlapi.ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
	if s.Index() != idx {
		t.Fatal("a refused dry run wrote")
	}
}
