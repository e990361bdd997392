package swarmtest_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// Addresses survive a leader failover: the new leader allocates from what
// the old one committed, so no address of a network is handed out twice,
// the tasks the new leader releases (a new service, a scale-up, the
// replacements of the dead leader's tasks) all get addresses, and the
// VIPs stay as they were.
func TestIPAMAcrossLeaderFailover(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	cl := c.Client(c.Leader())
	app, err := cl.CreateNetwork(ctx, api.NetworkSpec{Annotations: api.Annotations{Name: "app"}, IPAM: &api.IPAMConfig{Subnet: "10.30.0.0/26"}})
	if err != nil {
		t.Fatal(err)
	}
	web := spec("web", 9)
	web.TaskTemplate.Networks = []api.NetworkAttachmentConfig{{Target: "app"}}
	web.EndpointSpec = &api.EndpointSpec{Ports: []api.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}
	webSvc, err := cl.CreateService(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConverged(ctx, webSvc.ID); err != nil {
		t.Fatal(err)
	}
	before := checkClusterAddresses(t, cl, app.ID)

	old := c.Leader()
	c.Kill(old)
	cl = c.Client(c.Leader())
	db := spec("db", 6)
	db.TaskTemplate.Networks = []api.NetworkAttachmentConfig{{Target: app.ID}}
	dbSvc, err := cl.CreateService(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ScaleService(ctx, "web", 12); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{webSvc.ID, dbSvc.ID} {
		if err := cl.WaitConverged(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	after := checkClusterAddresses(t, cl, app.ID)
	if after < before+9 {
		t.Errorf("%d addresses held on app after the failover, %d before: the new leader allocated too few", after, before)
	}
	w, err := cl.GetService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(w.Endpoint.VirtualIPs, w.Endpoint.HostVIP) != fmt.Sprint(webSvc.Endpoint.VirtualIPs, webSvc.Endpoint.HostVIP) {
		t.Errorf("web's VIPs changed across the failover: %v %s, were %v %s", w.Endpoint.VirtualIPs, w.Endpoint.HostVIP,
			webSvc.Endpoint.VirtualIPs, webSvc.Endpoint.HostVIP)
	}
	c.Restart(old)
	c.WaitReady()
}

// checkClusterAddresses checks, through the control API, that every task
// wanted running holds an address on network id within its subnet, no
// address there is held twice (tasks and VIPs), and returns how many are
// held.
func checkClusterAddresses(t *testing.T, cl *swarm.Client, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := cl.GetNetwork(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	subnet := netip.MustParsePrefix(n.IPAM.Subnet)
	svcs, err := cl.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := cl.ListTasks(ctx, control.TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	holder := map[string]string{}
	hold := func(who, addr string) {
		key := store.AddrKey(id, addr)
		if prev, dup := holder[key]; dup {
			t.Errorf("%s is held by %s and %s", addr, prev, who)
		}
		holder[key] = who
		if p, err := netip.ParsePrefix(addr); err != nil || !subnet.Contains(p.Addr()) {
			t.Errorf("%s holds %s, outside %s", who, addr, subnet)
		}
	}
	for _, s := range svcs {
		for _, v := range s.Endpoint.VirtualIPs {
			if v.NetworkID == id {
				hold("service "+s.Spec.Name, v.Addr)
			}
		}
	}
	for _, tk := range tasks {
		if tk.Status.State.Terminal() {
			continue
		}
		found := false
		for _, a := range tk.Networks {
			if a.NetworkID == id && len(a.Addresses) == 1 {
				hold("task "+tk.Name+" "+tk.ID, a.Addresses[0])
				found = true
			}
		}
		if !found && tk.Status.State != api.TaskStateNew {
			t.Errorf("task %s (%s) has no address on %s: %+v", tk.Name, tk.Status.State, n.Spec.Name, tk.Networks)
		}
	}
	return len(holder)
}
