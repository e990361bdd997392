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
// version, kept so that an older copy arriving late does not bring the
// entry back.
//
// Tombstones are kept ReapTime, and at most MaxTombstonesPerNode per owner:
// a node running short-lived tasks deletes faster than ReapTime reaps. Its
// owner then compacts them (Member.compactOwn) behind a floor, a version
// of its current epoch at or below which it guarantees to hold nothing
// live: it re-publishes, with new versions, its live entries at or below
// the floor before raising it. Every entry carries the floor its owner had
// when it signed it, so each receiver learns it, and:
//   - refuses any entry of that epoch at or below the floor (a late copy of
//     a compacted entry, or an older version of a live one, which the live
//     one superseded anyway);
//   - drops its tombstones at or below the floor (the floor refuses the
//     late copies they were kept for);
//   - keeps any live record it holds at or below the floor until the
//     owner tells it otherwise: the re-published version normally arrives
//     by gossip and replaces it; if staleGrace later one is still there, it
//     asks the owner for all its entries, and once the answer is applied
//     drops what is still below the floor (the member had missed its
//     deletion). So a live entry never flaps for a compaction, however far
//     behind gossip runs (memberlist sends the newest messages first, so
//     under a burst of deletions the floor outruns the re-published
//     entries).
//
// The receivers need no agreement on when to compact: the floor is the
// owner's, signed, so a node that missed a deletion cannot be told to refuse
// a live entry it lacks.
type state struct {
	tables   map[tableID]map[entryID]*record
	networks map[string]int // tables per network
	owners   map[string]*owner
	total    int // records, tombstones included
	// tombCap is MaxTombstonesPerNode but in tests of compaction.
	tombCap int
}

type tableID struct{ network, table string }

type record struct {
	e      *wireEntry
	reapAt time.Time // tombstones only
}

type owner struct {
	epoch   uint64
	entries map[entryID]*record
	live    int // records not deleted
	tombs   int // tombstones
	// floor is the highest floor of this epoch seen in a verified entry of
	// the owner; proof is that entry (gossiped in push/pull states).
	floor uint64
	proof *wireEntry
	// staleAt, if set, is when the owner is to be asked for its entries
	// if live records at or below the floor remain (stale).
	staleAt time.Time
}

// ErrOverLimit is returned by Put when the entry would break one of the
// bounds (MaxEntries, MaxEntriesPerNode, MaxTombstonesPerNode, MaxNetworks,
// MaxTablesPerNetwork).
var ErrOverLimit = errors.New("gossip: over limit")

func newState() *state {
	return &state{tables: map[tableID]map[entryID]*record{}, networks: map[string]int{}, owners: map[string]*owner{},
		tombCap: MaxTombstonesPerNode}
}

func (s *state) get(id entryID) *record {
	return s.tables[tableID{id.network, id.table}][id]
}

// wants reports whether e would change the entries held: its owner's epoch
// is not older than the one held, it is above the owner's floor, and it is
// newer than the copy held, if any.
func (s *state) wants(e *wireEntry) bool {
	if o := s.owners[e.owner]; o != nil {
		if e.epoch < o.epoch || e.epoch == o.epoch && e.version <= o.floor {
			return false
		}
	}
	r := s.get(e.id())
	return r == nil || e.newer(r.e)
}

// raisesFloor reports whether e would raise its owner's floor.
func (s *state) raisesFloor(e *wireEntry) bool {
	o := s.owners[e.owner]
	if o == nil || e.epoch > o.epoch {
		return e.floor > 0
	}
	return e.epoch == o.epoch && e.floor > o.floor
}

// apply stores e if wants(e) and takes its floor if raisesFloor(e), and
// returns the events it causes and whether e was stored. A newer epoch of
// an owner first drops the previous epoch's entries.
func (s *state) apply(e *wireEntry, now time.Time, reapTime time.Duration) ([]Event, bool, error) {
	return s.update(e, now, reapTime, s.wants(e), s.raisesFloor(e))
}

// takeFloor takes e's floor if it raises its owner's, without storing e: e
// came as a proof of its owner's floor (batch.floors) and may be an old
// version of its key.
func (s *state) takeFloor(e *wireEntry, now time.Time) ([]Event, error) {
	evs, _, err := s.update(e, now, 0, false, s.raisesFloor(e))
	return evs, err
}

