package store

import (
	"errors"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// Two holders of one address on a network are refused when the second
// write is applied, whoever holds it (a service's VIP, a task's address, a
// host VIP), and nothing of that write is kept; a task that has ended gives
// its address back.
func TestAddressHeldOnce(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	svc := func(id, name, vip, hostVIP string) *api.Service {
		return &api.Service{ID: id, Spec: api.ServiceSpec{Annotations: api.Annotations{Name: name}},
			Endpoint: &api.Endpoint{VirtualIPs: []api.EndpointVirtualIP{{NetworkID: "n1", Addr: vip}}, HostVIP: hostVIP}}
	}
	task := func(id, addr string, state api.TaskState) *api.Task {
		return &api.Task{ID: id, Name: id, ServiceID: "s1", Slot: 1, Status: api.TaskStatus{State: state},
			Networks: []api.NetworkAttachment{{NetworkID: "n1", Addresses: []string{addr}}}}
	}
	update(t, s, func(tx Tx) error { return tx.CreateService(svc("s1", "web", "10.0.0.2/24", "127.100.0.1")) })
	for _, c := range []struct {
		name  string
		write func(tx Tx) error
		want  string
	}{
		{"a service's VIP", func(tx Tx) error { return tx.CreateService(svc("s2", "db", "10.0.0.2/24", "")) },
			"service s2: address n1 10.0.0.2 is held by service web"},
		{"a host VIP", func(tx Tx) error { return tx.CreateService(svc("s2", "db", "10.0.0.3/24", "127.100.0.1")) },
			"service s2: address host 127.100.0.1 is held by service web"},
		{"a task's address", func(tx Tx) error { return tx.CreateTask(task("t1", "10.0.0.2/24", api.TaskStateNew)) },
			"task t1: address n1 10.0.0.2 is held by service web"},
	} {
		err := s.Update(c.write)
		var taken *AddrTakenError
		if !errors.As(err, &taken) || !errors.Is(err, ErrConflict) || taken.Error() != c.want+": "+ErrConflict.Error() {
			t.Errorf("%s: got %v, want %s", c.name, err, c.want)
		}
	}
	s.View(func(tx ReadTx) {
		if tx.GetService("s2") != nil || tx.GetTask("t1") != nil {
			t.Error("a refused write was kept")
		}
	})
	// A task holds its address until it ends; then another may take it.
	update(t, s, func(tx Tx) error { return tx.CreateTask(task("t1", "10.0.0.3/24", api.TaskStateRunning)) })
	if err := s.Update(func(tx Tx) error { return tx.CreateTask(task("t2", "10.0.0.3/24", api.TaskStateNew)) }); !errors.Is(err, ErrConflict) {
		t.Fatalf("second task on a running task's address: %v", err)
	}
	update(t, s, func(tx Tx) error {
		t1 := tx.GetTask("t1")
		t1.Status.State = api.TaskStateFailed
		return tx.UpdateTask(t1)
	})
	update(t, s, func(tx Tx) error { return tx.CreateTask(task("t2", "10.0.0.3/24", api.TaskStateNew)) })
	// ByAddress finds the holders, a task only while it is live.
	s.View(func(tx ReadTx) {
		if got, err := ids(tx.FindServices(ByAddress(api.HostNetworkID, "127.100.0.1"))); err != nil || len(got) != 1 || got[0] != "s1" {
			t.Errorf("services at the host VIP: %v, %v", got, err)
		}
		if got, err := ids(tx.FindTasks(ByAddress("n1", "10.0.0.3/24"))); err != nil || len(got) != 1 || got[0] != "t2" {
			t.Errorf("tasks at 10.0.0.3: %v, %v (t1 ended)", got, err)
		}
		if _, err := tx.FindNetworks(ByAddress("n1", "10.0.0.3")); !errors.Is(err, ErrInvalidFind) {
			t.Errorf("networks by address: %v, want ErrInvalidFind", err)
		}
	})
	// A holder rewritten with its own address is no conflict.
	update(t, s, func(tx Tx) error {
		t2 := tx.GetTask("t2")
		t2.Status.State = api.TaskStatePending
		return tx.UpdateTask(t2)
	})
}

// Two networks whose subnets overlap are refused when the second is applied.
func TestSubnetsDoNotOverlap(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	network := func(id, subnet string) *api.Network {
		return &api.Network{ID: id, Spec: api.NetworkSpec{Annotations: api.Annotations{Name: id}}, IPAM: &api.IPAMConfig{Subnet: subnet}}
	}
	update(t, s, func(tx Tx) error { return tx.CreateNetwork(network("a", "10.0.1.0/24")) })
	err := s.Update(func(tx Tx) error { return tx.CreateNetwork(network("b", "10.0.0.0/16")) })
	var taken *SubnetTakenError
	if !errors.As(err, &taken) || !errors.Is(err, ErrConflict) || taken.Holder != "a" || taken.Subnet != "10.0.0.0/16" {
		t.Fatalf("got %v, want b's 10.0.0.0/16 refused for a's 10.0.1.0/24", err)
	}
	update(t, s, func(tx Tx) error { return tx.CreateNetwork(network("b", "10.0.2.0/24")) })
	// Nor two with one VNI.
	update(t, s, func(tx Tx) error {
		b := tx.GetNetwork("b")
		b.VNI = 4096
		return tx.UpdateNetwork(b)
	})
	c := network("c", "10.0.3.0/24")
	c.VNI = 4096
	err = s.Update(func(tx Tx) error { return tx.CreateNetwork(c) })
	var vni *VNITakenError
	if !errors.As(err, &vni) || !errors.Is(err, ErrConflict) || vni.Holder != "b" {
		t.Fatalf("got %v, want c's VNI 4096 refused for b's", err)
	}
	// Rewriting a network with its own subnet is no conflict.
	update(t, s, func(tx Tx) error {
		a := tx.GetNetwork("a")
		a.Spec.Labels = map[string]string{"x": "y"}
		return tx.UpdateNetwork(a)
	})
}
