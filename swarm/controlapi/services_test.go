package controlapi_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

var ctx = context.Background()

func newServer(t *testing.T) (*controlapi.Server, *store.MemoryStore) {
	t.Helper()
	s := store.NewMemoryStore(nil)
	t.Cleanup(s.Close)
	return controlapi.New(s, controlapi.Options{}), s
}

func mustUpdate(t *testing.T, s *store.MemoryStore, f func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(f); err != nil {
		t.Fatal(err)
	}
}

func spec(name string, replicas int64) api.ServiceSpec {
	return api.ServiceSpec{
		Annotations:  api.Annotations{Name: name},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: replicas}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
	}
}

func globalSpec(name string) api.ServiceSpec {
	s := spec(name, 0)
	s.Mode = api.ServiceMode{Global: &api.GlobalService{}}
	return s
}

func withPorts(s api.ServiceSpec, ps ...api.PortConfig) api.ServiceSpec {
	s.EndpointSpec = &api.EndpointSpec{Ports: ps}
	return s
}

func tcp(published uint32) api.PortConfig {
	return api.PortConfig{TargetPort: 80, PublishedPort: published}
}

func mustCreate(t *testing.T, srv *controlapi.Server, s api.ServiceSpec) *api.Service {
	t.Helper()
	svc, err := srv.CreateService(ctx, s)
	if err != nil {
		t.Fatalf("create %s: %v", s.Name, err)
	}
	return svc
}

// invalidNaming checks that err is an invalid-argument error naming every
// one of words.
func invalidNaming(t *testing.T, err error, words ...string) {
	t.Helper()
	if !errors.Is(err, controlapi.ErrInvalidArgument) {
		t.Errorf("err = %v, want ErrInvalidArgument", err)
		return
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

func TestCreateServiceAppliesDefaultsAndStores(t *testing.T) {
	srv, s := newServer(t)
	in := spec("web", 3)
	in.Mode = api.ServiceMode{} // no mode: Docker's default
	svc := mustCreate(t, srv, in)
	if svc.ID == "" || svc.SpecVersion != 1 || svc.Meta.Version == 0 {
		t.Errorf("created service = %+v", svc)
	}
	if svc.Spec.Mode.Replicated == nil || svc.Spec.Mode.Replicated.Replicas != api.DefaultReplicas {
		t.Errorf("mode = %+v, want the default of 1 replica", svc.Spec.Mode)
	}
	if svc.Spec.UpdateConfig == nil || svc.Spec.EndpointSpec == nil || svc.Spec.EndpointSpec.Mode != api.ResolutionModeVIP {
		t.Errorf("defaults not applied: %+v", svc.Spec)
	}
	if in.UpdateConfig != nil || in.EndpointSpec != nil {
		t.Error("CreateService changed the caller's spec")
	}
	var stored *api.Service
	s.View(func(tx store.ReadTx) { stored = tx.GetService(svc.ID) })
	if !reflect.DeepEqual(stored, svc) {
		t.Errorf("returned %+v, stored %+v", svc, stored)
	}
	// Names are unique.
	index := s.Index()
	if _, err := srv.CreateService(ctx, spec("web", 1)); !errors.Is(err, store.ErrNameConflict) {
		t.Errorf("second service named web: err = %v, want ErrNameConflict", err)
	}
	if s.Index() != index {
		t.Error("refused create wrote to the store")
	}
}

func TestInvalidServiceSpecsRefusedAndNothingWritten(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*api.ServiceSpec)
		field string
	}{
		{"negative replicas", func(s *api.ServiceSpec) { s.Mode.Replicated.Replicas = -1 }, "replicas"},
		{"empty name", func(s *api.ServiceSpec) { s.Name = "" }, "name"},
		{"bad name", func(s *api.ServiceSpec) { s.Name = "-web" }, "name"},
		{"no runtime", func(s *api.ServiceSpec) { s.TaskTemplate.Process = nil }, "task_template.runtime"},
		{"two modes", func(s *api.ServiceSpec) { s.Mode.Global = &api.GlobalService{} }, "mode"},
		{"bad constraint", func(s *api.ServiceSpec) {
			s.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.labels.zone"}}
		}, "task_template.placement.constraints[0]"},
		{"target port 0", func(s *api.ServiceSpec) {
			s.EndpointSpec = &api.EndpointSpec{Ports: []api.PortConfig{{PublishedPort: 8080}}}
		}, "endpoint_spec.ports[0].target_port"},
		{"duplicate published port", func(s *api.ServiceSpec) {
			s.EndpointSpec = &api.EndpointSpec{Ports: []api.PortConfig{tcp(8080), tcp(8080)}}
		}, "endpoint_spec.ports[1].published_port"},
		{"bad protocol", func(s *api.ServiceSpec) {
			s.EndpointSpec = &api.EndpointSpec{Ports: []api.PortConfig{{TargetPort: 80, Protocol: "icmp"}}}
		}, "endpoint_spec.ports[0].protocol"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, s := newServer(t)
			existing := mustCreate(t, srv, spec("existing", 1))
			bad := spec("web", 1)
			tc.mod(&bad)
			index := s.Index()
			_, err := srv.CreateService(ctx, bad)
			invalidNaming(t, err, tc.field)
			if s.Index() != index {
				t.Errorf("invalid create wrote to the store (index %d -> %d)", index, s.Index())
			}

			upd := spec("existing", 1)
			tc.mod(&upd)
			if tc.name == "empty name" || tc.name == "bad name" {
				upd.Name = bad.Name
			}
			_, err = srv.UpdateService(ctx, existing.ID, existing.Meta.Version, upd)
			invalidNaming(t, err, tc.field)
			if s.Index() != index {
				t.Errorf("invalid update wrote to the store (index %d -> %d)", index, s.Index())
			}
		})
	}
}

