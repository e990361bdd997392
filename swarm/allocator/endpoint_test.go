package allocator_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/allocator"
	"github.com/apiary-io/apiary/swarm/api"
)

func withPorts(id, name string, ports ...api.PortConfig) *api.Service {
	return &api.Service{ID: id, Spec: api.ServiceSpec{Annotations: api.Annotations{Name: name}, EndpointSpec: &api.EndpointSpec{Ports: ports}}}
}

// Endpoint decides from the port index: an explicit port held by another
// service's endpoint is refused naming the port's place and the holder; a
// service only asking for a port does not hold it against an explicit
// request, but a dynamic port keeps off it; dynamic ports take the lowest
// free one, skipping what the service itself takes.
func TestEndpointFromThePortIndex(t *testing.T) {
	s := store.NewMemoryStore(nil)
	defer s.Close()
	held := withPorts("held", "web", api.PortConfig{TargetPort: 80, PublishedPort: 8080})
	held.Endpoint = &api.Endpoint{Spec: *held.Spec.EndpointSpec, Ports: []api.PortConfig{
		{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: api.PublishModeIngress},
		{Protocol: "tcp", TargetPort: 81, PublishedPort: 30000, PublishMode: api.PublishModeIngress}}}
	waiting := withPorts("waiting", "queued", api.PortConfig{TargetPort: 80, PublishedPort: 30001})
	if err := s.Update(func(tx store.Tx) error {
		if err := tx.CreateService(held); err != nil {
			return err
		}
		return tx.CreateService(waiting)
	}); err != nil {
		t.Fatal(err)
	}
	endpoint := func(svc *api.Service) (ep *api.Endpoint, err error) {
		s.View(func(tx store.ReadTx) { ep, err = allocator.Endpoint(tx, svc) })
		return ep, err
	}

	_, err := endpoint(withPorts("new", "api", api.PortConfig{TargetPort: 1, PublishedPort: 9000}, api.PortConfig{TargetPort: 2, PublishedPort: 8080}))
	if !errors.Is(err, allocator.ErrPortInUse) || !strings.Contains(err.Error(), "endpoint_spec.ports[1].published_port") || !strings.Contains(err.Error(), `"web"`) {
		t.Errorf("explicit port held elsewhere: %v; want ErrPortInUse naming ports[1] and service \"web\"", err)
	}
	_, err = endpoint(withPorts("new", "api", api.PortConfig{TargetPort: 1, PublishedPort: 9000}, api.PortConfig{TargetPort: 2, PublishedPort: 9000}))
	if !errors.Is(err, allocator.ErrPortInUse) || !strings.Contains(err.Error(), "ports[1]") {
		t.Errorf("one port twice: %v; want ErrPortInUse naming ports[1]", err)
	}
	// The holder itself may keep its ports (an update of "web").
	if _, err := endpoint(held); err != nil {
		t.Errorf("the holder's own ports: %v", err)
	}
	ep, err := endpoint(withPorts("new", "api",
		api.PortConfig{TargetPort: 1, PublishedPort: 30001}, // only asked for by "queued"
		api.PortConfig{TargetPort: 2},                       // dynamic: 30000 held, 30001 this one's, 30002
		api.PortConfig{TargetPort: 3, Protocol: "udp"},      // dynamic in udp's own space
		api.PortConfig{TargetPort: 4, PublishedPort: 8080, PublishMode: api.PublishModeHost}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ep.Ports {
		got = append(got, store.PortKey(p.Protocol, p.PublishedPort)+":"+string(p.PublishMode))
	}
	want := []string{"tcp/30001:ingress", "tcp/30002:ingress", "udp/30000:ingress", "tcp/8080:host"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ports %v, want %v", got, want)
	}
}
