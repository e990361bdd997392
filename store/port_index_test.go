package store

import (
	"errors"
	"slices"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// The port index answers who publishes an ingress port: an allocated
// endpoint's ports, or before allocation the ports the spec asks for by
// number; never host-mode ports or dynamic ones not yet given a number;
// and it follows updates and deletes.
func TestFindServicesByPublishedPort(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	ports := func(ps ...api.PortConfig) *api.EndpointSpec { return &api.EndpointSpec{Ports: ps} }
	update(t, s, func(tx Tx) error {
		for _, svc := range []*api.Service{
			{ID: "alloc", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "a"}, EndpointSpec: ports(api.PortConfig{TargetPort: 80})},
				Endpoint: &api.Endpoint{Ports: []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 30000}}}},
			{ID: "wants", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "w"}, EndpointSpec: ports(
				api.PortConfig{TargetPort: 80, PublishedPort: 8080},
				api.PortConfig{Protocol: "udp", TargetPort: 53, PublishedPort: 53},
				api.PortConfig{TargetPort: 81},
				api.PortConfig{TargetPort: 82, PublishedPort: 9090, PublishMode: api.PublishModeHost})}},
		} {
			if err := tx.CreateService(svc); err != nil {
				return err
			}
		}
		return nil
	})
	find := func(proto string, port uint32) []string {
		t.Helper()
		var out []string
		var err error
		s.View(func(tx ReadTx) { out, err = ids(tx.FindServices(ByPublishedPort(proto, port))) })
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		proto string
		port  uint32
		want  []string
	}{
		{"tcp", 30000, []string{"alloc"}},
		{"", 30000, []string{"alloc"}}, // no protocol is TCP
		{"udp", 30000, nil},
		{"tcp", 8080, []string{"wants"}},
		{"udp", 53, []string{"wants"}},
		{"tcp", 53, nil},
		{"tcp", 9090, nil}, // host mode holds no ingress port
		{"tcp", 0, nil},
	} {
		if got := find(c.proto, c.port); !slices.Equal(got, c.want) {
			t.Errorf("ByPublishedPort(%q, %d) = %v, want %v", c.proto, c.port, got, c.want)
		}
	}
	// Allocating "wants" replaces what it asked for with what it holds.
	update(t, s, func(tx Tx) error {
		svc := tx.GetService("wants")
		svc.Endpoint = &api.Endpoint{Ports: []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080}, {Protocol: "tcp", TargetPort: 81, PublishedPort: 30001}}}
		return tx.UpdateService(svc)
	})
	if got := find("udp", 53); got != nil {
		t.Errorf("after allocation, udp/53 = %v, want nobody", got)
	}
	if got := find("tcp", 30001); !slices.Equal(got, []string{"wants"}) {
		t.Errorf("after allocation, tcp/30001 = %v, want [wants]", got)
	}
	update(t, s, func(tx Tx) error { return tx.DeleteService("alloc") })
	if got := find("tcp", 30000); got != nil {
		t.Errorf("after delete, tcp/30000 = %v, want nobody", got)
	}
}

func update(t *testing.T, s *MemoryStore, fn func(Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// Two services never hold one ingress port: a write that would make a
// second holder (two writers that chose the port on states that did not
// show each other's) fails as a conflict naming both, and writes nothing.
// Asking for a port held elsewhere is not holding it.
func TestSecondHolderOfAPortRefused(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	holding := func(id, name string, port uint32) *api.Service {
		return &api.Service{ID: id, Spec: api.ServiceSpec{Annotations: api.Annotations{Name: name}},
			Endpoint: &api.Endpoint{Ports: []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: port}}}}
	}
	update(t, s, func(tx Tx) error { return tx.CreateService(holding("a", "web", 8080)) })
	index := s.Index()
	err := s.Update(func(tx Tx) error { return tx.CreateService(holding("b", "api", 8080)) })
	var taken *PortTakenError
	if !errors.As(err, &taken) || !errors.Is(err, ErrConflict) || taken.Holder != "web" || taken.Port != "tcp/8080" {
		t.Fatalf("second holder of tcp/8080: %v, want a PortTakenError (a conflict) naming web", err)
	}
	if s.Index() != index {
		t.Error("the refused write changed the store")
	}
	// Asking (no endpoint yet), another protocol and host mode are fine.
	update(t, s, func(tx Tx) error {
		asks := &api.Service{ID: "c", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "c"},
			EndpointSpec: &api.EndpointSpec{Ports: []api.PortConfig{{TargetPort: 80, PublishedPort: 8080}}}}}
		udp := holding("d", "dns", 8080)
		udp.Endpoint.Ports[0].Protocol = "udp"
		host := holding("e", "host", 8080)
		host.Endpoint.Ports[0].PublishMode = api.PublishModeHost
		for _, svc := range []*api.Service{asks, udp, host} {
			if err := tx.CreateService(svc); err != nil {
				return err
			}
		}
		return nil
	})
	// Once the holder lets it go, the port can be taken.
	update(t, s, func(tx Tx) error { return tx.DeleteService("a") })
	update(t, s, func(tx Tx) error { return tx.CreateService(holding("b", "api", 8080)) })
}
