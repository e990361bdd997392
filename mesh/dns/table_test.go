package dns_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/mesh/dns"
)

func TestTableRefusesBadServicesAndChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		svc     dns.Service
		problem string
	}{
		{"empty name", dns.Service{}, "name: must not be empty"},
		{"empty label", dns.Service{Name: "a..b"}, "name: "},
		{"bad character", dns.Service{Name: "we b"}, "name: "},
		{"long label", dns.Service{Name: strings.Repeat("a", 64)}, "name: "},
		{"long name", dns.Service{Name: strings.Repeat("a.", 101)}, "name: must be at most 200 characters"},
		{"bad alias", dns.Service{Name: "web", Aliases: []string{"ok", "not ok"}}, "aliases[1]: "},
		{"zero VIP", dns.Service{Name: "web", VIPs: []netip.Addr{{}}}, "vips[0]: not a valid address"},
		{"protocol", dns.Service{Name: "web", Ports: []dns.Port{{Protocol: "sctp", Target: 1}}}, `ports[0].protocol: must be "tcp" or "udp", got "sctp"`},
		{"port 0", dns.Service{Name: "web", Ports: []dns.Port{{Protocol: "tcp"}}}, "ports[0].target: must not be 0"},
		{"port name", dns.Service{Name: "web", Ports: []dns.Port{{Name: "h t", Protocol: "tcp", Target: 1}}}, "ports[0].name: "},
		{"task name", dns.Service{Name: "web", Tasks: []dns.Task{{Name: "", Addr: ip("10.0.0.1")}}}, "tasks[0].name: must not be empty"},
		{"task twice", dns.Service{Name: "web", Tasks: []dns.Task{{Name: "web.1.a", Addr: ip("10.0.0.1")}, {Name: "WEB.1.A", Addr: ip("10.0.0.1")}}}, `tasks[1].name: task "web.1.a" listed twice`},
		{"task address", dns.Service{Name: "web", Tasks: []dns.Task{{Name: "web.1.a"}}}, "tasks[0].addr: not a valid address"},
		{"task of another", dns.Service{Name: "web", Tasks: []dns.Task{{Name: "db.1.a", Addr: ip("10.0.0.1")}}}, `tasks[0].name: task "db.1.a" belongs to service "db"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := dns.NewTable()
			old := dns.Service{Name: "web", VIPs: []netip.Addr{ip("127.77.0.2")}}
			db := dns.Service{Name: "db", Tasks: []dns.Task{{Name: "db.1.a", Addr: ip("10.0.0.9")}}}
			if err := table.Set(old); err != nil {
				t.Fatal(err)
			}
			if err := table.Set(db); err != nil {
				t.Fatal(err)
			}
			err := table.Set(tc.svc)
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Fatalf("Set: %v, want an error containing %q", err, tc.problem)
			}
			if got, ok := table.Service("web"); !ok || !slices.Equal(got.VIPs, old.VIPs) {
				t.Errorf("after a refused Set, web is %+v, %v; want it unchanged", got, ok)
			}
		})
	}
}

func TestTableIndexes(t *testing.T) {
	table := dns.NewTable()
	web := dns.Service{
		Name:    "Web",
		Aliases: []string{"front", "WWW", "web"}, // its own name is dropped
		VIPs:    []netip.Addr{netip.MustParseAddr("::ffff:127.77.0.2")},
		Tasks:   []dns.Task{{Name: "web.1.a", Addr: ip("10.0.0.1"), HostPorts: map[uint16]uint16{80: 31000}}},
	}
	if err := table.Set(web); err != nil {
		t.Fatal(err)
	}
	web.Tasks[0].HostPorts[80] = 1 // the table kept its own copy
	got, ok := table.Service("www")
	if !ok || got.Name != "web" || !slices.Equal(got.Aliases, []string{"front", "www"}) || got.VIPs[0] != ip("127.77.0.2") {
		t.Errorf("Service(www) = %+v, %v; want web, lower-cased, the VIP unmapped", got, ok)
	}
	if task, ok := table.Task("web.1.a"); !ok || task.HostPorts[80] != 31000 {
		t.Errorf("Task = %+v, %v; want host port 31000", task, ok)
	}
	if names := table.Names(ip("127.77.0.2")); !slices.Equal(names, []string{"web"}) {
		t.Errorf("Names(VIP) = %v", names)
	}

	// An alias shared by two services denotes the first by name; a
	// service's own name beats another's alias.
	if err := table.Set(dns.Service{Name: "api", Aliases: []string{"front"}}); err != nil {
		t.Fatal(err)
	}
	if err := table.Set(dns.Service{Name: "www"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := table.Service("front"); got.Name != "api" {
		t.Errorf("front denotes %q, want api (first by name)", got.Name)
	}
	if got, _ := table.Service("www"); got.Name != "www" {
		t.Errorf("www denotes %q, want the service www over web's alias", got.Name)
	}

	// Set replaces the whole service; Delete clears every index.
	if err := table.Set(dns.Service{Name: "web", Tasks: []dns.Task{{Name: "web.2.b", Addr: ip("10.0.0.2")}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := table.Task("web.1.a"); ok {
		t.Error("a task dropped by Set is still found")
	}
	if names := table.Names(ip("127.77.0.2")); len(names) != 0 {
		t.Errorf("a VIP dropped by Set still has names %v", names)
	}
	if got, _ := table.Service("front"); got.Name != "api" {
		t.Errorf("front denotes %q after web dropped it, want api", got.Name)
	}
	if !table.Delete("WEB") || table.Delete("web") {
		t.Error("Delete did not report the service there, then gone")
	}
	if _, ok := table.Task("web.2.b"); ok {
		t.Error("a task of a deleted service is still found")
	}
	if names := table.Names(ip("10.0.0.2")); len(names) != 0 {
		t.Errorf("an address of a deleted service still has names %v", names)
	}
	// A task name freed by Delete may be taken by another service.
	if err := table.Set(dns.Service{Name: "other", Tasks: []dns.Task{{Name: "web.2.b", Addr: ip("10.0.0.2")}}}); err != nil {
		t.Errorf("a freed task name: %v", err)
	}
}
