package endpoint

import (
	"fmt"
	"net/netip"
)

// AdmitFunc is the signature of gossip.Config.Admit.
type AdmitFunc = func(owner, network, table, key string, value []byte) error

// Admit checks a remote endpoint entry, for gossip.Config.Admit: its
// value decodes, every field is within bounds (MaxPorts, MaxNetworks,
// MaxAliases, MaxIDLen, MaxNameLen, gossip.MaxValueSize), its key is its
// task's ID, its address is a host address (not unspecified, multicast or
// a VIP) and its VIP lies in api.HostVIPRange. Entries of other tables are
// not its concern and pass. It cannot tell whether the address is the
// owner's: AdmitWith can.
func Admit(owner, network, table, key string, value []byte) error {
	return admit(nil, owner, network, table, key, value)
}

// AdmitWith returns an Admit that also refuses an entry whose address, the
// address of every backend it publishes, is not its owner's as ownerAddr
// knows it: a node may publish backends only on its own address, or it
// could steer every node's traffic for a service to any host and port. An
// owner ownerAddr does not know is refused too (a check that passes when it
// lacks facts checks nothing); gossip calls Admit only once the owner is
// known alive, so a lookup fed from gossip membership or from the managers'
// node list knows it. ownerAddr must be quick and must not call into the
// gossip Member (see gossip.Config.Admit).
//
// What no admission check here can tell is whether the owner really runs
// the task, with those ports: that needs the managers' word, an assignment
// signed by a manager (task ID, node, host VIP, published ports) carried in
// the entry and checked against the cluster CA. That is future work; until
// then a node holding a valid certificate can publish a task it does not
// run, though only with backends on its own address.
func AdmitWith(ownerAddr func(nodeID string) (netip.Addr, bool)) AdmitFunc {
	return func(owner, network, table, key string, value []byte) error {
		return admit(ownerAddr, owner, network, table, key, value)
	}
}

func admit(ownerAddr func(string) (netip.Addr, bool), owner, network, table, key string, value []byte) error {
	if network != GossipNetwork || table != GossipTable {
		return nil
	}
	r, err := decode(value)
	if err != nil {
		return err
	}
	if r.Task != key {
		return fmt.Errorf("endpoint: entry key %q is not its task ID %q", key, r.Task)
	}
	if ownerAddr == nil {
		return nil
	}
	want, ok := ownerAddr(owner)
	if !ok {
		return fmt.Errorf("endpoint: task %q: the address of node %q is not known", r.Task, owner)
	}
	if want.Unmap() != r.Addr {
		return fmt.Errorf("endpoint: task %q: backends on %v, but node %q is at %v", r.Task, r.Addr, owner, want)
	}
	return nil
}
