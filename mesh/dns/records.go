package dns

import "net/netip"

// Records is what the server answers names of the cluster from: the caller
// implements it over its endpoint tables (on the host data path, one merged
// view of every network the node knows), and Table is the in-memory one.
//
// Names are given relative to the cluster domain and lower-cased ("web",
// "web.1.x7k2"); the server owns the DNS shapes around them ("tasks.",
// "_http._tcp.", the domain suffix, reverse names).
//
// Methods are called concurrently, up to three times per query, and must
// not block: they are the live path (a change must show in the next query) and
// sit between a client and its answer. The values returned are read, never
// modified, by the server; an implementation may return slices it shares
// with other callers as long as it never modifies them afterwards.
type Records interface {
	// Service returns the service that name denotes: its name, or one of
	// its network aliases.
	Service(name string) (Service, bool)
	// Task returns the task named name.
	Task(name string) (Task, bool)
	// Names returns the names of addr, for PTR answers: the service whose
	// VIP it is, the tasks reached at it (on the host data path, every task
	// on the node with that address). Relative names, no domain.
	Names(addr netip.Addr) []string
}

// Service is a service as the DNS sees it on one view.
type Service struct {
	// Name is the service's name, relative to the cluster domain.
	Name string
	// Aliases are its network aliases: other names that resolve exactly
	// like Name.
	Aliases []string
	// VIPs are its virtual IPs. A service in dnsrr endpoint mode has none:
	// "<service>" then answers like "tasks.<service>".
	VIPs []netip.Addr
	// Ports are the ports its tasks listen on, named in SRV queries by Name
	// or by Target ("_http._tcp.web", "_80._tcp.web").
	Ports []Port
	// Tasks are its tasks that may receive traffic: RUNNING and healthy.
	// The caller filters; the server answers with all it is given.
	Tasks []Task
}

// Port is one port of a service.
type Port struct {
	// Name is the port's name ("http"); empty when it has none.
	Name string
	// Protocol is "tcp" or "udp".
	Protocol string
	// Target is the port inside a task.
	Target uint16
	// VIPPort is the port the service's VIPs answer on for this port (on
	// the host data path outside Linux, VIPs share 127.0.0.1 and differ by
	// port). Zero means Target.
	VIPPort uint16
}

// Task is one task of a service.
type Task struct {
	// Name is the task's name ("web.1.x7k2"), relative to the domain.
	Name string
	// Addr reaches the task: on the host data path, its node's address.
	Addr netip.Addr
	// HostPorts maps a target port to the port the task is reached on at
	// Addr (on the host data path, the host port it was given). A target
	// port that is missing is reached on itself.
	HostPorts map[uint16]uint16
}

// port returns the port the task is reached on for target.
func (t Task) port(target uint16) uint16 {
	if p, ok := t.HostPorts[target]; ok {
		return p
	}
	return target
}
