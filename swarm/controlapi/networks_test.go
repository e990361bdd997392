package controlapi_test

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

func netSpec(name string) api.NetworkSpec {
	return api.NetworkSpec{Annotations: api.Annotations{Name: name}}
}

func withSubnet(s api.NetworkSpec, subnet string) api.NetworkSpec {
	s.IPAM = &api.IPAMConfig{Subnet: subnet}
	return s
}

func mustCreateNetwork(t *testing.T, srv *controlapi.Server, s api.NetworkSpec) *api.Network {
	t.Helper()
	n, err := srv.CreateNetwork(ctx, s)
	if err != nil {
		t.Fatalf("create network %s: %v", s.Name, err)
	}
	return n
}

func onNetworks(s api.ServiceSpec, nets ...string) api.ServiceSpec {
	for _, n := range nets {
		s.TaskTemplate.Networks = append(s.TaskTemplate.Networks, api.NetworkAttachmentConfig{Target: n})
	}
	return s
}

// state is everything a refused write must leave as it was.
func state(t *testing.T, s *store.MemoryStore) (nets []*api.Network, svcs []*api.Service) {
	t.Helper()
	var err1, err2 error
	s.View(func(tx store.ReadTx) {
		nets, err1 = tx.FindNetworks(store.All)
		svcs, err2 = tx.FindServices(store.All)
	})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return nets, svcs
}

// A network gets the next free /24 of the default pool, or the subnet it
// asks for; its gateway is the subnet's first address; the driver is
// overlay when unset.
func TestCreateNetworkAllocatesSubnets(t *testing.T) {
	srv, _ := newServer(t)
	a := mustCreateNetwork(t, srv, netSpec("a"))
	if a.Spec.Driver != api.DriverOverlay || a.IPAM == nil || a.IPAM.Subnet != "10.0.0.0/24" || a.IPAM.Gateway != "10.0.0.1" {
		t.Fatalf("first network: driver %q, IPAM %+v; want overlay, 10.0.0.0/24 via 10.0.0.1", a.Spec.Driver, a.IPAM)
	}
	mine := mustCreateNetwork(t, srv, withSubnet(netSpec("mine"), "10.0.1.0/24"))
	if mine.IPAM.Subnet != "10.0.1.0/24" || mine.IPAM.Gateway != "10.0.1.1" {
		t.Fatalf("network with a subnet: %+v", mine.IPAM)
	}
	big := mustCreateNetwork(t, srv, withSubnet(netSpec("big"), "10.0.4.0/22"))
	// The pool's next free /24 goes past the user's subnets.
	for _, want := range []string{"10.0.2.0/24", "10.0.3.0/24", "10.0.8.0/24"} {
		n := mustCreateNetwork(t, srv, netSpec("n"+strings.ReplaceAll(want, "/", "-")))
		if n.IPAM.Subnet != want {
			t.Errorf("next network got %s, want %s", n.IPAM.Subnet, want)
		}
	}
	// A removed network's subnet and VNI are free again.
	if a.VNI != api.MinVNI || mine.VNI != api.MinVNI+1 || big.VNI != api.MinVNI+2 {
		t.Errorf("VNIs %d %d %d, want %d on", a.VNI, mine.VNI, big.VNI, api.MinVNI)
	}
	if err := srv.RemoveNetwork(ctx, big.ID); err != nil {
		t.Fatal(err)
	}
	if n := mustCreateNetwork(t, srv, netSpec("after")); n.IPAM.Subnet != "10.0.4.0/24" || n.VNI != big.VNI {
		t.Errorf("after a removal got %s VNI %d, want 10.0.4.0/24 VNI %d", n.IPAM.Subnet, n.VNI, big.VNI)
	}
	other := netSpec("plugin")
	other.Driver = "weave"
	if n := mustCreateNetwork(t, srv, other); n.VNI != 0 {
		t.Errorf("a %s network got VNI %d, want none", n.Spec.Driver, n.VNI)
	}
}

