package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

// manager starts a one-manager cluster serving its control socket and
// returns a runner of apiaryctl against it.
func manager(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	cfg := swarm.DefaultManagerConfig()
	cfg.Logger = testutil.DiscardLogger()
	mgr, err := swarm.StartManager(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	dir, err := os.MkdirTemp("", "actl") // a short path: sockets' are bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go mgr.ServeControl(l)
	return func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootTo(&out)
		root.SetArgs(append([]string{"--socket", sock, "--timeout", "20s"}, args...))
		err := root.Execute()
		return out.String(), err
	}
}

func must(t *testing.T, run func(...string) (string, error), args ...string) string {
	t.Helper()
	out, err := run(args...)
	if err != nil {
		t.Fatalf("apiaryctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func inspectJSON[T any](t *testing.T, run func(...string) (string, error), args ...string) T {
	t.Helper()
	var out []T
	if err := json.Unmarshal([]byte(must(t, run, args...)), &out); err != nil || len(out) != 1 {
		t.Fatalf("%s: %v (%d objects)", strings.Join(args, " "), err, len(out))
	}
	return out[0]
}

// The network commands and the service flags of networking, end to end
// through a manager's control socket: networks made, listed, filtered,
// inspected; a service on a network by name with an alias and ports in
// both forms shows its VIPs and ports; update adds and removes networks
// and ports; a network in use is not removed; bad input is refused naming
// the flag or the field, and changes nothing.
func TestNetworkCommands(t *testing.T) {
	run := manager(t)
	must(t, run, "network", "create", "app", "--label", "tier=web")
	must(t, run, "network", "create", "--subnet", "10.50.0.0/24", "--gateway", "10.50.0.254", "--internal", "db")
	ls := must(t, run, "network", "ls")
	for _, want := range []string{"NETWORK ID", "app", "overlay", "swarm", "db", "10.50.0.0/24", "ingress", "10.0.0.0/16", "10.1.0.0/24"} {
		if !strings.Contains(ls, want) {
			t.Errorf("network ls lacks %q:\n%s", want, ls)
		}
	}
	if got := must(t, run, "network", "ls", "--filter", "label=tier=web", "--format", "json"); !strings.Contains(got, `"app"`) || strings.Contains(got, `"db"`) {
		t.Errorf("filtered by label: %s", got)
	}
	if got := strings.TrimSpace(must(t, run, "network", "ls", "-q", "-f", "name=d")); strings.Count(got, "\n") != 0 || got == "" {
		t.Errorf("ls -q --filter name=d: %q, want one ID", got)
	}
	db := inspectJSON[api.Network](t, run, "network", "inspect", "db")
	if !db.Spec.Internal || db.IPAM.Gateway != "10.50.0.254" || db.Spec.Driver != "overlay" {
		t.Errorf("network inspect db: %+v", db)
	}

	must(t, run, "service", "create", "-d", "--name", "web", "--network", "app", "--network", "name=db,alias=sql,alias=store",
		"-p", "8080:80", "--publish", "published=9090,target=90,protocol=tcp,proxy-protocol=v2,traffic-policy=local",
		"-p", "published=7070,target=70,mode=host", "--", "/bin/app")
	web := inspectJSON[api.Service](t, run, "service", "inspect", "web")
	nets := web.Spec.TaskTemplate.Networks
	if len(nets) != 2 || nets[1].Target != db.ID || !reflect.DeepEqual(nets[1].Aliases, []string{"sql", "store"}) {
		t.Errorf("networks %+v, want app and db (%s) with aliases sql, store", nets, db.ID)
	}
	ep := web.Endpoint
	if len(ep.VirtualIPs) != 3 || ep.VirtualIPs[1].Addr != "10.50.0.1/24" || ep.HostVIP == "" {
		t.Errorf("VIPs %+v, host VIP %q; want app, db (10.50.0.1/24) and ingress, and a host VIP", ep.VirtualIPs, ep.HostVIP)
	}
	if len(ep.Ports) != 3 || ep.Ports[1].ProxyProtocol != "v2" || ep.Ports[1].TrafficPolicy != "local" || ep.Ports[2].PublishMode != "host" {
		t.Errorf("ports %+v", ep.Ports)
	}

	must(t, run, "network", "create", "other")
	must(t, run, "service", "update", "-d", "--network-rm", "db", "--network-add", "name=other,alias=x",
		"--publish-rm", "7070", "--publish-add", "6060:60", "web")
	upd := inspectJSON[api.Service](t, run, "service", "inspect", "web")
	var got []string
	for _, n := range upd.Spec.TaskTemplate.Networks {
		got = append(got, n.Target+strings.Join(n.Aliases, ","))
	}
	other := inspectJSON[api.Network](t, run, "network", "inspect", "other")
	if want := []string{nets[0].Target, other.ID + "x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after update, networks %v, want %v", got, want)
	}
	if v := upd.Endpoint.VirtualIPs; len(v) != 3 || v[0] != ep.VirtualIPs[0] || v[1].NetworkID != other.ID || upd.Endpoint.HostVIP != ep.HostVIP {
		t.Errorf("after update, VIPs %+v host %s; want app's kept, one on other, the same host VIP", v, upd.Endpoint.HostVIP)
	}
	var published []uint32
	for _, p := range upd.Endpoint.Ports {
		published = append(published, p.PublishedPort)
	}
	if !reflect.DeepEqual(published, []uint32{8080, 9090, 6060}) {
		t.Errorf("after update, published ports %v", published)
	}

	// Refused, naming the field or the flag, and nothing changes.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"service", "update", "--network-add", "nope", "web"}, `task_template.networks[2].target: network "nope" not found`},
		{[]string{"service", "create", "--name", "x", "--network", "nope", "--", "/bin/app"}, `task_template.networks[0].target: network "nope" not found`},
		{[]string{"service", "create", "--name", "x", "-p", "8080:80", "--", "/bin/app"}, `endpoint_spec.ports[0].published_port: tcp/8080 is already published by service "web"`},
		{[]string{"service", "create", "--name", "x", "--endpoint-mode", "dnsrr", "-p", "8081:80", "--", "/bin/app"}, "endpoint_spec.ports[0].publish_mode: must be host when endpoint_spec.mode is dnsrr"},
		{[]string{"service", "create", "--name", "x", "--endpoint-mode", "rr", "--", "/bin/app"}, `--endpoint-mode: "rr" is not vip or dnsrr`},
		{[]string{"service", "create", "--name", "x", "-p", "published=x,target=80", "--", "/bin/app"}, `--publish "published=x,target=80": published: must be a port 0-65535, got "x"`},
		{[]string{"service", "create", "--name", "x", "-p", "published=80,target=80,proxy-protocol=v1", "--", "/bin/app"}, `proxy-protocol: must be v2, got "v1"`},
		{[]string{"service", "create", "--name", "x", "-p", "published=80,target=80,traffic-policy=node", "--", "/bin/app"}, `traffic-policy: must be cluster or local, got "node"`},
		{[]string{"service", "create", "--name", "x", "--network", "name=app,alias", "--", "/bin/app"}, `--network "name=app,alias": "alias": want key=value with a value`},
		{[]string{"service", "update", "--network-rm", "db", "web"}, `--network-rm "db": the service is not attached to that network`},
		{[]string{"service", "update", "--publish-rm", "http", "web"}, `--publish-rm "http": published port must be 1-65535`},
		{[]string{"network", "create", "--subnet", "10.50.0.128/25", "b"}, `network "b": ipam.subnet: 10.50.0.128/25 overlaps subnet 10.50.0.0/24 of network "db"`},
		{[]string{"network", "create", "--subnet", "10.60.0.0/33", "b"}, `network "b": ipam.subnet: must be an IPv4 CIDR`},
		{[]string{"network", "create", "--gateway", "10.60.0.1", "b"}, "--gateway: needs --subnet"},
		{[]string{"network", "create", "app"}, `name`},
		{[]string{"network", "rm", "app"}, `network "app" is used by service(s) "web"`},
		{[]string{"network", "ls", "--filter", "driver=overlay"}, `unknown key "driver"`},
	} {
		before := must(t, run, "service", "inspect", "web")
		nets := must(t, run, "network", "ls", "--format", "json")
		out, err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("apiaryctl %s: %v %s; want an error naming %s", strings.Join(c.args, " "), err, out, c.want)
		}
		if after := must(t, run, "service", "inspect", "web"); after != before {
			t.Errorf("apiaryctl %s changed service web", strings.Join(c.args, " "))
		}
		if after := must(t, run, "network", "ls", "--format", "json"); after != nets {
			t.Errorf("apiaryctl %s changed the networks", strings.Join(c.args, " "))
		}
	}
	if out, _ := run("service", "ls"); strings.Contains(out, " x ") {
		t.Errorf("a refused service was created:\n%s", out)
	}
	if got := must(t, run, "swarm", "inspect", "--pretty"); !strings.Contains(got, "Address pool:") || !strings.Contains(got, "10.0.0.0/8") {
		t.Errorf("swarm inspect --pretty does not show the address pool:\n%s", got)
	}
	must(t, run, "network", "rm", "db")
	if _, err := run("network", "inspect", "db"); err == nil {
		t.Error("network db still there after rm")
	}
}
