package endpoint

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// assignedTask is task t1 of service web, assigned to node "a".
func assignedTask() *api.Task {
	return &api.Task{
		ID: "t1", ServiceID: "svc-web", ServiceAnnotations: api.Annotations{Name: "web"}, Slot: 1, SpecVersion: 3, NodeID: "a",
		Status: api.TaskStatus{State: api.TaskStateRunning},
		Endpoint: &api.Endpoint{HostVIP: "127.100.0.7", Ports: []api.PortConfig{
			{Name: "http", Protocol: api.PortProtocolTCP, TargetPort: 80, PublishedPort: 8080, PublishMode: api.PublishModeIngress},
		}, LoopbackPorts: []api.LoopbackPort{{Protocol: api.PortProtocolTCP, TargetPort: 80, Port: api.LoopbackVIPPortStart}}},
		Networks: []api.NetworkAttachment{{NetworkID: "net-app", Aliases: []string{"www"}}},
	}
}

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// published is the entry node addr publishes for tk with host port host.
func published(t testing.TB, tk *api.Task, host uint16, addr netip.Addr) []byte {
	t.Helper()
	lt, err := FromTask(tk, map[uint32]uint16{80: host})
	if err != nil {
		t.Fatal(err)
	}
	return encoded(t, lt, addr)
}

// An entry is admitted only with the managers' proof that its owner runs
// its task as the entry describes it: what the node decides (address, host
// ports, health) is not signed; everything else is.
func TestAssignmentProof(t *testing.T) {
	key := testKey(t)
	keys := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
	admit := AdmitWith(Checks{AssignmentKeys: func() []ed25519.PublicKey { return keys }})
	tk := assignedTask()
	proof, err := SignAssignment(key, tk)
	if err != nil {
		t.Fatal(err)
	}
	tk.AssignmentProof = proof
	if err := admit("a", GossipNetwork, GossipTable, "t1", published(t, tk, 31001, addrA)); err != nil {
		t.Fatalf("the assigned node's entry: %v", err)
	}
	unhealthy := tk.Copy()
	unhealthy.Status.Health = api.HealthUnhealthy
	if err := admit("a", GossipNetwork, GossipTable, "t1", published(t, unhealthy, 31999, addrA)); err != nil {
		t.Errorf("another host port and health: %v, want admitted (the node decides them)", err)
	}

	forged := func(f func(r *record)) []byte {
		var r record
		if err := json.Unmarshal(published(t, tk, 31001, addrA), &r); err != nil {
			t.Fatal(err)
		}
		f(&r)
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, owner string
		value       []byte
		want        string
	}{
		{"a task its publisher does not run", "b", published(t, tk, 31001, addrB), `did not assign it to node "b"`},
		{"another service's name", "a", forged(func(r *record) { r.ServiceName = "db" }), "does not verify"},
		{"another VIP", "a", forged(func(r *record) { r.HostVIP = netip.MustParseAddr("127.100.0.9") }), "does not verify"},
		{"another published port", "a", forged(func(r *record) { r.Ports[0].Published = 9090 }), "does not verify"},
		{"another loopback VIP port", "a", forged(func(r *record) { r.Ports[0].Loop++ }), "does not verify"},
		{"an alias added", "a", forged(func(r *record) { r.Networks[0].Aliases = append(r.Networks[0].Aliases, "db") }), "does not verify"},
		{"no proof", "a", forged(func(r *record) { r.Proof = nil }), "no valid assignment proof"},
		{"a truncated proof", "a", forged(func(r *record) { r.Proof = r.Proof[:10] }), "no valid assignment proof"},
	} {
		err := admit(tc.owner, GossipNetwork, GossipTable, "t1", tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want refused saying %q", tc.name, err, tc.want)
		}
	}
	if err := admit("a", GossipNetwork, GossipTable, "t1", forged(func(r *record) { r.Proof = nil })); !errors.Is(err, ErrNoProof) {
		t.Errorf("no proof: %v, want ErrNoProof", err)
	}

	other := AdmitWith(Checks{AssignmentKeys: func() []ed25519.PublicKey { return []ed25519.PublicKey{testKey(t).Public().(ed25519.PublicKey)} }})
	if err := other("a", GossipNetwork, GossipTable, "t1", published(t, tk, 31001, addrA)); err == nil {
		t.Error("an entry signed under another cluster's key was admitted")
	}
	none := AdmitWith(Checks{AssignmentKeys: func() []ed25519.PublicKey { return nil }})
	if err := none("a", GossipNetwork, GossipTable, "t1", published(t, tk, 31001, addrA)); err == nil {
		t.Error("an entry was admitted by a node that holds no assignment key")
	}
}

// The dispatcher signs every task it sends a mesh node, and every node
// verifies every entry it admits: the cost per task of each.
func BenchmarkAssignmentProof(b *testing.B) {
	key := testKey(b)
	tk := assignedTask()
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := SignAssignment(key, tk); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("admit", func(b *testing.B) {
		proof, err := SignAssignment(key, tk)
		if err != nil {
			b.Fatal(err)
		}
		tk.AssignmentProof = proof
		keys := []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
		admit := AdmitWith(Checks{AssignmentKeys: func() []ed25519.PublicKey { return keys }})
		value := published(b, tk, 31001, addrA)
		for b.Loop() {
			if err := admit("a", GossipNetwork, GossipTable, "t1", value); err != nil {
				b.Fatal(err)
			}
		}
	})
}
