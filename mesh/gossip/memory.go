package gossip

import (
	"bytes"
	"fmt"
	"sync"
	"time"
)

// MemoryHub is gossip without sockets for the tests of packages that follow
// the tables (DNS, balancer, node-down detection): its nodes share one copy
// of the tables, so a change is seen by every node as soon as Put returns,
// with the same events a Member would deliver. Signatures, keys and bounds
// on the wire are not modelled; the bounds on Put are.
type MemoryHub struct {
	mu     sync.Mutex
	st     *state
	nodes  map[string]*MemoryNode
	epochs map[string]uint64
	clock  uint64
}

// MemoryNode is one node of a MemoryHub. It implements Table.
type MemoryNode struct {
	hub   *MemoryHub
	id    string
	epoch uint64
	down  bool // under hub.mu
	watch watchers
}

var _ Table = (*MemoryNode)(nil)

// NewMemoryHub returns an empty hub.
func NewMemoryHub() *MemoryHub {
	return &MemoryHub{st: newState(), nodes: map[string]*MemoryNode{}, epochs: map[string]uint64{}}
}

// Join adds a node. A node ID that is already up is refused; one that went
// down may join again (a restart: it starts with no entries).
func (h *MemoryHub) Join(nodeID string) (*MemoryNode, error) {
	if err := checkName("node ID", nodeID); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.nodes[nodeID]; ok {
		return nil, fmt.Errorf("gossip: node %q is already in the hub", nodeID)
	}
	h.epochs[nodeID]++
	n := &MemoryNode{hub: h, id: nodeID, epoch: h.epochs[nodeID]}
	h.nodes[nodeID] = n
	return n, nil
}

// Down takes a node out as gossip does when it is declared dead or leaves:
// its entries go from every table, the
// others' watchers see their EventDelete then EventNodeDown, and its own
// watchers stop.
func (h *MemoryHub) Down(nodeID string) {
	h.mu.Lock()
	n, ok := h.nodes[nodeID]
	if !ok {
		h.mu.Unlock()
		return
	}
	delete(h.nodes, nodeID)
	n.down = true
	evs := h.st.dropOwner(nodeID)
	evs = append(evs, Event{Kind: EventNodeDown, Entry: Entry{Owner: nodeID}})
	for _, o := range h.nodes {
		o.watch.publish(evs)
	}
	h.mu.Unlock()
	n.watch.closeAll()
}

// NodeID implements Table.
func (n *MemoryNode) NodeID() string { return n.id }

// Put implements Table.
func (n *MemoryNode) Put(network, table, key string, value []byte) error {
	if err := checkEntry(network, table, key, value); err != nil {
		return err
	}
	return n.write(network, table, key, bytes.Clone(value), false)
}

// Delete implements Table.
func (n *MemoryNode) Delete(network, table, key string) error {
	if err := checkEntry(network, table, key, nil); err != nil {
		return err
	}
	n.hub.mu.Lock()
	r := n.hub.st.get(entryID{network, table, n.id, key})
	n.hub.mu.Unlock()
	if r == nil || r.e.deleted {
		return nil
	}
	return n.write(network, table, key, nil, true)
}

func (n *MemoryNode) write(network, table, key string, value []byte, deleted bool) error {
	h := n.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if n.down {
		return ErrClosed
	}
	h.clock++
	e := &wireEntry{network: network, table: table, owner: n.id, key: key,
		epoch: n.epoch, version: h.clock, deleted: deleted, value: value}
	// Tombstones need no reaping here: no late copy can arrive.
	evs, _, err := h.st.apply(e, time.Now(), 0)
	if e.deleted {
		h.st.remove(e.id())
	}
	for _, o := range h.nodes {
		o.watch.publish(evs)
	}
	if err != nil {
		return fmt.Errorf("gossip: put %s/%s/%s: %w", network, table, key, err)
	}
	return nil
}

// Get implements Table.
func (n *MemoryNode) Get(network, table, owner, key string) (Entry, bool) {
	n.hub.mu.Lock()
	defer n.hub.mu.Unlock()
	r := n.hub.st.get(entryID{network, table, owner, key})
	if r == nil || r.e.deleted {
		return Entry{}, false
	}
	return r.e.public(), true
}

// Walk implements Table.
func (n *MemoryNode) Walk(network, table string, fn func(Entry) bool) {
	n.hub.mu.Lock()
	es := n.hub.st.entries(network, table)
	n.hub.mu.Unlock()
	for _, e := range es {
		if !fn(e) {
			return
		}
	}
}

// Watch implements Table.
func (n *MemoryNode) Watch(network, table string, fn func(Event)) (stop func()) {
	return n.watch.add(network, table, fn)
}
