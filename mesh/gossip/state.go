package gossip

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// state is the replicated tables as one node holds them, and the
// certificates that sign them. It is a plain data structure: Member locks
// around it, checks signatures before apply, and sends what apply returns.
//
// Convergence: an entry is identified by (network, table, owner, key) and
// only its owner writes it, so two versions of one entry are always ordered
// by (owner epoch, owner version): every node keeps the higher one whatever
// order copies arrive in, and a deletion is a tombstone with a higher
// version, kept for ReapTime so that an older copy arriving late does not
// bring the entry back.
type state struct {
	tables   map[tableID]map[entryID]*record
	networks map[string]int // tables per network
	owners   map[string]*owner
	total    int // records, tombstones included
}

type tableID struct{ network, table string }

type record struct {
	e      *wireEntry
	reapAt time.Time // tombstones only
}

type owner struct {
	epoch   uint64
	entries map[entryID]*record
}

// ErrOverLimit is returned by Put when the entry would break one of the
// bounds (MaxEntries, MaxEntriesPerNode, MaxNetworks, MaxTablesPerNetwork).
var ErrOverLimit = errors.New("gossip: over limit")

func newState() *state {
	return &state{tables: map[tableID]map[entryID]*record{}, networks: map[string]int{}, owners: map[string]*owner{}}
}

func (s *state) get(id entryID) *record {
	return s.tables[tableID{id.network, id.table}][id]
}

// wants reports whether e would change the state: its owner's epoch is not
// older than the one held, and it is newer than the copy held, if any.
func (s *state) wants(e *wireEntry) bool {
	if o := s.owners[e.owner]; o != nil && e.epoch < o.epoch {
		return false
	}
	r := s.get(e.id())
	return r == nil || e.newer(r.e)
}

// apply stores e if wants(e), and returns the events it causes. A newer
// epoch of an owner first drops the previous epoch's entries.
func (s *state) apply(e *wireEntry, now time.Time, reapTime time.Duration) ([]Event, bool, error) {
	if !s.wants(e) {
		return nil, false, nil
	}
	var evs []Event
	o := s.owners[e.owner]
	if o != nil && e.epoch > o.epoch {
		evs = s.dropOwner(e.owner)
		o = nil
	}
	id := e.id()
	old := s.get(id)
	if old == nil {
		if err := s.admitNew(id); err != nil {
			return evs, false, err
		}
	}
	if o == nil {
		o = &owner{epoch: e.epoch, entries: map[entryID]*record{}}
		s.owners[e.owner] = o
	}
	tid := tableID{id.network, id.table}
	t := s.tables[tid]
	if t == nil {
		t = map[entryID]*record{}
		s.tables[tid] = t
		s.networks[id.network]++
	}
	r := &record{e: e}
	if e.deleted {
		reap := reapTime
		if e.reapIn > 0 && e.reapIn < reap {
			reap = e.reapIn
		}
		r.reapAt = now.Add(reap)
	}
	if old == nil {
		s.total++
	}
	t[id] = r
	o.entries[id] = r
	switch {
	case (old == nil || old.e.deleted) && !e.deleted:
		evs = append(evs, Event{Kind: EventCreate, Entry: e.public()})
	case old != nil && !old.e.deleted && e.deleted:
		ev := Event{Kind: EventDelete, Entry: old.e.public()}
		ev.Entry.Version = e.version
		evs = append(evs, ev)
	case old != nil && !old.e.deleted && !e.deleted:
		evs = append(evs, Event{Kind: EventUpdate, Entry: e.public()})
	}
	return evs, true, nil
}

// admitNew checks the bounds a new entry would count against.
func (s *state) admitNew(id entryID) error {
	if s.total >= MaxEntries {
		return fmt.Errorf("%w: %d entries held (MaxEntries)", ErrOverLimit, s.total)
	}
	o := s.owners[id.owner]
	if o == nil && len(s.owners) >= MaxNodes {
		return fmt.Errorf("%w: %d owners held (MaxNodes)", ErrOverLimit, len(s.owners))
	}
	if o != nil && len(o.entries) >= MaxEntriesPerNode {
		return fmt.Errorf("%w: node %q owns %d entries (MaxEntriesPerNode)", ErrOverLimit, id.owner, len(o.entries))
	}
	if _, ok := s.tables[tableID{id.network, id.table}]; !ok {
		n, ok := s.networks[id.network]
		if !ok && len(s.networks) >= MaxNetworks {
			return fmt.Errorf("%w: %d networks held (MaxNetworks)", ErrOverLimit, len(s.networks))
		}
		if n >= MaxTablesPerNetwork {
			return fmt.Errorf("%w: network %q has %d tables (MaxTablesPerNetwork)", ErrOverLimit, id.network, n)
		}
	}
	return nil
}

