package allocator

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// jsonEqual is how endpoint specs were compared before sameEndpointSpec:
// by their encodings. It is the oracle sameEndpointSpec must agree with.
func jsonEqual(t *testing.T, a, b api.EndpointSpec) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

func baseSpec() api.EndpointSpec {
	return api.EndpointSpec{Mode: api.ResolutionModeVIP, Ports: []api.PortConfig{
		{Name: "http", Protocol: api.PortProtocolTCP, TargetPort: 80, PublishedPort: 8080, PublishMode: api.PublishModeIngress},
		{Name: "dns", Protocol: api.PortProtocolUDP, TargetPort: 53, PublishedPort: 0, PublishMode: api.PublishModeHost},
	}}
}

// changed returns v with a different, non-zero value: a string gets a
// suffix, a number one more.
func changed(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "-changed")
	case reflect.Uint32, reflect.Uint64, reflect.Uint:
		v.SetUint(v.Uint() + 1)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(v.Int() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	default:
		t.Fatalf("a field of kind %s: teach this test to change it", v.Kind())
	}
}

// A change of any one field of the spec or of any one port is a different
// spec; reflection walks the fields, so a field added to EndpointSpec or
// PortConfig is covered (or fails here) without touching the test.
func TestSameEndpointSpecComparesEveryField(t *testing.T) {
	check := func(name string, a, b api.EndpointSpec, want bool) {
		t.Helper()
		if got := sameEndpointSpec(a, b); got != want {
			t.Errorf("%s: sameEndpointSpec = %v, want %v", name, got, want)
		}
		if got := sameEndpointSpec(b, a); got != want {
			t.Errorf("%s (swapped): sameEndpointSpec = %v, want %v", name, got, want)
		}
		if oracle := jsonEqual(t, a, b); oracle != want {
			t.Errorf("%s: the JSON encodings say %v, want %v", name, oracle, want)
		}
	}
	check("identical", baseSpec(), baseSpec(), true)

	specType := reflect.TypeFor[api.EndpointSpec]()
	for i := range specType.NumField() {
		f := specType.Field(i)
		if f.Name == "Ports" {
			continue // below, port by port and field by field
		}
		b := baseSpec()
		changed(t, reflect.ValueOf(&b).Elem().Field(i))
		check("EndpointSpec."+f.Name, baseSpec(), b, false)
	}
	portType := reflect.TypeFor[api.PortConfig]()
	for port := range baseSpec().Ports {
		for i := range portType.NumField() {
			b := baseSpec()
			changed(t, reflect.ValueOf(&b.Ports[port]).Elem().Field(i))
			check(fmt.Sprintf("Ports[%d].%s", port, portType.Field(i).Name), baseSpec(), b, false)
		}
	}

	b := baseSpec()
	b.Ports = b.Ports[:1]
	check("a port fewer", baseSpec(), b, false)
	b = baseSpec()
	b.Ports[0], b.Ports[1] = b.Ports[1], b.Ports[0]
	check("ports in another order", baseSpec(), b, false)
	check("no ports and an empty list", api.EndpointSpec{Mode: api.ResolutionModeVIP}, api.EndpointSpec{Mode: api.ResolutionModeVIP, Ports: []api.PortConfig{}}, true)
	check("no ports and one", api.EndpointSpec{}, api.EndpointSpec{Ports: []api.PortConfig{{}}}, false)
}

// allocated compares a service's endpoint with its spec, the default spec
// (vip, no ports) when it has none.
func TestAllocatedComparesWithTheWantedSpec(t *testing.T) {
	spec := baseSpec()
	s := &api.Service{Spec: api.ServiceSpec{EndpointSpec: &spec}}
	if allocated(s) {
		t.Error("a service without an endpoint is allocated")
	}
	s.Endpoint = &api.Endpoint{Spec: baseSpec()}
	if allocated(s) {
		t.Error("a vip service without a host VIP is allocated")
	}
	s.Endpoint.HostVIP = "127.100.0.1"
	if !allocated(s) {
		t.Error("a service whose endpoint has its spec is not allocated")
	}
	s.Spec.EndpointSpec.Ports[0].PublishedPort = 9090
	if allocated(s) {
		t.Error("a service whose spec changed a published port is allocated")
	}
	s = &api.Service{Endpoint: &api.Endpoint{Spec: api.EndpointSpec{Mode: api.ResolutionModeVIP}, HostVIP: "127.100.0.1"}}
	if !allocated(s) {
		t.Error("a service without an endpoint spec is not allocated with the default one")
	}
	s.Spec.TaskTemplate.Networks = []api.NetworkAttachmentConfig{{Target: "n1"}}
	if allocated(s) {
		t.Error("a service without a VIP on a network of its template is allocated")
	}
	s.Endpoint.VirtualIPs = []api.EndpointVirtualIP{{NetworkID: "n1", Addr: "10.0.0.2/24"}}
	if !allocated(s) {
		t.Error("a service with its VIPs is not allocated")
	}
	s.Endpoint.Spec.Mode = api.ResolutionModeDNSRR
	if allocated(s) {
		t.Error("a dnsrr endpoint matches the default spec")
	}
	s.Spec.EndpointSpec = &api.EndpointSpec{Mode: api.ResolutionModeDNSRR}
	if allocated(s) {
		t.Error("a dnsrr service with VIPs is allocated")
	}
	s.Endpoint.VirtualIPs, s.Endpoint.HostVIP = nil, ""
	if !allocated(s) {
		t.Error("a dnsrr service without VIPs is not allocated")
	}
}

// BenchmarkAllocated is what the typed comparison saves: allocated runs for
// every service on every allocation and every service event.
func BenchmarkAllocated(b *testing.B) {
	spec := baseSpec()
	s := &api.Service{Spec: api.ServiceSpec{EndpointSpec: &spec}, Endpoint: &api.Endpoint{Spec: baseSpec()}}
	b.Run("typed", func(b *testing.B) {
		for b.Loop() {
			if !allocated(s) {
				b.Fatal("not allocated")
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			x, _ := json.Marshal(s.Endpoint.Spec)
			y, _ := json.Marshal(wantedSpec(s))
			if string(x) != string(y) {
				b.Fatal("not allocated")
			}
		}
	})
}