func TestServiceLookup(t *testing.T) {
	srv, s := newServer(t)
	mk := func(id, name string) *api.Service {
		sp := spec(name, 1)
		sp.ApplyDefaults()
		return &api.Service{ID: id, Spec: sp, SpecVersion: 1}
	}
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, svc := range []*api.Service{
			mk("abc111", "alpha"), mk("abc222", "beta"), mk("xyz999", "gamma"),
			mk("def000", "abc111x"), // a name that looks like an ID prefix
		} {
			if err := tx.CreateService(svc); err != nil {
				return err
			}
		}
		return nil
	})
	tests := []struct {
		ref    string
		wantID string
		err    error
	}{
		{"abc111", "abc111", nil},                  // full ID
		{"beta", "abc222", nil},                    // name
		{"xyz", "xyz999", nil},                     // unique prefix
		{"abc1", "abc111", nil},                    // unique prefix
		{"abc111x", "def000", nil},                 // exact name before prefix
		{"abc", "", controlapi.ErrInvalidArgument}, // ambiguous prefix
		{"nope", "", controlapi.ErrNotFound},
		{"", "", controlapi.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := srv.GetService(ctx, tc.ref)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("GetService(%q): err = %v, want %v", tc.ref, err, tc.err)
				}
				if tc.ref == "abc" && !strings.Contains(err.Error(), "ambiguous") {
					t.Errorf("ambiguity error %q does not say so", err)
				}
				return
			}
			if err != nil || got.ID != tc.wantID {
				t.Fatalf("GetService(%q) = %v, %v; want %s", tc.ref, got, err, tc.wantID)
			}
		})
	}
	list, err := srv.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range list {
		names = append(names, svc.Spec.Name)
	}
	if want := []string{"abc111x", "alpha", "beta", "gamma"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListServices names = %v, want %v", names, want)
	}
}

func TestRemoveService(t *testing.T) {
	srv, s := newServer(t)
	mustCreate(t, srv, spec("web", 1))
	keep := mustCreate(t, srv, spec("api", 1))
	if err := srv.RemoveService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.GetService(ctx, "web"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("get after remove: err = %v, want ErrNotFound", err)
	}
	index := s.Index()
	if err := srv.RemoveService(ctx, "web"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("second remove: err = %v, want ErrNotFound", err)
	}
	if s.Index() != index {
		t.Error("refused remove wrote to the store")
	}
	if got, err := srv.GetService(ctx, keep.ID); err != nil || got.ID != keep.ID {
		t.Errorf("other service after remove: %v, %v", got, err)
	}
	// The name is free again.
	mustCreate(t, srv, spec("web", 1))
}

