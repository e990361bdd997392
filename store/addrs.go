package store

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// The address index: which service or task holds an address on a network.
// The allocator reads the store to choose free addresses, and any manager
// may write (the control API gives a service its VIPs in the write that
// creates it, the leader's allocator gives tasks theirs): two writers that
// chose one address on states that did not yet show the other's are told
// apart here, when the second write is applied, as published ports are
// (checkPortsHeld). The store is thereby the one record of who holds what,
// and a new leader needs nothing else to go on allocating.

// serviceAddrs indexes a service's virtual IPs: one per network, and its
// host VIP (under api.HostNetworkID).
func serviceAddrs(o any, add func(string)) {
	s := o.(*api.Service)
	if s.Endpoint == nil {
		return
	}
	for _, v := range s.Endpoint.VirtualIPs {
		add(AddrKey(v.NetworkID, v.Addr))
	}
	if s.Endpoint.HostVIP != "" {
		add(AddrKey(api.HostNetworkID, s.Endpoint.HostVIP))
	}
}

// taskAddrs indexes a task's addresses while it is not terminal: a task
// that has ended gives its addresses back (its record keeps them, as
// history), so a slot's history does not use up a subnet.
func taskAddrs(o any, add func(string)) {
	t := o.(*api.Task)
	if t.Status.State.Terminal() {
		return
	}
	for _, n := range t.Networks {
		for _, a := range n.Addresses {
			add(AddrKey(n.NetworkID, a))
		}
	}
}

// AddrKey names an address on a network as the address index holds it:
// "<network ID> <address>", the address without its prefix length.
func AddrKey(networkID, addr string) string {
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i]
	}
	return networkID + " " + addr
}

// AddrTakenError is the error of a write whose service or task holds an
// address that another one came to hold first. It is a conflict
// (errors.Is ErrConflict): a writer that tries again on the new state
// chooses another address.
type AddrTakenError struct {
	// Kind and ID are the object written, Holder the one holding the
	// address ("service web", "task web.3").
	Kind   api.Kind
	ID     string
	Addr   string // an AddrKey
	Holder string
}

func (e *AddrTakenError) Error() string {
	return fmt.Sprintf("%s %s: address %s is held by %s: %v", e.Kind, e.ID, e.Addr, e.Holder, ErrConflict)
}

func (e *AddrTakenError) Unwrap() error { return ErrConflict }

// checkAddrsHeld refuses a transaction after which two objects hold the
// same address on a network. It reads the address index as the
// transaction leaves it, for the services and tasks it wrote that hold
// addresses.
func (w *dbWriter) checkAddrsHeld(changes []change) error {
	svc, task := kindByName[api.KindService], kindByName[api.KindTask]
	tables := []struct {
		ki  *kindInfo
		idx int
	}{{svc, svc.index(indexAddr)}, {task, task.index(indexAddr)}}
	var keys []string
	add := func(k string) { keys = append(keys, k) }
	for _, c := range changes {
		keys = keys[:0]
		switch o := c.obj.(type) {
		case *api.Service:
			serviceAddrs(o, add)
		case *api.Task:
			taskAddrs(o, add)
		}
		for _, k := range keys {
			var holder string
			for _, t := range tables {
				w.find(t.ki, selector{index: t.idx, key: ikey{s: k}}, func(o api.Object) bool {
					if o.GetID() == c.obj.GetID() && o.Kind() == c.obj.Kind() {
						return true
					}
					holder = describe(o)
					return false
				})
				if holder != "" {
					return &AddrTakenError{Kind: c.obj.Kind(), ID: c.obj.GetID(), Addr: k, Holder: holder}
				}
			}
		}
	}
	return nil
}

// describe names a service or task for an error.
func describe(o api.Object) string {
	switch v := o.(type) {
	case *api.Service:
		return "service " + v.Spec.Name
	case *api.Task:
		if v.Name != "" {
			return "task " + v.Name
		}
	}
	return string(o.Kind()) + " " + o.GetID()
}

// SubnetTakenError is the error of a write whose network's subnet overlaps
// another network's, which two writers chose at once. It is a conflict
// (errors.Is ErrConflict).
type SubnetTakenError struct {
	Network, Subnet, Holder, HolderSubnet string
}

func (e *SubnetTakenError) Error() string {
	return fmt.Sprintf("network %s: subnet %s overlaps subnet %s of network %s: %v", e.Network, e.Subnet, e.HolderSubnet, e.Holder, ErrConflict)
}

func (e *SubnetTakenError) Unwrap() error { return ErrConflict }

// VNITakenError is the error of a write whose network has the VXLAN ID of
// another, which two writers chose at once. It is a conflict (errors.Is
// ErrConflict).
type VNITakenError struct {
	Network string
	VNI     uint32
	Holder  string
}

func (e *VNITakenError) Error() string {
	return fmt.Sprintf("network %s: VNI %d is network %s's: %v", e.Network, e.VNI, e.Holder, ErrConflict)
}

func (e *VNITakenError) Unwrap() error { return ErrConflict }

// networkSubnet is a network's allocated subnet, if it has a valid one.
func networkSubnet(n *api.Network) (netip.Prefix, bool) {
	if n.IPAM == nil || n.IPAM.Subnet == "" {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(n.IPAM.Subnet)
	return p, err == nil
}

// checkSubnetsFree refuses a transaction after which two networks' subnets
// overlap, or two networks have one VNI. Networks are few (api.MaxClusterNetworks) and rarely written:
// each written network is compared with every other.
func (w *dbWriter) checkSubnetsFree(changes []change) error {
	ki := kindByName[api.KindNetwork]
	for _, c := range changes {
		n, ok := c.obj.(*api.Network)
		if !ok {
			continue
		}
		mine, hasSubnet := networkSubnet(n)
		if !hasSubnet && n.VNI == 0 {
			continue
		}
		var err error
		w.find(ki, selector{all: true}, func(o api.Object) bool {
			other := o.(*api.Network)
			if other.ID == n.ID {
				return true
			}
			if p, ok := networkSubnet(other); ok && hasSubnet && p.Overlaps(mine) {
				err = &SubnetTakenError{Network: n.Spec.Name, Subnet: mine.String(), Holder: other.Spec.Name, HolderSubnet: p.String()}
				return false
			}
			if n.VNI != 0 && other.VNI == n.VNI {
				err = &VNITakenError{Network: n.Spec.Name, VNI: n.VNI, Holder: other.Spec.Name}
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
	}
	return nil
}
