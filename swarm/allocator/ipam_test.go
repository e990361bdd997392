package allocator_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

var ctx = context.Background()

// taskOf makes a NEW task of a service from its template, as the
// orchestrator does.
func taskOf(s *api.Service, id string, slot uint64) *api.Task {
	return &api.Task{ID: id, ServiceID: s.ID, Slot: slot, Name: fmt.Sprintf("%s.%d", s.Spec.Name, slot),
		Spec: s.Spec.TaskTemplate.Copy(), SpecVersion: s.SpecVersion, DesiredState: api.TaskStateRunning,
		Status: api.TaskStatus{State: api.TaskStateNew}}
}

func netSpec(name, subnet string) api.NetworkSpec {
	s := api.NetworkSpec{Annotations: api.Annotations{Name: name}}
	if subnet != "" {
		s.IPAM = &api.IPAMConfig{Subnet: subnet}
	}
	return s
}

func svcSpec(name string, nets ...string) api.ServiceSpec {
	s := api.ServiceSpec{Annotations: api.Annotations{Name: name},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 1}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}}}
	for _, n := range nets {
		s.TaskTemplate.Networks = append(s.TaskTemplate.Networks, api.NetworkAttachmentConfig{Target: n, Aliases: []string{name + "-alias"}})
	}
	return s
}

// A task leaves NEW with an address on each network of its template and
// on the ingress network when its service publishes ingress ports, with
// its aliases; addresses skip the gateway and the service's VIP; an ended
// task's address goes to the next task; a task that finds its subnet full
// waits in NEW until an address is freed.
func TestTaskAddresses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := run(t, nil)
		srv := controlapi.New(h.s, controlapi.Options{})
		tiny, err := srv.CreateNetwork(ctx, netSpec("tiny", "10.9.0.0/29")) // .1 gateway, .2-.6
		if err != nil {
			t.Fatal(err)
		}
		in, err := srv.CreateNetwork(ctx, api.NetworkSpec{Annotations: api.Annotations{Name: "ingress"}, Ingress: true})
		if err != nil {
			t.Fatal(err)
		}
		spec := svcSpec("web", "tiny")
		spec.EndpointSpec = &api.EndpointSpec{Ports: []api.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}
		svc, err := srv.CreateService(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if svc.Endpoint.VirtualIPs[0].Addr != "10.9.0.2/29" {
			t.Fatalf("VIP %v, want 10.9.0.2/29", svc.Endpoint.VirtualIPs)
		}
		var tasks []*api.Task
		for i := range 5 {
			tasks = append(tasks, taskOf(svc, fmt.Sprint("t", i), uint64(i+1)))
		}
		h.update(create(tasks[0], tasks[1], tasks[2], tasks[3], tasks[4]))
		h.sync()
		var got []string
		for i := range 4 {
			tk := h.task(fmt.Sprint("t", i))
			if tk.Status.State != api.TaskStatePending || len(tk.Networks) != 2 || tk.Networks[0].NetworkID != tiny.ID || tk.Networks[1].NetworkID != in.ID ||
				!slices.Equal(tk.Networks[0].Aliases, []string{"web-alias"}) {
				t.Fatalf("task %d: %s with %+v; want pending on tiny (with its alias) and ingress", i, tk.Status.State, tk.Networks)
			}
			got = append(got, tk.Networks[0].Addresses[0])
		}
		if want := []string{"10.9.0.3/29", "10.9.0.4/29", "10.9.0.5/29", "10.9.0.6/29"}; !slices.Equal(got, want) {
			t.Errorf("addresses %v, want %v", got, want)
		}
		if tk := h.task("t4"); tk.Status.State != api.TaskStateNew {
			t.Fatalf("a fifth task on a full /29 is %s with %+v, want NEW", tk.Status.State, tk.Networks)
		}
		// t1 ends: its address is t4's.
		h.update(func(tx store.Tx) error {
			tk := tx.GetTask("t1")
			tk.Status.State = api.TaskStateFailed
			return tx.UpdateTask(tk)
		})
		h.sync()
		if tk := h.task("t4"); tk.Status.State != api.TaskStatePending || tk.Networks[0].Addresses[0] != "10.9.0.4/29" {
			t.Errorf("after t1 ended, t4 is %s with %+v, want pending at 10.9.0.4/29", tk.Status.State, tk.Networks)
		}
	})
}