func TestListTasks(t *testing.T) {
	srv, s := newServer(t)
	svcA := mustCreate(t, srv, spec("api", 2))
	svcW := mustCreate(t, srv, globalSpec("web"))
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, n := range []*api.Node{
			{ID: "node-1", Description: &api.NodeDescription{Hostname: "alpha"}, Spec: api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive}},
			{ID: "node-2", Description: &api.NodeDescription{Hostname: "beta"}, Spec: api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive}},
		} {
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		return nil
	})
	type tk struct {
		id      string
		svc     *api.Service
		slot    uint64
		node    string
		desired api.TaskState
	}
	// Created one per transaction, oldest first; IDs ascend with age so
	// that only the creation time can put the newest first.
	all := []tk{
		{"t01", svcA, 2, "node-1", api.TaskStateShutdown},
		{"t02", svcA, 1, "node-2", api.TaskStateShutdown},
		{"t03", svcA, 1, "node-1", api.TaskStateShutdown},
		{"t04", svcA, 1, "node-1", api.TaskStateRunning},
		{"t05", svcA, 2, "node-2", api.TaskStateRunning},
		{"t06", svcW, 0, "node-2", api.TaskStateRunning},
		{"t07", svcW, 0, "node-1", api.TaskStateShutdown},
		{"t08", svcW, 0, "node-1", api.TaskStateRunning},
	}
	var last time.Time
	for _, x := range all {
		mustUpdate(t, s, func(tx store.Tx) error {
			return tx.CreateTask(&api.Task{
				ID: x.id, ServiceID: x.svc.ID, ServiceAnnotations: x.svc.Spec.Annotations, Slot: x.slot, NodeID: x.node,
				Spec: x.svc.Spec.TaskTemplate, SpecVersion: 1, DesiredState: x.desired,
				Status: api.TaskStatus{State: api.TaskStateRunning},
			})
		})
		var created time.Time
		s.View(func(tx store.ReadTx) { created = tx.GetTask(x.id).Meta.CreatedAt })
		if !created.After(last) {
			t.Fatalf("creation times do not increase (%v then %v): cannot test newest-first", last, created)
		}
		last = created
	}
	ids := func(ts []*api.Task) []string {
		out := []string{}
		for _, t := range ts {
			out = append(out, t.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    controlapi.TaskFilter
		want []string
	}{
		{"all, by service name, slot (or node), newest first", controlapi.TaskFilter{}, []string{"t04", "t03", "t02", "t05", "t01", "t08", "t07", "t06"}},
		{"by service name", controlapi.TaskFilter{Service: "api"}, []string{"t04", "t03", "t02", "t05", "t01"}},
		{"by service ID", controlapi.TaskFilter{Service: svcW.ID}, []string{"t08", "t07", "t06"}},
		{"by node ID", controlapi.TaskFilter{Node: "node-2"}, []string{"t02", "t05", "t06"}},
		{"by hostname", controlapi.TaskFilter{Node: "alpha"}, []string{"t04", "t03", "t01", "t08", "t07"}},
		{"by service and node", controlapi.TaskFilter{Service: "web", Node: "alpha"}, []string{"t08", "t07"}},
		{"by desired state", controlapi.TaskFilter{DesiredStates: []api.TaskState{api.TaskStateRunning}}, []string{"t04", "t05", "t08", "t06"}},
		{"by several desired states", controlapi.TaskFilter{Service: "api", DesiredStates: []api.TaskState{api.TaskStateShutdown, api.TaskStateRemove}}, []string{"t03", "t02", "t01"}},
		{"all filters", controlapi.TaskFilter{Service: "api", Node: "beta", DesiredStates: []api.TaskState{api.TaskStateRunning}}, []string{"t05"}},
		{"nothing matches", controlapi.TaskFilter{Service: "web", DesiredStates: []api.TaskState{api.TaskStateRemove}}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := srv.ListTasks(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tc.want) {
				t.Errorf("ListTasks(%+v) = %v, want %v", tc.f, ids(got), tc.want)
			}
		})
	}
	for _, f := range []controlapi.TaskFilter{{Service: "nope"}, {Node: "nope"}} {
		if _, err := srv.ListTasks(ctx, f); !errors.Is(err, controlapi.ErrNotFound) {
			t.Errorf("ListTasks(%+v): err = %v, want ErrNotFound", f, err)
		}
	}
	// GetTask by ID and unique prefix.
	if got, err := srv.GetTask(ctx, "t05"); err != nil || got.ID != "t05" {
		t.Errorf("GetTask(t05) = %v, %v", got, err)
	}
	if _, err := srv.GetTask(ctx, "t0"); !errors.Is(err, controlapi.ErrInvalidArgument) {
		t.Errorf("GetTask of an ambiguous prefix: err = %v, want ErrInvalidArgument", err)
	}
	if _, err := srv.GetTask(ctx, "zz"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("GetTask of an unknown task: err = %v, want ErrNotFound", err)
	}
}

