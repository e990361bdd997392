package agent

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// portTask is a task of service svc in slot with the given endpoint ports.
func portTask(id, svc string, slot uint64, ports ...api.PortConfig) *api.Task {
	return &api.Task{ID: id, ServiceID: svc, Slot: slot, Endpoint: &api.Endpoint{Ports: ports}}
}

var (
	web = []api.PortConfig{
		{Name: "http", Protocol: api.PortProtocolTCP, TargetPort: 80, PublishedPort: 30080, PublishMode: api.PublishModeIngress},
		{Protocol: api.PortProtocolTCP, TargetPort: 443, PublishedPort: 30443, PublishMode: api.PublishModeIngress},
	}
	dnsPorts = []api.PortConfig{
		{Protocol: api.PortProtocolTCP, TargetPort: 53, PublishMode: api.PublishModeHost},
		{Protocol: api.PortProtocolUDP, TargetPort: 53, PublishMode: api.PublishModeHost},
	}
)

func mustAllocate(t *testing.T, h *hostPorts, task *api.Task) []api.PortConfig {
	t.Helper()
	st, err := h.allocate(task)
	if err != nil {
		t.Fatalf("allocate %s: %v", task.ID, err)
	}
	return st
}

// freePort is a port the kernel says is free on 127.0.0.1 now.
func freePort(t *testing.T) uint32 {
	t.Helper()
	p, err := kernelPort(api.PortProtocolTCP, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostPortsDistinctAndBindable(t *testing.T) {
	h := newHostPorts("127.0.0.1", PortRange{})
	seen := map[uint32]string{}
	for i := range 5 {
		id := "t" + strconv.Itoa(i)
		st := mustAllocate(t, h, portTask(id, "web", uint64(i+1), web...))
		if len(st) != 2 {
			t.Fatalf("%s: port status %+v, want one per port", id, st)
		}
		for j, p := range st {
			if p.TargetPort != web[j].TargetPort || p.Name != web[j].Name || p.Protocol != "tcp" || p.PublishMode != api.PublishModeHost || p.PublishedPort == 0 {
				t.Errorf("%s: status[%d] = %+v, want target %d with a host port in mode host", id, j, p, web[j].TargetPort)
			}
			if other, ok := seen[p.PublishedPort]; ok {
				t.Errorf("host port %d given to %s and %s", p.PublishedPort, other, id)
			}
			seen[p.PublishedPort] = id
			// Handed out, not bound: the task can bind it.
			if err := probePort("tcp", "127.0.0.1", p.PublishedPort); err != nil {
				t.Errorf("%s: host port %d not bindable: %v", id, p.PublishedPort, err)
			}
		}
	}
	// Asking again for a task that holds ports gives the same ones.
	again := mustAllocate(t, h, portTask("t0", "web", 1, web...))
	if again[0].PublishedPort == 0 || seen[again[0].PublishedPort] != "t0" {
		t.Errorf("t0 again: %+v, want its own ports", again)
	}
}

func TestHostPortsOneForTCPAndUDPOfATarget(t *testing.T) {
	h := newHostPorts("127.0.0.1", PortRange{})
	st := mustAllocate(t, h, portTask("t1", "dns", 1, dnsPorts...))
	if len(st) != 2 || st[0].PublishedPort == 0 || st[0].PublishedPort != st[1].PublishedPort || st[0].Protocol != "tcp" || st[1].Protocol != "udp" {
		t.Fatalf("status %+v: want one host port for 53/tcp and 53/udp", st)
	}
}

func TestHostPortsNoPortsNone(t *testing.T) {
	h := newHostPorts("127.0.0.1", PortRange{})
	for _, task := range []*api.Task{{ID: "a"}, portTask("b", "s", 1)} {
		if st := mustAllocate(t, h, task); st != nil {
			t.Errorf("task %s without ports got %+v", task.ID, st)
		}
		if _, ok := h.held(task.ID); ok {
			t.Errorf("task %s without ports holds some", task.ID)
		}
	}
}

func TestHostPortsKeptByTheSlotsNextTaskAndReleased(t *testing.T) {
	h := newHostPorts("127.0.0.1", PortRange{})
	first := mustAllocate(t, h, portTask("t1", "web", 1, web...))
	h.release("t1")
	if _, ok := h.held("t1"); ok || len(h.owner) != 0 {
		t.Fatalf("after release: held by t1 %v, owners %v", ok, h.owner)
	}
	h.release("t1") // twice does nothing
	// The successor in slot 1 gets its predecessor's ports back.
	next := mustAllocate(t, h, portTask("t2", "web", 1, web...))
	for i := range next {
		if next[i].PublishedPort != first[i].PublishedPort {
			t.Errorf("successor's ports %+v, want its predecessor's %+v", next, first)
		}
	}
	// Unless one was taken meanwhile: that target gets another.
	h.release("t2")
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(first[0].PublishedPort))))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	third := mustAllocate(t, h, portTask("t3", "web", 1, web...))
	if third[0].PublishedPort == first[0].PublishedPort || third[1].PublishedPort != first[1].PublishedPort {
		t.Errorf("with %d taken: %+v, want a new port for 80 and the old one for 443 (%+v)", first[0].PublishedPort, third, first)
	}
	// A task of another slot does not get a released slot's ports.
	h.release("t3")
	other := mustAllocate(t, h, portTask("u1", "web", 2, web...))
	if other[1].PublishedPort == first[1].PublishedPort {
		t.Errorf("slot 2 got slot 1's remembered port %d", first[1].PublishedPort)
	}
}

