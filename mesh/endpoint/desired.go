package endpoint

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/dns"
)

// owned is a decoded entry and the node that published it.
type owned struct {
	owner string
	rec   *record
}

// state is what a node's balancer and DNS records should hold, given every
// endpoint entry.
type state struct {
	// Frontends are the balancer's services by frontend.
	Frontends map[balancer.Frontend]frontend
	// Services are the DNS records' services by lower-cased name. The
	// applier takes a service it holds the same pointer to as unchanged.
	Services map[string]*dns.Service
}

// frontend is one balancer service and its backends.
type frontend struct {
	Service  balancer.Service
	Backends []balancer.Backend
}

// desired computes the state of node self, whose ingress-published ports
// listen on ingress (none when invalid), from every entry. It is a pure
// function: the same entries in any order give the same state.
//
// Per service (grouped by service ID):
//   - The service's name, mode, VIP and ports are those of its entry with
//     the highest SpecVersion (ties: the lowest owner, then task ID), so
//     tasks of two versions during an update give one answer.
//   - Each port with a protocol gets, when the service has a host VIP, a
//     frontend HostVIP:TargetPort, and when published in ingress mode, a
//     frontend ingress:PublishedPort. Both carry the port's PROXY protocol
//     and traffic policy: they reach the same socket of the same tasks,
//     and a task that expects a PROXY header expects it on every
//     connection. Host-mode ports get nothing here: the task binds them.
//   - A frontend's backends are the node address and host port of every
//     task that has one for the port (same target, same protocol), healthy
//     or not: an unhealthy backend gets no new connections and its open
//     ones drain, where a missing one would be cut at the drain timeout
//     all the same but its connections not counted. Local marks self's.
//   - The DNS service has the service's name, the union of its tasks'
//     aliases, its VIP, its ports and its healthy tasks.
//
// Two services claiming one frontend or one DNS name (possible only while
// a removed service's entries are being withdrawn and its VIP, port or
// name already went to a new one) are settled for the service whose ID
// sorts first; the other's entries leave within a gossip round.
func desired(self string, ingress netip.Addr, entries []owned) state {
	return desiredIn(view{self: self, ingress: ingress}, entries)
}

// view is what a node's state depends on beside the entries: the node,
// its ingress address, and whether it serves VIPs on 127.0.0.1 and their
// loopback ports (Config.LoopbackVIP) rather than on the host VIPs.
type view struct {
	self     string
	ingress  netip.Addr
	loopback bool
	// privBelow is Config.UnprivilegedPortStart.
	privBelow uint16
}

// vipPort is where the VIP serves p: its target port, or its loopback VIP
// port in loopback mode or when the node may not listen on the target
// port (0: nowhere).
func (v view) vipPort(p wirePort) uint16 {
	if v.loopback || p.Target < v.privBelow {
		return p.Loop
	}
	return p.Target
}

// loopbackAddr is where a node in loopback mode serves every VIP.
var loopbackAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})

func desiredIn(v view, entries []owned) state {
	byService := map[string][]owned{}
	for _, e := range entries {
		byService[e.rec.Service] = append(byService[e.rec.Service], e)
	}
	services := make([]*serviceState, 0, len(byService))
	for _, tasks := range byService {
		services = append(services, desiredService(v, tasks))
	}
	return merge(services)
}

// serviceState is one service's part of the state. The Runtime keeps one
// per service and recomputes only those whose entries changed.
type serviceState struct {
	id        string
	frontends []frontend
	dns       *dns.Service
}

// desiredService computes the part of the state of one service's entries
// (at least one, all of one service ID); it sorts tasks.
func desiredService(v view, tasks []owned) *serviceState {
	self, ingress := v.self, v.ingress
	slices.SortFunc(tasks, func(a, b owned) int {
		return cmp.Or(cmp.Compare(a.owner, b.owner), cmp.Compare(a.rec.Task, b.rec.Task))
	})
	head := tasks[0].rec
	for _, t := range tasks[1:] {
		if t.rec.SpecVersion > head.SpecVersion {
			head = t.rec
		}
	}
	ss := &serviceState{id: head.Service}
	for _, p := range head.Ports {
		backends := backendsFor(self, p, tasks)
		opts := optionsOf(p)
		if port := v.vipPort(p); head.HostVIP.IsValid() && !head.DNSRR && port != 0 {
			addr := head.HostVIP
			if v.loopback {
				addr = loopbackAddr
			}
			ss.frontends = append(ss.frontends, frontendOf(frontendAt(addr, port, p), opts, backends))
		}
		if p.Flags&flagIngress != 0 && ingress.IsValid() {
			ss.frontends = append(ss.frontends, frontendOf(frontendAt(ingress, p.Published, p), opts, backends))
		}
	}
	ss.dns = dnsService(head, tasks, v)
	return ss
}

