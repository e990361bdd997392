package endpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/apiary-io/apiary/mesh/gossip"
	"github.com/apiary-io/apiary/swarm/api"
)

// Where the entries live in gossip. The host data path merges every network
// into one view (tasks share their node's address, and the DNS server gives
// one view, see package dns), so one cluster-wide table holds one entry per
// task, key the task ID, with the task's networks and aliases inside it.
// The kernel data path will add a table per network for what is per network
// there (a task's own address on each), as Docker's NetworkDB does.
const (
	// GossipNetwork is the gossip network of the endpoint table: the host
	// data path's pseudo-network, the name the store files host VIPs under.
	GossipNetwork = api.HostNetworkID
	// GossipTable is the endpoint table's name.
	GossipTable = "endpoints"
)

// Bounds on an entry, checked when it is made (SetLocal) and when it is
// read (Admit, and again before it reaches the balancer and DNS, since an
// in-memory gossip does not call Admit). An entry must also encode to at
// most gossip.MaxValueSize bytes (768), which is the tighter bound in
// practice: a task with a 63-character service name, two networks with an
// alias each and four named ports fits; each port costs 15 to 40 bytes.
const (
	// MaxPorts bounds the ports of one entry.
	MaxPorts = 32
	// MaxNetworks bounds the networks of one entry.
	MaxNetworks = 16
	// MaxAliases bounds the aliases of one network in an entry.
	MaxAliases = 16
	// MaxIDLen bounds a task, service or network ID (Apiary's are 25
	// characters).
	MaxIDLen = 64
	// MaxNameLen bounds a service name, a port name and an alias: one DNS
	// label, as Swarm limits service names.
	MaxNameLen = 63
)

// Port flags, packed in wirePort.Flags to keep entries small.
const (
	flagUDP     = 1 << iota // protocol udp (tcp otherwise)
	flagIngress             // published in ingress mode
	flagHost                // published in host mode
	flagProxyV2             // PROXY protocol v2 to the backend
	flagLocal               // traffic policy local
	flagMask    = flagUDP | flagIngress | flagHost | flagProxyV2 | flagLocal
)

// record is one task's entry: everything a remote node needs to route to
// it, self-contained (service name, VIP and ports travel in every task's
// entry), so no entry depends on another to be understood. Field names are
// short because an entry has gossip.MaxValueSize bytes.
type record struct {
	Task        string     `json:"t"`
	Service     string     `json:"s"`
	ServiceName string     `json:"n"`
	Slot        uint64     `json:"sl,omitempty"`
	SpecVersion uint64     `json:"v,omitempty"`
	DNSRR       bool       `json:"rr,omitempty"`
	HostVIP     netip.Addr `json:"vip,omitzero"`
	// Addr is the owner's address on the host data path: every backend of
	// the entry is Addr and one of its ports' Host.
	Addr     netip.Addr `json:"a"`
	Healthy  bool       `json:"h,omitempty"`
	Ports    []wirePort `json:"p,omitempty"`
	Networks []wireNet  `json:"nw,omitempty"`
	// Proof is the managers' signature of the assignment (proof.go).
	Proof []byte `json:"pf,omitempty"`
}

// wirePort is one port of an entry, on the wire a JSON array
// [target, host, published, flags] or [target, host, published, flags,
// name]: half the bytes of an object, so more ports fit in an entry.
type wirePort struct {
	Target uint16
	// Host is the port the task listens on at Addr; 0 means it does not
	// listen for Target on this node (it is then no backend for the port).
	Host      uint16
	Published uint16
	Flags     uint8
	Name      string
	// Loop is the port's loopback VIP port (api.LoopbackPort), 0 when it
	// has none.
	Loop uint16
}

func (p wirePort) MarshalJSON() ([]byte, error) {
	a := []any{p.Target, p.Host, p.Published, p.Flags}
	if p.Name != "" || p.Loop != 0 {
		a = append(a, p.Name)
	}
	if p.Loop != 0 {
		a = append(a, p.Loop)
	}
	return json.Marshal(a)
}

func (p *wirePort) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	fields := []any{&p.Target, &p.Host, &p.Published, &p.Flags, &p.Name, &p.Loop}
	if len(raw) < 4 || len(raw) > len(fields) {
		return fmt.Errorf("a port is [target, host, published, flags, name?, loopback VIP port?], got %d elements", len(raw))
	}
	for i, r := range raw {
		if err := json.Unmarshal(r, fields[i]); err != nil {
			return fmt.Errorf("port element %d: %w", i, err)
		}
	}
	return nil
}

type wireNet struct {
	ID      string   `json:"i"`
	Aliases []string `json:"a,omitempty"`
}

func (p wirePort) protocol() string {
	if p.Flags&flagUDP != 0 {
		return api.PortProtocolUDP
	}
	return api.PortProtocolTCP
}