func (s *state) update(e *wireEntry, now time.Time, reapTime time.Duration, want, raise bool) ([]Event, bool, error) {
	if !want && !raise {
		return nil, false, nil
	}
	var evs []Event
	o := s.owners[e.owner]
	if o != nil && e.epoch > o.epoch {
		evs = s.dropOwner(e.owner)
		o = nil
	}
	if o == nil {
		if len(s.owners) >= MaxNodes {
			return evs, false, fmt.Errorf("%w: %d owners held (MaxNodes)", ErrOverLimit, len(s.owners))
		}
		o = &owner{epoch: e.epoch, entries: map[entryID]*record{}}
		s.owners[e.owner] = o
	}
	var err error
	if want {
		var ev []Event
		ev, err = s.store(o, e, now, reapTime)
		evs = append(evs, ev...)
	}
	switch {
	case raise:
		s.raise(o, e, now)
	case want && err == nil && e.deleted && e.floor == o.floor && o.proof != nil && !o.proof.deleted:
		o.proof = e // the same floor with no value: a smaller message for push/pull
	}
	return evs, want && err == nil, err
}

// store puts e in place of the record of its key, if any.
func (s *state) store(o *owner, e *wireEntry, now time.Time, reapTime time.Duration) ([]Event, error) {
	id := e.id()
	old := s.get(id)
	if err := s.admit(o, id, old, e.deleted); err != nil {
		return nil, err
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
	} else {
		o.count(old.e, -1)
	}
	o.count(e, 1)
	t[id] = r
	o.entries[id] = r
	var evs []Event
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
	return evs, nil
}

func (o *owner) count(e *wireEntry, n int) {
	if e.deleted {
		o.tombs += n
	} else {
		o.live += n
	}
}

// admit checks the bounds a record of id, replacing old (nil if none), would
// count against.
func (s *state) admit(o *owner, id entryID, old *record, deleted bool) error {
	switch {
	case !deleted && (old == nil || old.e.deleted) && o.live >= MaxEntriesPerNode:
		return fmt.Errorf("%w: node %q owns %d live entries (MaxEntriesPerNode)", ErrOverLimit, id.owner, o.live)
	case deleted && (old == nil || !old.e.deleted) && o.tombs >= s.tombCap:
		return fmt.Errorf("%w: node %q has %d tombstones held (MaxTombstonesPerNode)", ErrOverLimit, id.owner, o.tombs)
	case old != nil:
		return nil
	case s.total >= MaxEntries:
		return fmt.Errorf("%w: %d entries held (MaxEntries)", ErrOverLimit, s.total)
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

// raise takes e's floor as its owner's: tombstones at or below it go now;
// live records at or below it are marked, and go when the owner has been
// asked for its entries and has answered (stale, sweep).
func (s *state) raise(o *owner, e *wireEntry, now time.Time) {
	o.floor, o.proof = e.floor, e
	for id, r := range o.entries {
		switch {
		case r.e.version > o.floor:
		case r.e.deleted:
			s.remove(id)
		case o.staleAt.IsZero():
			o.staleAt = now.Add(staleGrace)
		}
	}
}

// stale returns the owners, other than skip (this node), that still have
// live records at or below their floor staleGrace after it rose: their
// re-published versions did not arrive by gossip, or they were deleted
// and the tombstone missed. Each must be asked for its entries.
func (s *state) stale(now time.Time, skip string) []string {
	var out []string
	for name, o := range s.owners {
		if o.staleAt.IsZero() || now.Before(o.staleAt) {
			continue
		}
		if name == skip || !o.hasStale() {
			o.staleAt = time.Time{}
			continue
		}
		out = append(out, name)
	}
	return out
}

func (o *owner) hasStale() bool {
	for _, r := range o.entries {
		if !r.e.deleted && r.e.version <= o.floor {
			return true
		}
	}
	return false
}

// sweep drops the live records of owner at or below its floor, and returns
// a delete event for each. It is called once the owner's answer with all
// its entries has been applied: every entry it holds live is above its
// floor, so what is left below was deleted.
func (s *state) sweep(name string) []Event {
	o := s.owners[name]
	if o == nil {
		return nil
	}
	o.staleAt = time.Time{}
	var evs []Event
	for id, r := range o.entries {
		if !r.e.deleted && r.e.version <= o.floor {
			evs = append(evs, Event{Kind: EventDelete, Entry: r.e.public()})
			s.remove(id)
		}
	}
	return evs
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
	r, ok := t[id]
	if !ok {
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
		o.count(r.e, -1)
	}
}

// reap drops tombstones whose time has come. An owner whose entries are
// all gone is kept: its epoch and floor still refuse late copies.
func (s *state) reap(now time.Time) int {
	n := 0
	for _, o := range s.owners {
		if o.tombs == 0 {
			continue
		}
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

// floors returns, for at most maxStateFloors owners with a floor, the entry
// that carried it, when no record held carries it: a record of the proof's
// key newer than the proof was signed after it, so carries its floor or a
// higher one.
func (s *state) floors() []*wireEntry {
	var out []*wireEntry
	for _, o := range s.owners {
		if o.proof == nil {
			continue
		}
		if r := s.get(o.proof.id()); r != nil && r.e.floor >= o.floor {
			continue
		}
		if len(out) == maxStateFloors {
			break
		}
		out = append(out, o.proof)
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
