package agent

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/apiary-io/apiary/swarm/api"
)

// Host ports on the host data path (design §8, issue 15). Tasks share their
// node's network, so two tasks listening on their target port 80 would
// collide: each target port of a task gets a host port of its own, which
// the task learns from its environment (taskenv.go) and listens on, and
// which the agent reports in the task's Status.PortStatus for the node's
// mesh to publish as the task's backend (node address : host port).
//
// A port published in mode host binds its PublishedPort itself, as in
// Docker; every other port (ingress, or host mode without a published
// port) gets a free port, which the ingress balancer forwards to.
//
// A free port is found by asking the kernel (bind HostAddr:0, note the
// port, close) or, with Config.HostPortRange, by binding each port of the
// range in turn. Either way the port is free when it is chosen, not when
// the task binds it: another program may take it in between. The task then
// fails to listen and exits, the agent reports it FAILED, and the restart
// policy replaces it; the successor is given another port, since the one
// its predecessor had is no longer free. Ports this agent handed out are
// never handed out twice, whether or not their task has bound them yet.

const (
	// maxProbeAttempts bounds the kernel probes for one target port: the
	// kernel may hand back a port this agent gave a task that has not bound
	// it yet, or one free for TCP and taken for UDP.
	maxProbeAttempts = 64
	// maxRememberedSlots bounds the slots whose last task's host ports are
	// kept for its successor, so a node that ran many short-lived services
	// does not keep them all.
	maxRememberedSlots = 4096
)

// PortRange is a range of host ports, First to Last inclusive.
type PortRange struct {
	First, Last uint16
}

func (r PortRange) zero() bool { return r == PortRange{} }

func (r PortRange) validate() error {
	if r.zero() {
		return nil
	}
	if r.First == 0 || r.First > r.Last {
		return fmt.Errorf("%d-%d: want 1 <= First <= Last (or both 0 to let the kernel choose)", r.First, r.Last)
	}
	return nil
}

// hostKey is a host port of one protocol.
type hostKey struct {
	proto string
	port  uint32
}

// heldPorts are the host ports one task holds.
type heldPorts struct {
	slot   string
	status []api.PortConfig
}

// hostPorts hands out host ports to the tasks of one node.
type hostPorts struct {
	host string    // where ports are probed: the address tasks bind
	rng  PortRange // zero: the kernel chooses

	mu     sync.Mutex
	owner  map[hostKey]string           // host port → the task holding it
	tasks  map[string]heldPorts         // task ID → its ports
	last   map[string]map[uint32]uint32 // slot → its last task's target → host port
	order  []string                     // slots of last, oldest first
	cursor uint32                       // next port of rng to try
}

func newHostPorts(host string, rng PortRange) *hostPorts {
	return &hostPorts{host: host, rng: rng, owner: map[hostKey]string{}, tasks: map[string]heldPorts{}, last: map[string]map[uint32]uint32{}}
}

// taskPorts are the ports a task listens on: its endpoint's, with the
// allocator's defaults filled in, or its endpoint spec's.
func taskPorts(t *api.Task) []api.PortConfig {
	if t.Endpoint == nil {
		return nil
	}
	if len(t.Endpoint.Ports) > 0 {
		return t.Endpoint.Ports
	}
	return t.Endpoint.Spec.Ports
}

// slotKey names a task's slot: its successors after a restart share it.
func slotKey(t *api.Task) string {
	if t.Slot == 0 {
		return t.ServiceID + "/node/" + t.NodeID
	}
	return t.ServiceID + "/" + strconv.FormatUint(t.Slot, 10)
}

// target is one target port of a task and what it needs.
type target struct {
	port   uint32
	protos []string
	fixed  uint32 // a host-mode published port, 0 when none
	index  int    // of the first port config naming it, for errors
}

// targets groups a task's ports by target port, in the order they come:
// TCP and UDP of one target port get one host port, as the task reads one
// APIARY_PORT_<target>.
func targets(ports []api.PortConfig) ([]*target, error) {
	var out []*target
	byPort := map[uint32]*target{}
	for i, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = api.PortProtocolTCP
		}
		g, ok := byPort[p.TargetPort]
		if !ok {
			g = &target{port: p.TargetPort, index: i}
			byPort[p.TargetPort] = g
			out = append(out, g)
		}
		if !containsString(g.protos, proto) {
			g.protos = append(g.protos, proto)
		}
		if p.PublishMode == api.PublishModeHost && p.PublishedPort != 0 {
			if g.fixed != 0 && g.fixed != p.PublishedPort {
				return nil, fmt.Errorf("ports[%d]: target port %d is published in mode host on %d and on %d: on the host data path a target port has one host port", i, p.TargetPort, g.fixed, p.PublishedPort)
			}
			g.fixed = p.PublishedPort
		}
	}
	return out, nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// allocate gives each target port of t a host port and returns them as the
