package endpoint

import (
	"crypto/ed25519"
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
// owner's, nor whether the owner runs the task: AdmitWith can.
func Admit(owner, network, table, key string, value []byte) error {
	return admit(Checks{}, owner, network, table, key, value)
}

// Checks are the facts AdmitWith checks remote entries against. Each
// func must be quick and must not call into the gossip Member's table (see
// gossip.Config.Admit).
type Checks struct {
	// OwnerAddr returns a node's address. A node may publish backends
	// only on its own address, or it could steer every node's traffic
	// for a service to any host and port. An owner it does not know is
	// refused (a check that passes when it lacks facts checks nothing);
	// gossip calls Admit only once the owner is known alive, so a lookup
	// fed from gossip membership or from the managers' node list knows
	// it. Nil: not checked.
	OwnerAddr func(nodeID string) (netip.Addr, bool)
	// AssignmentKeys returns the public keys of the managers' assignment
	// proofs (proof.go): an entry is admitted only with a proof, under
	// one of them, that the managers assigned its task, with the service,
	// VIP, ports and networks it names, to its owner. No keys refuses
	// every entry. Nil: not checked.
	AssignmentKeys func() []ed25519.PublicKey
}

// AdmitWith returns an Admit that also checks what c knows.
func AdmitWith(c Checks) AdmitFunc {
	return func(owner, network, table, key string, value []byte) error {
		return admit(c, owner, network, table, key, value)
	}
}

func admit(c Checks, owner, network, table, key string, value []byte) error {
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
	if c.AssignmentKeys != nil {
		if err := r.checkProof(owner, c.AssignmentKeys()); err != nil {
			return err
		}
	}
	if c.OwnerAddr == nil {
		return nil
	}
	want, ok := c.OwnerAddr(owner)
	if !ok {
		return fmt.Errorf("endpoint: task %q: the address of node %q is not known", r.Task, owner)
	}
	if want.Unmap() != r.Addr {
		return fmt.Errorf("endpoint: task %q: backends on %v, but node %q is at %v", r.Task, r.Addr, owner, want)
	}
	return nil
}