// dropOwner forgets every entry of an owner (it went down, or restarted),
// returning a delete event for each live one.
func (s *state) dropOwner(name string) []Event {
	o := s.owners[name]
	if o == nil {
		return nil
	}
	var evs []Event
	for id, r := range o.entries {
		if !r.e.deleted {
			evs = append(evs, Event{Kind: EventDelete, Entry: r.e.public()})
		}
		s.remove(id)
	}
	delete(s.owners, name)
	return evs
}

func (s *state) remove(id entryID) {
	tid := tableID{id.network, id.table}
	t := s.tables[tid]
	if _, ok := t[id]; !ok {
		return
	}
	delete(t, id)
	s.total--
	if len(t) == 0 {
		delete(s.tables, tid)
		if s.networks[id.network]--; s.networks[id.network] == 0 {
			delete(s.networks, id.network)
		}
	}
	if o := s.owners[id.owner]; o != nil {
		delete(o.entries, id)
	}
}

// reap drops tombstones whose time has come. An owner whose entries are
// all gone is kept: its epoch still refuses its previous run's entries.
func (s *state) reap(now time.Time) int {
	n := 0
	for _, o := range s.owners {
		for id, r := range o.entries {
			if r.e.deleted && !now.Before(r.reapAt) {
				s.remove(id)
				n++
			}
		}
	}
	return n
}

// walk calls fn for each live entry of network/table (empty: all).
func (s *state) walk(network, table string, fn func(*wireEntry)) {
	visit := func(t map[entryID]*record) {
		for _, r := range t {
			if !r.e.deleted {
				fn(r.e)
			}
		}
	}
	if network != "" && table != "" {
		visit(s.tables[tableID{network, table}])
		return
	}
	for tid, t := range s.tables {
		if (network == "" || tid.network == network) && (table == "" || tid.table == table) {
			visit(t)
		}
	}
}

// entries returns the live entries of network/table (empty: all), sorted
// by network, table, owner and key.
func (s *state) entries(network, table string) []Entry {
	var out []Entry
	s.walk(network, table, func(e *wireEntry) { out = append(out, e.public()) })
	sortEntries(out)
	return out
}

// records returns every record (tombstones with their remaining life),
// optionally only those of one owner.
func (s *state) records(onlyOwner string, now time.Time) []*wireEntry {
	var out []*wireEntry
	add := func(o *owner) {
		for _, r := range o.entries {
			e := r.e
			if e.deleted {
				c := *e
				c.reapIn = max(r.reapAt.Sub(now), time.Millisecond)
				e = &c
			}
			out = append(out, e)
		}
	}
	if onlyOwner != "" {
		if o := s.owners[onlyOwner]; o != nil {
			add(o)
		}
		return out
	}
	for _, o := range s.owners {
		add(o)
	}
	return out
}

// certs holds the verified certificate chains of nodes, a few per node.
type certs struct {
	byNode map[string][]*nodeCert // oldest first
}

type nodeCert struct {
	fp    [32]byte
	chain []*x509.Certificate
	der   [][]byte
}

func (c *certs) find(node string, fp [32]byte) *nodeCert {
	for _, nc := range c.byNode[node] {
		if nc.fp == fp {
			return nc
		}
	}
	return nil
}

// add keeps nc for node, forgetting the node's oldest certificate beyond
// MaxCertsPerNode. It reports false if nothing was added.
func (c *certs) add(node string, nc *nodeCert) bool {
	if c.find(node, nc.fp) != nil {
		return false
	}
	l, ok := c.byNode[node]
	if !ok && len(c.byNode) >= MaxNodes {
		return false
	}
	if len(l) >= MaxCertsPerNode {
		l = l[1:]
	}
	c.byNode[node] = append(l, nc)
	return true
}

// chains returns the chains held for the nodes in nodes: all of them, as
// entries signed before a renewal may still refer to an older one.
func (c *certs) chains(nodes map[string]bool) []certChain {
	var out []certChain
	for n := range nodes {
		for _, nc := range c.byNode[n] {
			out = append(out, certChain{owner: n, der: nc.der})
		}
	}
	return out
}