// The cluster's own pool and subnet size are used when it has them.
func TestCreateNetworkFromTheClusterPool(t *testing.T) {
	srv, s := newServer(t)
	spec := api.DefaultClusterSpec()
	spec.Network = api.NetworkConfig{DefaultAddrPool: []string{"192.168.0.0/23", "172.20.0.0/16"}, SubnetSize: 24}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateCluster(&api.Cluster{ID: "c", Spec: spec}) })
	for i, want := range []string{"192.168.0.0/24", "192.168.1.0/24", "172.20.0.0/24"} {
		if n := mustCreateNetwork(t, srv, netSpec(fmt.Sprint("n", i))); n.IPAM.Subnet != want {
			t.Errorf("got %s, want %s", n.IPAM.Subnet, want)
		}
	}
}

// Bad networks are refused, naming the field and why, and change nothing.
func TestCreateNetworkRefusesBadInput(t *testing.T) {
	srv, s := newServer(t)
	mustCreateNetwork(t, srv, withSubnet(netSpec("a"), "10.1.0.0/16"))
	mustCreateNetwork(t, srv, api.NetworkSpec{Annotations: api.Annotations{Name: "ingress"}, Ingress: true})
	before, _ := state(t, s)
	for _, c := range []struct {
		spec api.NetworkSpec
		is   error
		want string
	}{
		{withSubnet(netSpec("b"), "10.1.2.0/24"), controlapi.ErrInvalidArgument,
			`network "b": ipam.subnet: 10.1.2.0/24 overlaps subnet 10.1.0.0/16 of network "a"`},
		{withSubnet(netSpec("b"), "10.0.0.0/8"), controlapi.ErrInvalidArgument,
			`network "b": ipam.subnet: 10.0.0.0/8 overlaps subnet`},
		{withSubnet(netSpec("b"), "10.2.0.0"), controlapi.ErrInvalidArgument,
			`network "b": ipam.subnet: must be an IPv4 CIDR such as 10.0.1.0/24, got "10.2.0.0"`},
		{withSubnet(netSpec("b"), "10.2.0.1/24"), controlapi.ErrInvalidArgument,
			`network "b": ipam.subnet: must be a network address, 10.2.0.0/24 rather than 10.2.0.1/24`},
		{api.NetworkSpec{Annotations: api.Annotations{Name: "b"}, IPAM: &api.IPAMConfig{Subnet: "10.2.0.0/24", Gateway: "10.3.0.1"}},
			controlapi.ErrInvalidArgument, `network "b": ipam.gateway: must be inside subnet 10.2.0.0/24, got 10.3.0.1`},
		{netSpec("b c"), controlapi.ErrInvalidArgument, `network "b c": name: must start with a letter or digit`},
		{netSpec("a"), api.ErrNameConflict, `create network "a"`},
		{api.NetworkSpec{Annotations: api.Annotations{Name: "ingress2"}, Ingress: true}, controlapi.ErrInvalidArgument,
			`network "ingress2": ingress: the cluster has an ingress network already, "ingress"`},
	} {
		_, err := srv.CreateNetwork(ctx, c.spec)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create %+v: got %v, want %v naming %s", c.spec, err, c.is, c.want)
		}
	}
	if after, _ := state(t, s); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused create changed the networks: %v", after)
	}
}

