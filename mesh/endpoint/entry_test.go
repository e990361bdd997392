package endpoint

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/mesh/gossip"
	"github.com/apiary-io/apiary/swarm/api"
)

func TestEntryRoundTrip(t *testing.T) {
	lt := webTask("t1", 1, 31001, true)
	lt.Ports = append(lt.Ports, Port{PortConfig: api.PortConfig{Protocol: "udp", TargetPort: 53,
		PublishedPort: 53, PublishMode: api.PublishModeHost, TrafficPolicy: api.TrafficPolicyLocal}, HostPort: 53})
	r, err := lt.record(addrA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("decoded %+v, want %+v", got, r)
	}
	t.Logf("entry: %d bytes: %s", len(b), b)
}

// The size the bounds' comment promises: a 63-character service name, two
// networks with an alias each and four named ports fit in one entry.
func TestLargeTaskFits(t *testing.T) {
	lt := LocalTask{ID: strings.Repeat("t", 25), ServiceID: strings.Repeat("s", 25),
		ServiceName: strings.Repeat("n", 63), Slot: 100_000, SpecVersion: 1 << 40,
		HostVIP: netip.MustParseAddr("127.100.255.254"), Healthy: true}
	for i := range 4 {
		lt.Ports = append(lt.Ports, Port{PortConfig: api.PortConfig{Name: "port-" + strings.Repeat("x", 5),
			Protocol: "tcp", TargetPort: uint32(60000 + i), PublishedPort: uint32(61000 + i),
			PublishMode: api.PublishModeIngress, ProxyProtocol: "v2", TrafficPolicy: "local"}, HostPort: uint16(62000 + i)})
	}
	for i := range 2 {
		lt.Networks = append(lt.Networks, Network{ID: strings.Repeat("w", 24) + string(rune('0'+i)), Aliases: []string{"alias-" + string(rune('0'+i))}})
	}
	r, err := lt.record(netip.MustParseAddr("192.168.100.200"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.encode()
	if err != nil {
		t.Fatalf("a large task does not fit: %v", err)
	}
	t.Logf("%d of %d bytes", len(b), gossip.MaxValueSize)
}

func TestDecodeRefuses(t *testing.T) {
	const ok = `{"t":"t1","s":"s1","n":"web","a":"127.0.0.2"`
	for _, tc := range []struct {
		value, why string
	}{
		{`not json`, "malformed"},
		{ok + `,"zz":1}`, "unknown field"},
		{ok + `}{}`, "data after"},
		{`{"s":"s1","n":"web","a":"127.0.0.2"}`, "task ID"},
		{`{"t":"t1","n":"web","a":"127.0.0.2"}`, "service ID"},
		{`{"t":"t1","s":"s1","n":"` + strings.Repeat("n", 64) + `","a":"127.0.0.2"}`, "service name"},
		{`{"t":"t1","s":"s1","n":"web"}`, "address"},
		{`{"t":"t1","s":"s1","n":"web","a":"0.0.0.0"}`, "address"},
		{`{"t":"t1","s":"s1","n":"web","a":"224.0.0.1"}`, "address"},
		{`{"t":"t1","s":"s1","n":"web","a":"127.100.0.7"}`, "address"},
		{ok + `,"vip":"10.0.0.1"}`, "host VIP"},
		{ok + `,"vip":"127.100.0.7","rr":true}`, "host VIP"},
		{ok + `,"p":[[0,1,0,0]]}`, "ports[0].target"},
		{ok + `,"p":[[80,1,0,64]]}`, "ports[0].flags"},
		{ok + `,"p":[[80,1,80,6]]}`, "both ingress and host"},
		{ok + `,"p":[[80,1,0,2]]}`, "ports[0].published"},
		{ok + `,"p":[[80,1,8080,0]]}`, "ports[0].published"},
		{ok + `,"p":[[53,1,0,9]]}`, "PROXY protocol on a UDP port"},
		{ok + `,"p":[[80,0,0,0],[80,1,0,0]]}`, "listed twice"},
		{ok + `,"p":[[80,70000,0,0]]}`, "port element 1"},
		{ok + `,"p":[[80,1,0]]}`, "got 3 elements"},
		{ok + `,"p":[[80,1,0,0,"n",20000,1]]}`, "got 7 elements"},
		{ok + `,"p":[[80,1,0,0,"n",1]]}`, "loopback: 1 is outside 20000-24999"},
		{ok + `,"p":[[80,1,0,0,"n",20000]]}`, "loopback: 20000 on a service without a VIP"},
		{ok + `,"p":[{"t":80}]}`, "malformed"},
		{ok + `,"p":[` + strings.Repeat(`[1,1,0,0],`, MaxPorts) + `[2,1,0,0]]}`, "ports: 33, more than"},
		{ok + `,"nw":[{"i":""}]}`, "networks[0].id"},
		{ok + `,"nw":[{"i":"n","a":[""]}]}`, "networks[0].aliases[0]"},
		{ok + `,"nw":[` + strings.Repeat(`{"i":"n"},`, MaxNetworks) + `{"i":"n"}]}`, "networks: 17"},
		{ok + `,"nw":[{"i":"n","a":[` + strings.Repeat(`"a",`, MaxAliases) + `"a"]}]}`, "aliases: 17"},
		{ok + `,"n2":"` + strings.Repeat("x", gossip.MaxValueSize) + `"}`, "bytes, more than"},
	} {
		_, err := decode([]byte(tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("decode %.60s: %v, want an error saying %q", tc.value, err, tc.why)
		}
	}
	if _, err := decode([]byte(ok + `}`)); err != nil {
		t.Errorf("decode of a minimal entry: %v", err)
	}
}

func TestFromTask(t *testing.T) {
	task := &api.Task{ID: "t1", ServiceID: "s1", ServiceAnnotations: api.Annotations{Name: "web"}, Slot: 2, SpecVersion: 7,
		Status: api.TaskStatus{State: api.TaskStateRunning, Health: api.HealthStarting},
		Endpoint: &api.Endpoint{Spec: api.EndpointSpec{Mode: api.ResolutionModeVIP}, HostVIP: "127.100.0.7",
			Ports: []api.PortConfig{
				{Name: "http", Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: api.PublishModeIngress},
				{Protocol: "sctp", TargetPort: 9},
			}},
		Networks: []api.NetworkAttachment{{NetworkID: "n1", Addresses: []string{"10.0.1.5/24"}, Aliases: []string{"www"}}},
	}
	lt, err := FromTask(task, map[uint32]uint16{80: 31080})
	if err != nil {
		t.Fatal(err)
	}
	want := LocalTask{ID: "t1", ServiceID: "s1", ServiceName: "web", Slot: 2, SpecVersion: 7,
		HostVIP: webVIP, Ports: []Port{{PortConfig: task.Endpoint.Ports[0], HostPort: 31080}},
		Networks: []Network{{ID: "n1", Aliases: []string{"www"}}}}
	if !reflect.DeepEqual(lt, want) {
		t.Errorf("FromTask:\n got %+v\nwant %+v (sctp left out, unhealthy while its check starts)", lt, want)
	}
	for _, health := range []string{"", api.HealthHealthy} {
		task.Status.Health = health
		if lt, _ := FromTask(task, nil); !lt.Healthy {
			t.Errorf("RUNNING with health %q: not healthy", health)
		}
	}
	task.Status.State = api.TaskStateStarting
	if lt, _ := FromTask(task, nil); lt.Healthy {
		t.Error("STARTING: healthy")
	}
	task.Endpoint.HostVIP = "nonsense"
	if _, err := FromTask(task, nil); err == nil || !strings.Contains(err.Error(), "Endpoint.HostVIP") {
		t.Errorf("bad HostVIP: %v", err)
	}
}