// The IPAM property: whatever the order of creates, updates and removals
// of networks, services and tasks, and tasks ending, no address is held
// twice on a network (nor a host VIP twice), every address is a host
// address of its network's subnet and not its gateway, and every task that
// left NEW has an address on each network of its template.
func TestIPAMProperty(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { ipamRandomRun(t, seed) })
		})
	}
}

func ipamRandomRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	h := run(t, nil)
	srv := controlapi.New(h.s, controlapi.Options{})
	if _, err := srv.CreateNetwork(ctx, api.NetworkSpec{Annotations: api.Annotations{Name: "ingress"}, Ingress: true}); err != nil {
		t.Fatal(err)
	}
	var nets, svcs []string
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	taskN, peak := 0, 0
	for step := range 300 {
		switch op := rng.IntN(10); {
		case op == 0 || len(nets) == 0:
			// Small subnets, so that they fill up and free up.
			subnet := ""
			if rng.IntN(2) == 0 {
				subnet = fmt.Sprintf("10.200.%d.0/29", rng.IntN(8))
			}
			n, err := srv.CreateNetwork(ctx, netSpec(fmt.Sprint("n", step), subnet))
			if err == nil {
				nets = append(nets, n.ID)
			} else if !errors.Is(err, controlapi.ErrInvalidArgument) {
				t.Fatal(err)
			}
		case op == 1:
			id := pick(nets)
			if err := srv.RemoveNetwork(ctx, id); err == nil {
				nets = slices.DeleteFunc(nets, func(x string) bool { return x == id })
			} else if !errors.Is(err, controlapi.ErrInUse) {
				t.Fatal(err)
			}
		case op == 2 || len(svcs) == 0:
			spec := svcSpec(fmt.Sprint("s", step), pick(nets))
			if rng.IntN(3) == 0 {
				spec.EndpointSpec = &api.EndpointSpec{Ports: []api.PortConfig{{TargetPort: 80}}}
			} else if rng.IntN(3) == 0 {
				spec.EndpointSpec = &api.EndpointSpec{Mode: api.ResolutionModeDNSRR}
			}
			s, err := srv.CreateService(ctx, spec)
			if err == nil {
				svcs = append(svcs, s.ID)
			} else if !errors.Is(err, controlapi.ErrInvalidArgument) { // a full network
				t.Fatal(err)
			}
		case op == 3:
			s, err := srv.GetService(ctx, pick(svcs))
			if err != nil {
				t.Fatal(err)
			}
			spec := s.Spec.Copy()
			spec.TaskTemplate.Networks = svcSpec("", pick(nets)).TaskTemplate.Networks
			if _, err := srv.UpdateService(ctx, s.ID, s.Meta.Version, spec); err != nil && !errors.Is(err, controlapi.ErrInvalidArgument) {
				t.Fatal(err)
			}
		case op == 4:
			id := pick(svcs)
			if err := srv.RemoveService(ctx, id); err != nil {
				t.Fatal(err)
			}
			svcs = slices.DeleteFunc(svcs, func(x string) bool { return x == id })
			updateRetrying(t, h.s, func(tx store.Tx) error { // the orchestrator's part
				ts, err := tx.FindTasks(store.ByServiceID(id))
				for _, tk := range ts {
					if err := tx.DeleteTask(tk.ID); err != nil {
						return err
					}
				}
				return err
			})
		case op < 8:
			s, err := srv.GetService(ctx, pick(svcs))
			if err != nil {
				t.Fatal(err)
			}
			taskN++
			h.update(create(taskOf(s, fmt.Sprint("t", taskN), uint64(taskN))))
		default:
			id := fmt.Sprint("t", 1+rng.IntN(max(taskN, 1)))
			end := rng.IntN(2) == 0
			updateRetrying(t, h.s, func(tx store.Tx) error {
				tk := tx.GetTask(id)
				if tk == nil {
					return nil
				}
				if end {
					tk.Status.State = api.TaskStateComplete
					return tx.UpdateTask(tk)
				}
				return tx.DeleteTask(id)
			})
		}
		if step%10 == 9 {
			h.sync()
			peak = max(peak, checkAddresses(t, h.s))
		}
	}
	h.sync()
	checkAddresses(t, h.s)
	if peak < 20 {
		t.Errorf("at most %d addresses were held at once: the run exercised little", peak)
	}
}