func TestServiceNamesInErrors(t *testing.T) {
	srv, _ := newServer(t)
	_, err := srv.CreateService(ctx, spec("web", -1))
	if err == nil || !strings.Contains(err.Error(), `service "web": replicas: must be >= 0, got -1`) {
		t.Errorf("err = %v, want the service, field and rule named", err)
	}
}

func TestListServicesCountsTasks(t *testing.T) {
	srv, s := newServer(t)
	web := mustCreate(t, srv, spec("web", 3))
	jobSpec := spec("batch", 0)
	jobSpec.Mode = api.ServiceMode{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}
	job := mustCreate(t, srv, jobSpec)
	agentSpec := globalSpec("agent")
	agentSvc := mustCreate(t, srv, agentSpec)
	running := func(id, svc string, slot uint64, iter uint64) *api.Task {
		return &api.Task{ID: id, ServiceID: svc, Slot: slot, NodeID: "n1", JobIteration: iter, DesiredState: api.TaskStateRunning,
			Spec: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}}, SpecVersion: 1,
			Status: api.TaskStatus{State: api.TaskStateRunning}}
	}
	mustUpdate(t, s, func(tx store.Tx) error {
		node := &api.Node{ID: "n1", Spec: api.NodeSpec{Role: api.NodeRoleWorker, Availability: api.NodeAvailabilityActive},
			Status: api.NodeStatus{State: api.NodeStateReady}, Description: &api.NodeDescription{Hostname: "n1", Executor: "process", Platform: api.Platform{OS: "linux", Architecture: "amd64"}}}
		if err := tx.CreateNode(node); err != nil {
			return err
		}
		web1, web2 := running("w1", web.ID, 1, 0), running("w2", web.ID, 2, 0)
		web2.Status.State = api.TaskStateStarting
		done1, done2, run3 := running("j1", job.ID, 1, 1), running("j2", job.ID, 2, 1), running("j3", job.ID, 3, 1)
		done1.Status.State, done2.Status.State = api.TaskStateComplete, api.TaskStateComplete
		for _, tk := range []*api.Task{web1, web2, done1, done2, run3, running("g1", agentSvc.ID, 0, 0)} {
			if err := tx.CreateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	list, err := srv.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]api.ServiceStatus{}
	for _, svc := range list {
		if svc.ServiceStatus == nil {
			t.Fatalf("service %s listed without ServiceStatus", svc.Spec.Name)
		}
		got[svc.Spec.Name] = *svc.ServiceStatus
	}
	want := map[string]api.ServiceStatus{
		"web":   {RunningTasks: 1, DesiredTasks: 3},
		"batch": {RunningTasks: 1, DesiredTasks: 2, CompletedTasks: 2}, // min(MaxConcurrent 2, 5-2 missing)
		"agent": {RunningTasks: 1, DesiredTasks: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ServiceStatus = %+v, want %+v", got, want)
	}
	// Not stored: a read of the service itself has none.
	if one, _ := srv.GetService(ctx, "web"); one.ServiceStatus != nil {
		t.Errorf("GetService returned a ServiceStatus: %+v", one.ServiceStatus)
	}
}