func TestHostPortsRememberedSlotsBounded(t *testing.T) {
	h := newHostPorts("127.0.0.1", PortRange{})
	for i := range maxRememberedSlots + 10 {
		id := "t" + strconv.Itoa(i)
		h.tasks[id] = heldPorts{slot: "s" + strconv.Itoa(i), status: []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: uint32(i)}}}
		h.release(id)
	}
	if len(h.last) != maxRememberedSlots || len(h.order) != maxRememberedSlots {
		t.Errorf("remembered %d slots (order %d), want at most %d", len(h.last), len(h.order), maxRememberedSlots)
	}
	if _, ok := h.last["s0"]; ok {
		t.Error("the oldest slot is still remembered")
	}
}

func TestHostPortsHostModeBindsThePublishedPort(t *testing.T) {
	h := newHostPorts("127.0.0.1", PortRange{})
	p := freePort(t)
	ports := []api.PortConfig{{Protocol: api.PortProtocolTCP, TargetPort: 80, PublishedPort: p, PublishMode: api.PublishModeHost}}
	st := mustAllocate(t, h, portTask("t1", "web", 1, ports...))
	if st[0].PublishedPort != p {
		t.Fatalf("host mode published on %d got host port %d", p, st[0].PublishedPort)
	}
	// Another task asking for the same published port is refused, naming
	// the port and who holds it, and holds nothing.
	_, err := h.allocate(portTask("t2", "web", 2, append([]api.PortConfig{{TargetPort: 81}}, ports...)...))
	if !errors.Is(err, errPortHeld) || !strings.Contains(err.Error(), "ports[1]: host port "+strconv.Itoa(int(p))) || !strings.Contains(err.Error(), "t1") {
		t.Errorf("second task on host port %d: %v, want refused naming ports[1] and t1", p, err)
	}
	if _, ok := h.held("t2"); ok || len(h.owner) != 1 {
		t.Errorf("a refused task holds ports: owners %v", h.owner)
	}
}

func TestHostPortsTakenPortRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := uint32(l.Addr().(*net.TCPAddr).Port)
	h := newHostPorts("127.0.0.1", PortRange{})
	_, err = h.allocate(portTask("t1", "web", 1, api.PortConfig{TargetPort: 8080, PublishedPort: p, PublishMode: api.PublishModeHost}))
	want := "ports[0]: host port " + strconv.Itoa(int(p)) + " (target 8080, publish mode host): " + strconv.Itoa(int(p)) + "/tcp is taken"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("allocate on a taken port: %v, want %q", err, want)
	}
	// Two host-mode published ports for one target cannot both be the
	// task's one host port.
	_, err = h.allocate(portTask("t2", "web", 2,
		api.PortConfig{TargetPort: 80, PublishedPort: 8080, PublishMode: api.PublishModeHost},
		api.PortConfig{TargetPort: 80, PublishedPort: 8081, PublishMode: api.PublishModeHost}))
	if err == nil || !strings.Contains(err.Error(), "ports[1]: target port 80 is published in mode host on 8080 and on 8081") {
		t.Errorf("two host ports for one target: %v", err)
	}
}

func TestHostPortsFromARange(t *testing.T) {
	p := freePort(t)
	h := newHostPorts("127.0.0.1", PortRange{First: uint16(p), Last: uint16(p)})
	st := mustAllocate(t, h, portTask("t1", "web", 1, web[0]))
	if st[0].PublishedPort != p {
		t.Fatalf("range %d-%d gave %d", p, p, st[0].PublishedPort)
	}
	_, err := h.allocate(portTask("t2", "web", 2, web[0]))
	want := "ports[0]: a host port for target 80: no free port in the host port range " + strconv.Itoa(int(p)) + "-" + strconv.Itoa(int(p))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("full range: %v, want %q", err, want)
	}
	h.release("t1")
	if st := mustAllocate(t, h, portTask("t2", "web", 2, web[0])); st[0].PublishedPort != p {
		t.Errorf("after release: %+v, want %d", st, p)
	}
}

func TestPortRangeValidate(t *testing.T) {
	for _, r := range []PortRange{{}, {First: 1, Last: 1}, {First: 30000, Last: 32767}} {
		if err := r.validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	for _, r := range []PortRange{{First: 0, Last: 10}, {First: 20, Last: 10}} {
		if err := r.validate(); err == nil || !strings.Contains(err.Error(), "want 1 <= First <= Last") {
			t.Errorf("%+v: %v, want refused", r, err)
		}
	}
}

func TestHostPortsAdopted(t *testing.T) {
	h := newHostPorts("127.0.0.1", PortRange{})
	p := freePort(t)
	task := portTask("t1", "web", 1, web[0])
	h.adopt(task, []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: p, PublishMode: api.PublishModeHost}})
	if st := mustAllocate(t, h, task); st[0].PublishedPort != p {
		t.Errorf("adopted task's ports %+v, want %d", st, p)
	}
	_, err := h.allocate(portTask("t2", "web", 2, api.PortConfig{TargetPort: 80, PublishedPort: p, PublishMode: api.PublishModeHost}))
	if !errors.Is(err, errPortHeld) {
		t.Errorf("an adopted task's port given again: %v", err)
	}
}