// encode validates r and returns its value, refusing one too large for
// gossip.
func (r *record) encode() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("endpoint: task %s: encode: %w", r.Task, err)
	}
	if len(b) > gossip.MaxValueSize {
		return nil, fmt.Errorf("endpoint: task %s: entry is %d bytes, more than gossip's %d (fewer ports, networks or aliases would fit)",
			r.Task, len(b), gossip.MaxValueSize)
	}
	return b, nil
}

// decode reads and validates an entry's value.
func decode(value []byte) (*record, error) {
	if len(value) > gossip.MaxValueSize {
		return nil, fmt.Errorf("endpoint: entry is %d bytes, more than %d", len(value), gossip.MaxValueSize)
	}
	d := json.NewDecoder(bytes.NewReader(value))
	d.DisallowUnknownFields()
	var r record
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("endpoint: malformed entry: %w", err)
	}
	if d.More() {
		return nil, errors.New("endpoint: malformed entry: data after the record")
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// hostVIPRange is api.HostVIPRange parsed.
var hostVIPRange = netip.MustParsePrefix(api.HostVIPRange)

// validate checks every field, naming the first that is wrong. The
// addresses are checked for what a node may claim: its backends on a host
// address, and VIPs only inside api.HostVIPRange (every node listens on a
// VIP, so a VIP outside it would make every node bind some other address).
func (r *record) validate() error {
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("endpoint: task %q: %s: %s", r.Task, field, fmt.Sprintf(format, args...))
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"task ID", r.Task, MaxIDLen}, {"service ID", r.Service, MaxIDLen}, {"service name", r.ServiceName, MaxNameLen}} {
		if f.v == "" || len(f.v) > f.max {
			return fail(f.name, "%d bytes, want 1 to %d", len(f.v), f.max)
		}
	}
	if !r.Addr.IsValid() || r.Addr.IsUnspecified() || r.Addr.IsMulticast() || r.Addr.Zone() != "" || hostVIPRange.Contains(r.Addr.Unmap()) {
		return fail("address", "%v is not a node's host address", r.Addr)
	}
	r.Addr = r.Addr.Unmap()
	if r.HostVIP.IsValid() {
		r.HostVIP = r.HostVIP.Unmap()
		if !hostVIPRange.Contains(r.HostVIP) {
			return fail("host VIP", "%v is outside %s", r.HostVIP, api.HostVIPRange)
		}
	}
	if r.DNSRR && r.HostVIP.IsValid() {
		return fail("host VIP", "set on a dnsrr service")
	}
	if len(r.Ports) > MaxPorts {
		return fail("ports", "%d, more than %d", len(r.Ports), MaxPorts)
	}
	seen := make(map[wirePort]bool, len(r.Ports))
	for i, p := range r.Ports {
		field := fmt.Sprintf("ports[%d]", i)
		switch {
		case len(p.Name) > MaxNameLen:
			return fail(field+".name", "%d bytes, more than %d", len(p.Name), MaxNameLen)
		case p.Target == 0:
			return fail(field+".target", "0")
		case p.Flags&^flagMask != 0:
			return fail(field+".flags", "unknown bits %#x", p.Flags&^flagMask)
		case p.Flags&flagIngress != 0 && p.Flags&flagHost != 0:
			return fail(field+".flags", "both ingress and host mode")
		case p.Flags&(flagIngress|flagHost) != 0 && p.Published == 0:
			return fail(field+".published", "0 on a published port")
		case p.Flags&(flagIngress|flagHost) == 0 && p.Published != 0:
			return fail(field+".published", "%d without a publish mode", p.Published)
		case p.Flags&flagProxyV2 != 0 && p.Flags&flagUDP != 0:
			return fail(field+".flags", "PROXY protocol on a UDP port")
		case p.Loop != 0 && (p.Loop < api.LoopbackVIPPortStart || p.Loop > api.LoopbackVIPPortEnd):
			return fail(field+".loopback", "%d is outside %d-%d", p.Loop, api.LoopbackVIPPortStart, api.LoopbackVIPPortEnd)
		case p.Loop != 0 && !r.HostVIP.IsValid():
			return fail(field+".loopback", "%d on a service without a VIP", p.Loop)
		}
		key := wirePort{Target: p.Target, Flags: p.Flags & flagUDP}
		if seen[key] {
			return fail(field+".target", "%d/%s listed twice", p.Target, p.protocol())
		}
		seen[key] = true
	}
	if len(r.Networks) > MaxNetworks {
		return fail("networks", "%d, more than %d", len(r.Networks), MaxNetworks)
	}
	for i, n := range r.Networks {
		field := fmt.Sprintf("networks[%d]", i)
		if n.ID == "" || len(n.ID) > MaxIDLen {
			return fail(field+".id", "%d bytes, want 1 to %d", len(n.ID), MaxIDLen)
		}
		if len(n.Aliases) > MaxAliases {
			return fail(field+".aliases", "%d, more than %d", len(n.Aliases), MaxAliases)
		}
		for j, a := range n.Aliases {
			if a == "" || len(a) > MaxNameLen {
				return fail(fmt.Sprintf("%s.aliases[%d]", field, j), "%d bytes, want 1 to %d", len(a), MaxNameLen)
			}
		}
	}
	return nil
}
