package endpoint

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// LocalTask is a task this node runs, as the mesh publishes it: what a
// remote node needs to route to it and to answer its names.
type LocalTask struct {
	// ID is the task's ID: the entry's key.
	ID string
	// ServiceID and ServiceName name its service.
	ServiceID   string
	ServiceName string
	// Slot is its replicated slot; 0 for a global service's task. With the
	// service name and the ID it makes the task's DNS name (TaskName).
	Slot uint64
	// SpecVersion is the service spec version the task was made from:
	// where tasks of one service disagree on the service's ports, VIP or
	// mode (during an update), the newest version's say wins.
	SpecVersion uint64
	// DNSRR is endpoint mode dnsrr: no VIP, the name answers with tasks.
	DNSRR bool
	// HostVIP is the service's VIP on the host data path (invalid when it
	// has none).
	HostVIP netip.Addr
	// Ports are the service's ports with the host port this task listens
	// on for each.
	Ports []Port
	// Networks are the task's attachments with their aliases.
	Networks []Network
	// Healthy is RUNNING with its health check passing, or without one.
	Healthy bool
	// Proof is the managers' assignment proof (api.Task.AssignmentProof),
	// published with the entry for other nodes to check (proof.go).
	Proof []byte
}

// Port is one of the service's ports (api.PortConfig, with every default
// filled in) and where this task listens for it.
type Port struct {
	api.PortConfig
	// HostPort is the port the task listens on at the node's address for
	// TargetPort (APIARY_PORT_<target>); 0 when it does not listen for it
	// on this node.
	HostPort uint16
	// LoopbackPort is the port's loopback VIP port
	// (api.Endpoint.LoopbackPorts), 0 when the service has none.
	LoopbackPort uint16
}

// Network is one of the task's network attachments.
type Network struct {
	ID      string
	Aliases []string
}

// FromTask makes the LocalTask of t, a task this node runs, from its
// endpoint (t.Endpoint: VIP, mode, ports), its attachments and its status
// (Healthy: RUNNING and a health check, if it has one, reporting healthy).
// hostPorts maps each target port to the host port the task was given for
// it; a target port it lacks is published without a backend on this node.
func FromTask(t *api.Task, hostPorts map[uint32]uint16) (LocalTask, error) {
	lt := LocalTask{
		ID: t.ID, ServiceID: t.ServiceID, ServiceName: t.ServiceAnnotations.Name,
		Slot: t.Slot, SpecVersion: t.SpecVersion, Proof: t.AssignmentProof,
		Healthy: t.Status.State == api.TaskStateRunning &&
			(t.Status.Health == "" || t.Status.Health == api.HealthHealthy),
	}
	if ep := t.Endpoint; ep != nil {
		lt.DNSRR = ep.Spec.Mode == api.ResolutionModeDNSRR
		if ep.HostVIP != "" {
			vip, err := netip.ParseAddr(ep.HostVIP)
			if err != nil {
				return LocalTask{}, fmt.Errorf("endpoint: task %s: Endpoint.HostVIP: %w", t.ID, err)
			}
			lt.HostVIP = vip
		}
		for _, p := range ep.Ports {
			if p.Protocol == api.PortProtocolSCTP {
				continue // the host data path's balancer carries tcp and udp only
			}
			lp := Port{PortConfig: p, HostPort: hostPorts[p.TargetPort]}
			for _, l := range ep.LoopbackPorts {
				if l.TargetPort == p.TargetPort && l.Protocol == p.Protocol && l.Port <= 65535 {
					lp.LoopbackPort = uint16(l.Port)
				}
			}
			lt.Ports = append(lt.Ports, lp)
		}
	}
	for _, n := range t.Networks {
		lt.Networks = append(lt.Networks, Network{ID: n.NetworkID, Aliases: n.Aliases})
	}
	return lt, nil
}

// TaskName is a task's DNS name, as Docker names task containers:
// <service>.<slot>.<task ID>, or <service>.<node ID>.<task ID> for a
// global service's task (slot 0).
func TaskName(service string, slot uint64, nodeID, taskID string) string {
	mid := nodeID
	if slot != 0 {
		mid = fmt.Sprint(slot)
	}
	return strings.ToLower(service + "." + mid + "." + taskID)
}

// record converts t to its entry, with addr the node's address; errors
// name the task and the field.
func (t *LocalTask) record(addr netip.Addr) (*record, error) {
	r := &record{
		Task: t.ID, Service: t.ServiceID, ServiceName: t.ServiceName,
		Slot: t.Slot, SpecVersion: t.SpecVersion, DNSRR: t.DNSRR,
		HostVIP: t.HostVIP, Addr: addr, Healthy: t.Healthy, Proof: t.Proof,
	}
	for i, p := range t.Ports {
		wp, err := wirePortOf(p)
		if err != nil {
			return nil, fmt.Errorf("endpoint: task %q: ports[%d]: %w", t.ID, i, err)
		}
		r.Ports = append(r.Ports, wp)
	}
	for _, n := range t.Networks {
		r.Networks = append(r.Networks, wireNet{ID: n.ID, Aliases: n.Aliases})
	}
	return r, nil
}

func wirePortOf(p Port) (wirePort, error) {
	wp := wirePort{Name: p.Name, Host: p.HostPort, Loop: p.LoopbackPort}
	if p.TargetPort == 0 || p.TargetPort > 65535 {
		return wp, fmt.Errorf("TargetPort %d: want 1 to 65535", p.TargetPort)
	}
	if p.PublishedPort > 65535 {
		return wp, fmt.Errorf("PublishedPort %d: want at most 65535", p.PublishedPort)
	}
	wp.Target, wp.Published = uint16(p.TargetPort), uint16(p.PublishedPort)
	switch p.Protocol {
	case "", api.PortProtocolTCP:
	case api.PortProtocolUDP:
		wp.Flags |= flagUDP
	default:
		return wp, fmt.Errorf("Protocol %q: the host data path carries tcp and udp", p.Protocol)
	}
	if p.PublishedPort != 0 {
		switch p.PublishMode {
		case "", api.PublishModeIngress:
			wp.Flags |= flagIngress
		case api.PublishModeHost:
			wp.Flags |= flagHost
		default:
			return wp, fmt.Errorf("PublishMode %q: want %q or %q", p.PublishMode, api.PublishModeIngress, api.PublishModeHost)
		}
	}
	switch p.ProxyProtocol {
	case "":
	case api.ProxyProtocolV2:
		wp.Flags |= flagProxyV2
	default:
		return wp, fmt.Errorf("ProxyProtocol %q: want empty or %q", p.ProxyProtocol, api.ProxyProtocolV2)
	}
	switch p.TrafficPolicy {
	case "", api.TrafficPolicyCluster:
	case api.TrafficPolicyLocal:
		wp.Flags |= flagLocal
	default:
		return wp, fmt.Errorf("TrafficPolicy %q: want %q or %q", p.TrafficPolicy, api.TrafficPolicyCluster, api.TrafficPolicyLocal)
	}
	return wp, nil
}
