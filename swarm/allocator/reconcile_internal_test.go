package allocator

import (
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// stillFree looks again, in the transaction that writes an endpoint, at the
// ports chosen on an earlier view: one that another service took since
// (the control API allocates too) is no longer free; a dynamic port is
// also not free once another service asks for it by number.
func TestStillFree(t *testing.T) {
	ingress := func(target, published uint32) api.PortConfig {
		return api.PortConfig{TargetPort: target, PublishedPort: published}
	}
	svc := func(id string, ports ...api.PortConfig) *api.Service {
		return &api.Service{ID: id, Spec: api.ServiceSpec{Annotations: api.Annotations{Name: id}, EndpointSpec: &api.EndpointSpec{Ports: ports}}}
	}
	// s asks for 8080 and a dynamic port; its endpoint was chosen as
	// 8080 and 30000.
	s := svc("s", ingress(80, 8080), ingress(81, 0))
	chosen := &api.Endpoint{Spec: *s.Spec.EndpointSpec, Ports: []api.PortConfig{
		{Protocol: api.PortProtocolTCP, TargetPort: 80, PublishedPort: 8080, PublishMode: api.PublishModeIngress},
		{Protocol: api.PortProtocolTCP, TargetPort: 81, PublishedPort: 30000, PublishMode: api.PublishModeIngress}}}
	held := func(id string, port uint32) *api.Service {
		o := svc(id, ingress(80, port))
		o.Endpoint = &api.Endpoint{Spec: *o.Spec.EndpointSpec, Ports: []api.PortConfig{
			{Protocol: api.PortProtocolTCP, TargetPort: 80, PublishedPort: port, PublishMode: api.PublishModeIngress}}}
		return o
	}
	for _, tc := range []struct {
		name   string
		others []*api.Service
		free   bool
	}{
		{"nobody else", nil, true},
		{"another holds the explicit port", []*api.Service{held("o", 8080)}, false},
		{"another holds the dynamic port", []*api.Service{held("o", 30000)}, false},
		{"another asks for the explicit port", []*api.Service{svc("o", ingress(80, 8080))}, true},
		{"another asks for the dynamic port", []*api.Service{svc("o", ingress(80, 30000))}, false},
		{"another holds other ports", []*api.Service{held("o", 8081), held("p", 30001)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := store.NewMemoryStore(nil)
			defer st.Close()
			if err := st.Update(func(tx store.Tx) error {
				for _, o := range append([]*api.Service{s.Copy()}, tc.others...) {
					if err := tx.CreateService(o); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var free bool
			var err error
			st.View(func(tx store.ReadTx) { free, err = stillFree(tx, s, chosen) })
			if err != nil || free != tc.free {
				t.Fatalf("stillFree = %v, %v; want %v", free, err, tc.free)
			}
		})
	}
}