// task's port status: one entry per port config, PublishedPort the host
// port, PublishMode host. A task that holds ports already gets them again.
// A slot's previous host ports are given back to its new task when they
// are still free. On error nothing is held.
func (h *hostPorts) allocate(t *api.Task) ([]api.PortConfig, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if held, ok := h.tasks[t.ID]; ok {
		return held.status, nil
	}
	ports := taskPorts(t)
	if len(ports) == 0 {
		return nil, nil
	}
	groups, err := targets(ports)
	if err != nil {
		return nil, err
	}
	slot := slotKey(t)
	prev := h.last[slot]
	chosen := map[uint32]uint32{}
	var taken []hostKey
	fail := func(err error) ([]api.PortConfig, error) {
		for _, k := range taken {
			delete(h.owner, k)
		}
		return nil, err
	}
	for _, g := range groups {
		var port uint32
		switch {
		case g.fixed != 0:
			if err := h.claimable(g.fixed, g.protos); err != nil {
				return fail(fmt.Errorf("ports[%d]: host port %d (target %d, publish mode host): %w", g.index, g.fixed, g.port, err))
			}
			port = g.fixed
		case prev[g.port] != 0 && h.claimable(prev[g.port], g.protos) == nil:
			port = prev[g.port]
		default:
			if port, err = h.choose(g.protos); err != nil {
				return fail(fmt.Errorf("ports[%d]: a host port for target %d: %w", g.index, g.port, err))
			}
		}
		for _, proto := range g.protos {
			k := hostKey{proto, port}
			h.owner[k] = t.ID
			taken = append(taken, k)
		}
		chosen[g.port] = port
	}
	status := make([]api.PortConfig, len(ports))
	for i, p := range ports {
		status[i] = p
		if status[i].Protocol == "" {
			status[i].Protocol = api.PortProtocolTCP
		}
		status[i].PublishedPort = chosen[p.TargetPort]
		status[i].PublishMode = api.PublishModeHost
	}
	h.tasks[t.ID] = heldPorts{slot: slot, status: status}
	h.forgetSlot(slot)
	return status, nil
}

// adopt records the host ports of a task started before this agent (its
// last reported port status) as held, without probing: the task itself
// holds them. Ports another task holds already are left to it.
func (h *hostPorts) adopt(t *api.Task, status []api.PortConfig) {
	if len(status) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.tasks[t.ID]; ok {
		return
	}
	for _, p := range status {
		k := hostKey{p.Protocol, p.PublishedPort}
		if _, ok := h.owner[k]; !ok {
			h.owner[k] = t.ID
		}
	}
	h.tasks[t.ID] = heldPorts{slot: slotKey(t), status: append([]api.PortConfig(nil), status...)}
}

// held returns the port status of a task that holds host ports.
func (h *hostPorts) held(taskID string) ([]api.PortConfig, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.tasks[taskID]
	return p.status, ok
}

// release frees a task's host ports, remembering them for its slot's next
// task. Releasing a task without ports does nothing.
func (h *hostPorts) release(taskID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	held, ok := h.tasks[taskID]
	if !ok {
		return
	}
	delete(h.tasks, taskID)
	byTarget := map[uint32]uint32{}
	for _, p := range held.status {
		k := hostKey{p.Protocol, p.PublishedPort}
		if h.owner[k] == taskID {
			delete(h.owner, k)
		}
		byTarget[p.TargetPort] = p.PublishedPort
	}
	h.forgetSlot(held.slot)
	h.last[held.slot] = byTarget
	h.order = append(h.order, held.slot)
	for len(h.order) > maxRememberedSlots {
		delete(h.last, h.order[0])
		h.order = h.order[1:]
	}
}

// forgetSlot drops what is remembered of a slot's last task.
func (h *hostPorts) forgetSlot(slot string) {
	if _, ok := h.last[slot]; !ok {
		return
	}
	delete(h.last, slot)
	for i, s := range h.order {
		if s == slot {
			h.order = append(h.order[:i], h.order[i+1:]...)
			break
		}
	}
}

// errPortHeld: another task of this node holds the port.
var errPortHeld = errors.New("held by another task on this node")

// claimable checks that port is free for every protocol: not handed to a
// task by this agent, and bindable now.
func (h *hostPorts) claimable(port uint32, protos []string) error {
	for _, proto := range protos {
		if id, ok := h.owner[hostKey{proto, port}]; ok {
			return fmt.Errorf("%d/%s: %w (%s)", port, proto, errPortHeld, id)
		}
	}
	for _, proto := range protos {
		if err := probePort(proto, h.host, port); err != nil {
			return fmt.Errorf("%d/%s is taken: %w", port, proto, err)
		}
	}
	return nil
}

// choose finds a port free for every protocol.
func (h *hostPorts) choose(protos []string) (uint32, error) {
	if !h.rng.zero() {
		first, last := uint32(h.rng.First), uint32(h.rng.Last)
		n := last - first + 1
		for i := uint32(0); i < n; i++ {
			port := first + (h.cursor+i)%n
			if h.claimable(port, protos) == nil {
				h.cursor = (port - first + 1) % n
				return port, nil
			}
		}
		return 0, fmt.Errorf("no free port in the host port range %d-%d", first, last)
	}
	var lastErr error
	for range maxProbeAttempts {
		port, err := kernelPort(protos[0], h.host)
		if err != nil {
			return 0, err
		}
		if lastErr = h.claimable(port, protos); lastErr == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for %v after %d tries, the last: %w", protos, maxProbeAttempts, lastErr)
}

// probeNetwork is the network a protocol's port is probed on. Go cannot
// bind SCTP without cgo: an SCTP port is probed as TCP, which catches the
// usual collision (two tasks, one port number).
func probeNetwork(proto string) string {
	if proto == api.PortProtocolUDP {
		return "udp"
	}
	return "tcp"
}

// probePort binds host:port for proto and lets it go again.
func probePort(proto, host string, port uint32) error {
	addr := net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
	if probeNetwork(proto) == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// kernelPort asks the kernel for a free port of proto on host.
func kernelPort(proto, host string) (uint32, error) {
	addr := net.JoinHostPort(host, "0")
	if probeNetwork(proto) == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return 0, fmt.Errorf("ask the kernel for a port: %w", err)
		}
		defer c.Close()
		return uint32(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("ask the kernel for a port: %w", err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port), nil
}