// ListNetworks filters by part of the name, ID prefix and labels.
func TestListNetworksFilters(t *testing.T) {
	srv, _ := newServer(t)
	front := netSpec("front")
	front.Labels = map[string]string{"tier": "web", "env": "prod"}
	back := netSpec("backend")
	back.Labels = map[string]string{"tier": "db"}
	f := mustCreateNetwork(t, srv, front)
	mustCreateNetwork(t, srv, back)
	mustCreateNetwork(t, srv, netSpec("other"))
	names := func(filter control.NetworkFilter) string {
		t.Helper()
		nets, err := srv.ListNetworks(ctx, filter)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range nets {
			out = append(out, n.Spec.Name)
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		filter control.NetworkFilter
		want   string
	}{
		{control.NetworkFilter{}, "backend front other"},
		{control.NetworkFilter{Names: []string{"end"}}, "backend"},
		{control.NetworkFilter{Names: []string{"fr", "oth"}}, "front other"},
		{control.NetworkFilter{IDs: []string{f.ID[:5]}}, "front"},
		{control.NetworkFilter{Labels: []string{"tier"}}, "backend front"},
		{control.NetworkFilter{Labels: []string{"tier=web", "env"}}, "front"},
		{control.NetworkFilter{Labels: []string{"tier=web"}, Names: []string{"back"}}, ""},
	} {
		if got := names(c.filter); got != c.want {
			t.Errorf("filter %+v: %q, want %q", c.filter, got, c.want)
		}
	}
}

// A service names its networks by name or ID; they are stored as IDs, and
// the service gets a VIP in each (and a host VIP); a dnsrr service gets
// none; one publishing ingress ports gets a VIP on the ingress network.
func TestServiceNetworksAndVIPs(t *testing.T) {
	srv, _ := newServer(t)
	app := mustCreateNetwork(t, srv, netSpec("app"))
	db := mustCreateNetwork(t, srv, netSpec("db"))
	ingress := mustCreateNetwork(t, srv, api.NetworkSpec{Annotations: api.Annotations{Name: "ingress"}, Ingress: true})

	web := mustCreate(t, srv, withPorts(onNetworks(spec("web", 2), "app", db.ID[:6]), tcp(8080)))
	if got := web.Spec.TaskTemplate.Networks; got[0].Target != app.ID || got[1].Target != db.ID {
		t.Fatalf("networks stored as %+v, want IDs %s and %s", got, app.ID, db.ID)
	}
	vips := map[string]string{}
	for _, v := range web.Endpoint.VirtualIPs {
		vips[v.NetworkID] = v.Addr
	}
	want := map[string]string{app.ID: "10.0.0.2/24", db.ID: "10.0.1.2/24", ingress.ID: "10.0.2.2/24"}
	if !reflect.DeepEqual(vips, want) {
		t.Errorf("VIPs %v, want %v", vips, want)
	}
	hv, err := netip.ParseAddr(web.Endpoint.HostVIP)
	if err != nil || !netip.MustParsePrefix(api.HostVIPRange).Contains(hv) {
		t.Errorf("host VIP %q, want an address of %s", web.Endpoint.HostVIP, api.HostVIPRange)
	}

	rr := spec("rr", 1)
	rr.EndpointSpec = &api.EndpointSpec{Mode: api.ResolutionModeDNSRR}
	rrSvc := mustCreate(t, srv, onNetworks(rr, "app"))
	if len(rrSvc.Endpoint.VirtualIPs) != 0 || rrSvc.Endpoint.HostVIP != "" {
		t.Errorf("dnsrr service has VIPs: %+v", rrSvc.Endpoint)
	}
	other := mustCreate(t, srv, onNetworks(spec("other", 1), "app"))
	if other.Endpoint.VirtualIPs[0].Addr != "10.0.0.3/24" || other.Endpoint.HostVIP == web.Endpoint.HostVIP {
		t.Errorf("second service on app: %+v; want 10.0.0.3/24 and its own host VIP", other.Endpoint)
	}

	// An update keeps the VIPs of the networks it keeps, frees the others.
	upd := web.Spec.Copy()
	upd.TaskTemplate.Networks = upd.TaskTemplate.Networks[:1]
	web2, err := srv.UpdateService(ctx, web.ID, web.Meta.Version, upd)
	if err != nil {
		t.Fatal(err)
	}
	if len(web2.Endpoint.VirtualIPs) != 2 || web2.Endpoint.VirtualIPs[0] != web.Endpoint.VirtualIPs[0] || web2.Endpoint.HostVIP != web.Endpoint.HostVIP {
		t.Errorf("after leaving db: %+v, was %+v", web2.Endpoint, web.Endpoint)
	}
	if s := mustCreate(t, srv, onNetworks(spec("db-user", 1), "db")); s.Endpoint.VirtualIPs[0].Addr != "10.0.1.2/24" {
		t.Errorf("db's freed VIP was not reused: %+v", s.Endpoint.VirtualIPs)
	}
}

// Services naming a network that does not exist (or the ingress network,
// or one twice) are refused naming the field, and nothing changes.
func TestServiceNetworkRefusals(t *testing.T) {
	srv, s := newServer(t)
	app := mustCreateNetwork(t, srv, netSpec("app"))
	mustCreateNetwork(t, srv, api.NetworkSpec{Annotations: api.Annotations{Name: "ingress"}, Ingress: true})
	web := mustCreate(t, srv, spec("web", 1))
	nets, svcs := state(t, s)
	for _, c := range []struct {
		spec api.ServiceSpec
		want string
	}{
		{onNetworks(spec("x", 1), "app", "nope"), `service "x": task_template.networks[1].target: network "nope" not found`},
		{onNetworks(spec("x", 1), "ingress"), `service "x": task_template.networks[0].target: "ingress" is the ingress network`},
		{onNetworks(spec("x", 1), "app", app.ID), `service "x": task_template.networks[1].target: network "app" is also task_template.networks[0]`},
	} {
		if _, err := srv.CreateService(ctx, c.spec); !errors.Is(err, controlapi.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create: got %v, want %s", err, c.want)
		}
		if _, err := srv.UpdateService(ctx, web.ID, web.Meta.Version, withName(c.spec, "web")); !errors.Is(err, controlapi.ErrInvalidArgument) ||
			!strings.Contains(err.Error(), strings.Replace(c.want, `"x"`, `"web"`, 1)) {
			t.Errorf("update: got %v, want %s", err, c.want)
		}
	}
	if n2, s2 := state(t, s); !reflect.DeepEqual(nets, n2) || !reflect.DeepEqual(svcs, s2) {
		t.Error("a refused write changed the store")
	}
}

func withName(s api.ServiceSpec, name string) api.ServiceSpec {
	s = s.Copy()
	s.Name = name
	return s
}

// A network in use is not removed: the error names its services. The
// ingress network is in use by the services publishing ingress ports.
func TestRemoveNetworkInUse(t *testing.T) {
	srv, s := newServer(t)
	mustCreateNetwork(t, srv, netSpec("app"))
	mustCreateNetwork(t, srv, api.NetworkSpec{Annotations: api.Annotations{Name: "ingress"}, Ingress: true})
	mustCreate(t, srv, onNetworks(spec("web", 1), "app"))
	mustCreate(t, srv, onNetworks(spec("db", 1), "app"))
	pub := mustCreate(t, srv, withPorts(spec("pub", 1), tcp(8080)))
	nets, svcs := state(t, s)
	for ref, want := range map[string]string{
		"app":     `network "app" is used by service(s) "db", "web"`,
		"ingress": `network "ingress" is used by service(s) "pub"`,
	} {
		err := srv.RemoveNetwork(ctx, ref)
		if !errors.Is(err, controlapi.ErrInUse) || !strings.Contains(err.Error(), want) {
			t.Errorf("remove %s: got %v, want ErrInUse: %s", ref, err, want)
		}
	}
	if n2, s2 := state(t, s); !reflect.DeepEqual(nets, n2) || !reflect.DeepEqual(svcs, s2) {
		t.Error("a refused removal changed the store")
	}
	for _, svc := range []string{"web", "db", pub.ID} {
		if err := srv.RemoveService(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	for _, ref := range []string{"app", "ingress"} {
		if err := srv.RemoveNetwork(ctx, ref); err != nil {
			t.Errorf("remove unused %s: %v", ref, err)
		}
	}
	if _, err := srv.GetNetwork(ctx, "app"); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("removed network still found: %v", err)
	}
}

// The cluster's address pool is chosen at init and cannot change.
func TestAddrPoolCannotChange(t *testing.T) {
	srv, s := newServer(t)
	mustUpdate(t, s, func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{ID: "c", Spec: api.DefaultClusterSpec()})
	})
	c, err := srv.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c2 := range []struct {
		edit func(*api.ClusterSpec)
		want string
	}{
		{func(s *api.ClusterSpec) { s.Network.DefaultAddrPool = []string{"192.168.0.0/16"} }, "network.default_addr_pool: cannot change after init"},
		{func(s *api.ClusterSpec) { s.Network.SubnetSize = 26 }, "network.subnet_size: cannot change after init"},
	} {
		spec := c.Spec.Copy()
		c2.edit(&spec)
		if _, err := srv.UpdateCluster(ctx, c.Meta.Version, spec); !errors.Is(err, controlapi.ErrInvalidArgument) || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("got %v, want %s", err, c2.want)
		}
	}
	// The defaults written out are no change.
	spec := c.Spec.Copy()
	spec.Network = api.NetworkConfig{DefaultAddrPool: []string{api.DefaultAddrPool}, SubnetSize: api.DefaultSubnetSize}
	if _, err := srv.UpdateCluster(ctx, c.Meta.Version, spec); err != nil {
		t.Error(err)
	}
}
