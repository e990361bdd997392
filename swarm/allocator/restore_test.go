package allocator_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"testing/synctest"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// snapshot returns a store snapshot holding what setup writes.
func snapshot(t *testing.T, setup func(tx store.Tx) error) *bytes.Buffer {
	t.Helper()
	s := store.NewMemoryStore(nil)
	defer s.Close()
	if err := s.Update(setup); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(&buf); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// A restore replaces the state with a snapshot whose changes the allocator
// never saw as events: it reconciles every service again, from the
// snapshot's state alone. Services the snapshot left waiting are allocated
// around the ports it holds (not those of the state it replaced), every NEW
// task is released with its service's endpoint, and allocated services keep
// their ports.
func TestRestoreReconcilesEveryService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kept := service("kept", ports(ingress(80, 0)))
		kept.Endpoint = &api.Endpoint{Spec: kept.Spec.EndpointSpec.Copy(), Ports: []api.PortConfig{
			{TargetPort: 80, PublishedPort: 30000, Protocol: api.PortProtocolTCP, PublishMode: api.PublishModeIngress}},
			HostVIP: "127.100.0.1", LoopbackPorts: []api.LoopbackPort{{Protocol: api.PortProtocolTCP, TargetPort: 80, Port: api.LoopbackVIPPortStart}}}
		objs := []any{kept, service("dynamic", ports(ingress(80, 0))), service("explicit", ports(ingress(80, 8080)))}
		const tasksEach = 3
		for _, s := range []string{"kept", "dynamic", "explicit"} {
			for i := range tasksEach {
				objs = append(objs, newTask(fmt.Sprintf("%s-t%d", s, i), s))
			}
		}
		snap := snapshot(t, create(objs...))

		// Before the restore, "old" holds 8080 and 30001, and a service
		// waits for 8080: the restore takes them all away.
		h := run(t, create(
			service("old", ports(ingress(80, 8080), ingress(81, 0))), newTask("old-t", "old"),
			service("waits", ports(ingress(80, 8080))), newTask("waits-t", "waits"),
		))
		h.waitPending("old-t")
		h.sync()
		if got := publishedOf(h.service("old")); !reflect.DeepEqual(got, []uint32{8080, 30000}) {
			t.Fatalf("before the restore, old holds %v, want 8080 and 30000", got)
		}
		if err := h.s.Restore(snap); err != nil {
			t.Fatal(err)
		}
		h.sync()

		want := map[string][]uint32{"kept": {30000}, "dynamic": {30001}, "explicit": {8080}}
		for id, ports := range want {
			s := h.service(id)
			if s.Endpoint == nil {
				t.Fatalf("service %s not allocated after the restore", id)
			}
			if got := publishedOf(s); !reflect.DeepEqual(got, ports) {
				t.Errorf("service %s holds %v after the restore, want %v", id, got, ports)
			}
			for i := range tasksEach {
				tk := h.task(fmt.Sprintf("%s-t%d", id, i))
				if tk.Status.State != api.TaskStatePending || !reflect.DeepEqual(tk.Endpoint, s.Endpoint) {
					t.Errorf("task %s after the restore: %s with endpoint %+v, want pending with %+v", tk.ID, tk.Status.State, tk.Endpoint, s.Endpoint)
				}
			}
		}
		if !reflect.DeepEqual(h.service("kept").Endpoint, kept.Endpoint) {
			t.Errorf("an allocated service was reallocated: %+v, was %+v", h.service("kept").Endpoint, kept.Endpoint)
		}
		for _, id := range []string{"old", "waits"} {
			if h.service(id) != nil {
				t.Errorf("service %s outlived the restore", id)
			}
		}

		// The loop goes on watching the restored state.
		h.update(create(service("after", ports(ingress(80, 0))), newTask("after-t", "after")))
		h.sync()
		if got := publishedOf(h.service("after")); !reflect.DeepEqual(got, []uint32{30002}) {
			t.Errorf("a service created after the restore holds %v, want 30002", got)
		}
		if tk := h.task("after-t"); tk.Status.State != api.TaskStatePending {
			t.Errorf("a task created after the restore is %s, want pending", tk.Status.State)
		}
	})
}
