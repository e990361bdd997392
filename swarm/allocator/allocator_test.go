package allocator_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/allocator"
	"github.com/apiary-io/apiary/swarm/api"
)

type harness struct {
	t *testing.T
	s *store.MemoryStore
}

// run starts an allocator over a store that setup filled first. It runs
// inside the test's synctest bubble: the allocator only waits on the store's
// channels and its timers, so synctest.Wait returns once it is idle and
// retries take no real time.
func run(t *testing.T, setup func(tx store.Tx) error) *harness {
	t.Helper()
	s := store.NewMemoryStore(nil)
	h := &harness{t: t, s: s}
	if setup != nil {
		h.update(setup)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- allocator.New(s, testutil.DiscardLogger()).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
		s.Close()
	})
	return h
}

func (h *harness) update(f func(tx store.Tx) error) {
	h.t.Helper()
	if err := h.s.Update(f); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) service(id string) *api.Service {
	var s *api.Service
	h.s.View(func(tx store.ReadTx) { s = tx.GetService(id) })
	return s
}

func (h *harness) task(id string) *api.Task {
	var t *api.Task
	h.s.View(func(tx store.ReadTx) { t = tx.GetTask(id) })
	return t
}

// waitPending waits until a task left NEW and returns it.
func (h *harness) waitPending(id string) *api.Task {
	h.t.Helper()
	var tk *api.Task
	testutil.EventuallyWhy(h.t, 10*time.Second, "task "+id+" pending", func() (bool, string) {
		tk = h.task(id)
		return tk.Status.State == api.TaskStatePending, "state " + tk.Status.State.String()
	})
	return tk
}

// waitAllocated waits until a service has an endpoint and returns it.
func (h *harness) waitAllocated(id string) *api.Service {
	h.t.Helper()
	var s *api.Service
	testutil.EventuallyWhy(h.t, 10*time.Second, "service "+id+" allocated", func() (bool, string) {
		s = h.service(id)
		return s.Endpoint != nil, "no endpoint"
	})
	return s
}

// sync waits until the allocator is idle: every change committed before
// was then seen and acted on.
func (h *harness) sync() { synctest.Wait() }

func service(id string, ep *api.EndpointSpec) *api.Service {
	return &api.Service{ID: id, SpecVersion: 1, Spec: api.ServiceSpec{
		Annotations:  api.Annotations{Name: id},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 1}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
		EndpointSpec: ep,
	}}
}

func newTask(id, serviceID string) *api.Task {
	return &api.Task{
		ID: id, ServiceID: serviceID, Slot: 1, Name: serviceID + ".1",
		Spec:         api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
		SpecVersion:  1,
		DesiredState: api.TaskStateRunning,
		Status:       api.TaskStatus{State: api.TaskStateNew},
	}
}

func ingress(target, published uint32) api.PortConfig {
	return api.PortConfig{TargetPort: target, PublishedPort: published}
}

func ports(ps ...api.PortConfig) *api.EndpointSpec { return &api.EndpointSpec{Ports: ps} }

func create(objs ...any) func(tx store.Tx) error {
	return func(tx store.Tx) error {
		for _, o := range objs {
			var err error
			switch o := o.(type) {
			case *api.Service:
				err = tx.CreateService(o)
			case *api.Task:
				err = tx.CreateTask(o)
			default:
				panic(fmt.Sprintf("create %T", o))
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
}

func publishedOf(s *api.Service) []uint32 {
	var out []uint32
	for _, p := range s.Endpoint.Ports {
		out = append(out, p.PublishedPort)
	}
	return out
}

func TestServiceWithoutPortsGetsVIPEndpointAndTasksGoPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(service("web", nil), newTask("t1", "web"), newTask("t2", "web")))
		s := h.waitAllocated("web")
		if s.Endpoint.Spec.Mode != api.ResolutionModeVIP || len(s.Endpoint.Ports) != 0 {
			t.Errorf("endpoint = %+v, want vip without ports", s.Endpoint)
		}
		for _, id := range []string{"t1", "t2"} {
			tk := h.waitPending(id)
			if !reflect.DeepEqual(tk.Endpoint, s.Endpoint) {
				t.Errorf("task %s endpoint = %+v, want the service's %+v", id, tk.Endpoint, s.Endpoint)
			}
			if tk.Status.Message == "" || tk.Status.Timestamp.IsZero() {
				t.Errorf("task %s pending status lacks message or timestamp: %+v", id, tk.Status)
			}
			if tk.NodeID != "" || tk.DesiredState != api.TaskStateRunning {
				t.Errorf("task %s changed beyond its status and endpoint: %+v", id, tk)
			}
		}
		// Tasks created later are released too.
		h.update(create(newTask("t3", "web")))
		if tk := h.waitPending("t3"); !reflect.DeepEqual(tk.Endpoint, s.Endpoint) {
			t.Errorf("later task endpoint = %+v", tk.Endpoint)
		}
	})
}

func TestExplicitIngressPortKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(service("web", ports(ingress(80, 8080), api.PortConfig{TargetPort: 53, PublishedPort: 5353, Protocol: api.PortProtocolUDP})), newTask("t1", "web")))
		s := h.waitAllocated("web")
		want := []api.PortConfig{
			{TargetPort: 80, PublishedPort: 8080, Protocol: api.PortProtocolTCP, PublishMode: api.PublishModeIngress},
			{TargetPort: 53, PublishedPort: 5353, Protocol: api.PortProtocolUDP, PublishMode: api.PublishModeIngress},
		}
		if !reflect.DeepEqual(s.Endpoint.Ports, want) {
			t.Errorf("ports = %+v, want %+v", s.Endpoint.Ports, want)
		}
		if tk := h.waitPending("t1"); !reflect.DeepEqual(tk.Endpoint.Ports, want) {
			t.Errorf("task ports = %+v, want %+v", tk.Endpoint.Ports, want)
		}
	})
}

func TestDynamicPortsLowestFreeFromRangeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(service("a", ports(ingress(80, 0), ingress(443, 0)))))
		a := h.waitAllocated("a")
		if got := publishedOf(a); !reflect.DeepEqual(got, []uint32{allocator.DynamicPortStart, allocator.DynamicPortStart + 1}) {
			t.Fatalf("dynamic ports = %v, want 30000 and 30001", got)
		}
		// The spec keeps asking for "any port": the allocation is in Ports.
		if a.Endpoint.Spec.Ports[0].PublishedPort != 0 {
			t.Errorf("endpoint spec was rewritten: %+v", a.Endpoint.Spec)
		}
		h.update(create(service("b", ports(ingress(80, 0)))))
		if got := publishedOf(h.waitAllocated("b")); !reflect.DeepEqual(got, []uint32{30002}) {
			t.Errorf("second service's dynamic port = %v, want 30002", got)
		}
		// Another protocol is another port space.
		h.update(create(service("u", ports(api.PortConfig{TargetPort: 53, Protocol: api.PortProtocolUDP}))))
		if got := publishedOf(h.waitAllocated("u")); !reflect.DeepEqual(got, []uint32{30000}) {
			t.Errorf("udp dynamic port = %v, want 30000", got)
		}
	})
}

func TestDynamicPortSkipsExplicitlyPublishedPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// "taken" publishes 30000 explicitly and is allocated first.
		h := run(t, create(service("taken", ports(ingress(80, 30000)))))
		h.waitAllocated("taken")
		h.update(create(service("dyn", ports(ingress(80, 0)))))
		if got := publishedOf(h.waitAllocated("dyn")); !reflect.DeepEqual(got, []uint32{30001}) {
			t.Errorf("dynamic port = %v, want 30001 (30000 is taken)", got)
		}
	})
}

func TestDynamicPortAvoidsPortAnotherServiceRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Both wait for allocation in the same pass; the dynamic one sorts
		// first. It must not take the port the other asks for by number.
		h := run(t, create(
			service("a-dynamic", ports(ingress(80, 0))), newTask("ta", "a-dynamic"),
			service("b-explicit", ports(ingress(80, 30000))), newTask("tb", "b-explicit"),
		))
		if got := publishedOf(h.waitAllocated("b-explicit")); !reflect.DeepEqual(got, []uint32{30000}) {
			t.Errorf("explicit port = %v, want 30000", got)
		}
		if got := publishedOf(h.waitAllocated("a-dynamic")); !reflect.DeepEqual(got, []uint32{30001}) {
			t.Errorf("dynamic port = %v, want 30001", got)
		}
		h.waitPending("ta")
		h.waitPending("tb")
	})
}

func TestServicesNeverShareADynamicPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, nil)
		const n = 40
		for i := range n {
			// Some in one transaction, some in their own: several passes.
			if i%4 == 0 {
				h.update(create(service(fmt.Sprintf("s%02d", i), ports(ingress(80, 0), ingress(81, 0)))))
				continue
			}
			h.update(create(service(fmt.Sprintf("s%02d", i), ports(ingress(80, 0)))))
		}
		seen := map[uint32]string{}
		for i := range n {
			id := fmt.Sprintf("s%02d", i)
			for _, p := range publishedOf(h.waitAllocated(id)) {
				if p < allocator.DynamicPortStart || p > allocator.DynamicPortEnd {
					t.Errorf("service %s got %d, outside the dynamic range", id, p)
				}
				if other, dup := seen[p]; dup {
					t.Errorf("services %s and %s both got port %d", other, id, p)
				}
				seen[p] = id
			}
		}
		// Lowest free first: the ports form one block from the start.
		for p := uint32(allocator.DynamicPortStart); p < allocator.DynamicPortStart+uint32(len(seen)); p++ {
			if _, ok := seen[p]; !ok {
				t.Errorf("port %d skipped: %d ports handed out", p, len(seen))
			}
		}
	})
}

func TestHostModePortsNotAllocatedFromRange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host := func(target, published uint32) api.PortConfig {
			return api.PortConfig{TargetPort: target, PublishedPort: published, PublishMode: api.PublishModeHost}
		}
		h := run(t, create(
			service("h1", ports(host(80, 0), host(81, 30000))),
			service("h2", ports(host(80, 30000))), // the same host port: another node may serve it
		))
		h1 := h.waitAllocated("h1")
		want := []api.PortConfig{
			{TargetPort: 80, PublishedPort: 0, Protocol: api.PortProtocolTCP, PublishMode: api.PublishModeHost},
			{TargetPort: 81, PublishedPort: 30000, Protocol: api.PortProtocolTCP, PublishMode: api.PublishModeHost},
		}
		if !reflect.DeepEqual(h1.Endpoint.Ports, want) {
			t.Errorf("host ports = %+v, want %+v", h1.Endpoint.Ports, want)
		}
		if got := publishedOf(h.waitAllocated("h2")); !reflect.DeepEqual(got, []uint32{30000}) {
			t.Errorf("second host-mode service = %v, want 30000", got)
		}
		// Host ports do not use up the ingress range.
		h.update(create(service("dyn", ports(ingress(80, 0)))))
		if got := publishedOf(h.waitAllocated("dyn")); !reflect.DeepEqual(got, []uint32{30000}) {
			t.Errorf("ingress dynamic port = %v, want 30000", got)
		}
	})
}

func TestTasksOfUnallocatableServiceStayNew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(service("owner", ports(ingress(80, 8080))), newTask("owner-t", "owner")))
		h.waitPending("owner-t")
		h.update(create(service("clash", ports(ingress(80, 8080))), newTask("clash-t", "clash")))
		h.sync()
		if s := h.service("clash"); s.Endpoint != nil {
			t.Errorf("conflicting service got an endpoint: %+v", s.Endpoint)
		}
		if tk := h.task("clash-t"); tk.Status.State != api.TaskStateNew || tk.Endpoint != nil {
			t.Errorf("task of an unallocated service: state %s endpoint %+v, want NEW without endpoint", tk.Status.State, tk.Endpoint)
		}
		// Tasks of a service that does not exist stay NEW too.
		h.update(create(newTask("orphan-t", "no-such-service")))
		h.sync()
		if tk := h.task("orphan-t"); tk.Status.State != api.TaskStateNew {
			t.Errorf("task of a missing service is %s, want NEW", tk.Status.State)
		}
		// Once the owner is gone, its port is free and the waiting service
		// gets it.
		h.update(func(tx store.Tx) error { return tx.DeleteService("owner") })
		if got := publishedOf(h.waitAllocated("clash")); !reflect.DeepEqual(got, []uint32{8080}) {
			t.Errorf("ports after the owner left = %v, want 8080", got)
		}
		h.waitPending("clash-t")
	})
}

func TestFailedAllocationReservesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(service("owner", ports(ingress(80, 8080)))))
		h.waitAllocated("owner")
		// "a" asks for 9090 and the taken 8080: it fails as a whole, and must
		// not keep 9090 from "b", which it sorts before.
		h.update(create(
			service("a", ports(ingress(90, 9090), ingress(80, 8080))), newTask("ta", "a"),
			service("b", ports(ingress(90, 9090))), newTask("tb", "b"),
		))
		if got := publishedOf(h.waitAllocated("b")); !reflect.DeepEqual(got, []uint32{9090}) {
			t.Errorf("b's ports = %v, want 9090", got)
		}
		h.waitPending("tb")
		h.sync()
		if s := h.service("a"); s.Endpoint != nil {
			t.Errorf("a got an endpoint: %+v", s.Endpoint)
		}
		if tk := h.task("ta"); tk.Status.State != api.TaskStateNew {
			t.Errorf("a's task is %s, want NEW", tk.Status.State)
		}
	})
}

func TestEndpointSpecChangeReallocates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, create(service("web", ports(ingress(80, 8080))), newTask("t1", "web")))
		before := h.waitAllocated("web")
		h.waitPending("t1")

		// A change elsewhere in the spec keeps the endpoint as it is.
		h.update(func(tx store.Tx) error {
			s := tx.GetService("web")
			s.Spec.Labels = map[string]string{"tier": "front"}
			s.SpecVersion++
			return tx.UpdateService(s)
		})
		h.sync()
		if s := h.service("web"); !reflect.DeepEqual(s.Endpoint, before.Endpoint) {
			t.Errorf("endpoint changed on a label change: %+v", s.Endpoint)
		}

		h.update(func(tx store.Tx) error {
			s := tx.GetService("web")
			s.Spec.EndpointSpec = ports(ingress(80, 8081), ingress(9000, 0))
			return tx.UpdateService(s)
		})
		testutil.EventuallyWhy(t, 10*time.Second, "reallocation", func() (bool, string) {
			s := h.service("web")
			return reflect.DeepEqual(publishedOf(s), []uint32{8081, 30000}), fmt.Sprintf("ports %v", publishedOf(s))
		})
		if s := h.service("web"); s.Endpoint.Spec.Ports[0].PublishedPort != 8081 {
			t.Errorf("endpoint spec not updated: %+v", s.Endpoint.Spec)
		}
		// New tasks get the new endpoint; the old port is free again.
		h.update(create(newTask("t2", "web"), service("other", ports(ingress(80, 8080))), newTask("t3", "other")))
		if tk := h.waitPending("t2"); !reflect.DeepEqual(publishedOfTask(tk), []uint32{8081, 30000}) {
			t.Errorf("new task's ports = %v", publishedOfTask(tk))
		}
		if got := publishedOf(h.waitAllocated("other")); !reflect.DeepEqual(got, []uint32{8080}) {
			t.Errorf("released port not reusable: %v", got)
		}
	})
}

func publishedOfTask(t *api.Task) []uint32 {
	var out []uint32
	for _, p := range t.Endpoint.Ports {
		out = append(out, p.PublishedPort)
	}
	return out
}

func TestDynamicRangeExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Every port of the range but one is taken explicitly.
		var ps []api.PortConfig
		for p := uint32(allocator.DynamicPortStart); p < allocator.DynamicPortEnd; p++ {
			ps = append(ps, ingress(1, p))
		}
		h := run(t, create(service("hog", ports(ps...))))
		h.waitAllocated("hog")
		h.update(create(service("last", ports(ingress(80, 0))), newTask("t-last", "last")))
		if got := publishedOf(h.waitAllocated("last")); !reflect.DeepEqual(got, []uint32{allocator.DynamicPortEnd}) {
			t.Fatalf("last free port = %v, want %d", got, allocator.DynamicPortEnd)
		}
		h.waitPending("t-last")
		h.update(create(service("none", ports(ingress(80, 0))), newTask("t-none", "none")))
		h.sync()
		if s := h.service("none"); s.Endpoint != nil {
			t.Errorf("service got an endpoint from an exhausted range: %+v", s.Endpoint)
		}
		if tk := h.task("t-none"); tk.Status.State != api.TaskStateNew {
			t.Errorf("task is %s, want NEW", tk.Status.State)
		}
	})
}