// updateRetrying writes as the loops do, again when the allocator wrote
// the same task meanwhile.
func updateRetrying(t *testing.T, s *store.MemoryStore, f func(tx store.Tx) error) {
	t.Helper()
	err := s.Update(f)
	for errors.Is(err, store.ErrConflict) {
		err = s.Update(f)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// checkAddresses checks the IPAM invariants on the store as it is, and
// returns how many addresses are held.
func checkAddresses(t *testing.T, s *store.MemoryStore) int {
	t.Helper()
	var held int
	s.View(func(tx store.ReadTx) {
		nets, _ := tx.FindNetworks(store.All)
		svcs, _ := tx.FindServices(store.All)
		tasks, _ := tx.FindTasks(store.All)
		subnets := map[string]*api.Network{}
		for _, n := range nets {
			subnets[n.ID] = n
		}
		holder := map[string]string{}
		hold := func(who, networkID, addr string) {
			key := store.AddrKey(networkID, addr)
			if prev, dup := holder[key]; dup {
				t.Errorf("%s is held by %s and %s", key, prev, who)
			}
			holder[key] = who
			held++
			n := subnets[networkID]
			if n == nil {
				return // a host VIP, or a network gone
			}
			p := netip.MustParsePrefix(n.IPAM.Subnet)
			a, err := netip.ParsePrefix(addr)
			if err != nil || a.Bits() != p.Bits() || !p.Contains(a.Addr()) || a.Addr() == p.Addr() ||
				a.Addr().String() == n.IPAM.Gateway || !p.Contains(a.Addr().Next()) {
				t.Errorf("%s holds %s, not a host address of %s (gateway %s)", who, addr, p, n.IPAM.Gateway)
			}
		}
		for _, sv := range svcs {
			if sv.Endpoint == nil {
				continue
			}
			for _, v := range sv.Endpoint.VirtualIPs {
				hold("service "+sv.Spec.Name, v.NetworkID, v.Addr)
			}
			if sv.Endpoint.HostVIP != "" {
				hold("service "+sv.Spec.Name, api.HostNetworkID, sv.Endpoint.HostVIP)
			}
		}
		for _, tk := range tasks {
			if tk.Status.State.Terminal() {
				continue
			}
			for _, n := range tk.Networks {
				for _, a := range n.Addresses {
					hold("task "+tk.ID, n.NetworkID, a)
				}
			}
			if tk.Status.State == api.TaskStateNew {
				continue
			}
			for _, want := range tk.Spec.Networks {
				if !slices.ContainsFunc(tk.Networks, func(a api.NetworkAttachment) bool { return a.NetworkID == want.Target && len(a.Addresses) == 1 }) {
					t.Errorf("task %s left NEW without an address on network %s: %+v", tk.ID, want.Target, tk.Networks)
				}
			}
		}
	})
	return held
}

// A service written with a network that does not exist yet (as a program
// writing the store itself could) waits, with its tasks NEW, and is
// allocated once the network is made.
func TestServiceWaitsForItsNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc := service("web", nil)
		svc.Spec.TaskTemplate.Networks = []api.NetworkAttachmentConfig{{Target: "later"}}
		tk := newTask("t1", "web")
		tk.Spec = svc.Spec.TaskTemplate.Copy()
		h := run(t, create(svc, tk))
		h.sync()
		if s := h.service("web"); s.Endpoint != nil {
			t.Fatalf("allocated on a network that does not exist: %+v", s.Endpoint)
		}
		h.update(func(tx store.Tx) error {
			return tx.CreateNetwork(&api.Network{ID: "later", Spec: api.NetworkSpec{Annotations: api.Annotations{Name: "later"}},
				IPAM: &api.IPAMConfig{Subnet: "10.7.0.0/24", Gateway: "10.7.0.1"}})
		})
		h.sync()
		if s := h.service("web"); s.Endpoint == nil || len(s.Endpoint.VirtualIPs) != 1 || s.Endpoint.VirtualIPs[0].Addr != "10.7.0.2/24" {
			t.Fatalf("after the network was made: %+v", s.Endpoint)
		}
		if got := h.waitPending("t1"); got.Networks[0].Addresses[0] != "10.7.0.3/24" {
			t.Errorf("task address %+v", got.Networks)
		}
	})
}