// merge puts services' parts together, settling claims on one frontend or
// one name for the lowest service ID; it sorts services.
func merge(services []*serviceState) state {
	slices.SortFunc(services, func(a, b *serviceState) int { return cmp.Compare(a.id, b.id) })
	n := 0
	for _, ss := range services {
		n += len(ss.frontends)
	}
	st := state{Frontends: make(map[balancer.Frontend]frontend, n), Services: make(map[string]*dns.Service, len(services))}
	for _, ss := range services {
		for _, f := range ss.frontends {
			if _, taken := st.Frontends[f.Service.Frontend]; !taken {
				st.Frontends[f.Service.Frontend] = f
			}
		}
		if _, taken := st.Services[ss.dns.Name]; !taken {
			st.Services[ss.dns.Name] = ss.dns
		}
	}
	return st
}

func frontendAt(addr netip.Addr, port uint16, p wirePort) balancer.Frontend {
	return balancer.Frontend{Addr: netip.AddrPortFrom(addr, port), Protocol: balancer.Protocol(p.protocol())}
}

func optionsOf(p wirePort) balancer.Options {
	o := balancer.Options{TrafficPolicy: balancer.TrafficCluster}
	if p.Flags&flagLocal != 0 {
		o.TrafficPolicy = balancer.TrafficLocal
	}
	if p.Flags&flagProxyV2 != 0 {
		o.ProxyProtocol = balancer.ProxyV2
	}
	return o
}

func frontendOf(fe balancer.Frontend, opts balancer.Options, backends []balancer.Backend) frontend {
	return frontend{Service: balancer.Service{Frontend: fe, Options: opts}, Backends: backends}
}

// backendsFor lists the tasks listening for p, sorted by address. Two
// entries naming one address (a task replaced on its node reusing the host
// port, before the old entry is withdrawn) make one backend, healthy if
// either is: the first in tasks' order, unless only a later one is healthy.
// It sorts then merges neighbours, so a service of n tasks costs n log n,
// not n² (BenchmarkPass).
func backendsFor(self string, p wirePort, tasks []owned) []balancer.Backend {
	out := make([]balancer.Backend, 0, len(tasks))
	for _, t := range tasks {
		host := hostPort(t.rec, p)
		if host == 0 {
			continue
		}
		out = append(out, balancer.Backend{Addr: netip.AddrPortFrom(t.rec.Addr, host), NodeID: t.owner,
			Healthy: t.rec.Healthy, Local: t.owner == self})
	}
	// Stable: among backends of one address, tasks' order decides.
	slices.SortStableFunc(out, func(a, b balancer.Backend) int { return a.Addr.Compare(b.Addr) })
	n := 0
	for _, b := range out {
		if n > 0 && out[n-1].Addr == b.Addr {
			if b.Healthy && !out[n-1].Healthy {
				out[n-1] = b
			}
			continue
		}
		out[n] = b
		n++
	}
	if n == 0 {
		return nil
	}
	return out[:n:n]
}

// hostPort is the port r's task listens on for p's target and protocol.
func hostPort(r *record, p wirePort) uint16 {
	for _, q := range r.Ports {
		if q.Target == p.Target && q.Flags&flagUDP == p.Flags&flagUDP {
			return q.Host
		}
	}
	return 0
}

func dnsService(head *record, tasks []owned, v view) *dns.Service {
	svc := &dns.Service{Name: strings.ToLower(head.ServiceName)}
	vip := head.HostVIP.IsValid() && !head.DNSRR
	if vip {
		svc.VIPs = []netip.Addr{head.HostVIP}
		if v.loopback {
			svc.VIPs = []netip.Addr{loopbackAddr}
		}
	}
	for _, p := range head.Ports {
		dp := dns.Port{Name: p.Name, Protocol: p.protocol(), Target: p.Target}
		if port := v.vipPort(p); vip && port != p.Target {
			dp.VIPPort = port
		}
		svc.Ports = append(svc.Ports, dp)
	}
	for _, t := range tasks {
		for _, n := range t.rec.Networks {
			for _, a := range n.Aliases {
				a = strings.ToLower(a)
				if !slices.Contains(svc.Aliases, a) {
					svc.Aliases = append(svc.Aliases, a)
				}
			}
		}
		if !t.rec.Healthy {
			continue
		}
		task := dns.Task{Name: TaskName(head.ServiceName, t.rec.Slot, t.owner, t.rec.Task), Addr: t.rec.Addr}
		for _, p := range t.rec.Ports {
			if p.Host != 0 {
				if task.HostPorts == nil {
					task.HostPorts = map[uint16]uint16{}
				}
				task.HostPorts[p.Target] = p.Host
			}
		}
		svc.Tasks = append(svc.Tasks, task)
	}
	slices.Sort(svc.Aliases)
	return svc
}
