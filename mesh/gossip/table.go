package gossip

// Table is what the rest of the mesh (DNS, balancer, node-down detection)
// needs from gossip: replicated, versioned key/value tables grouped by
// network, where each node writes only its own entries and reads everyone's.
// *Member implements it over memberlist; memgossip implements it in memory,
// without sockets, for the tests of packages that follow the tables.
//
// Keys are scoped by owner: two nodes putting the same key hold two entries,
// and neither can overwrite or delete the other's. Callers that need one
// entry per key (a task ID, which runs on one node) get it from their keys.
type Table interface {
	// NodeID is the owner of the entries this node puts.
	NodeID() string
	// Put creates or replaces this node's entry network/table/key.
	Put(network, table, key string, value []byte) error
	// Delete removes this node's entry network/table/key (everywhere, by
	// a tombstone); deleting an absent entry does nothing.
	Delete(network, table, key string) error
	// Get returns the live entry owned by owner, if any.
	Get(network, table, owner, key string) (Entry, bool)
	// Walk calls fn for each live entry of network/table (all networks or
	// all tables when empty) until fn returns false. It walks a snapshot:
	// fn may call back into the Table.
	Walk(network, table string, fn func(Entry) bool)
	// Watch calls fn, in order and from one goroutine of its own, for each
	// change to network/table (empty: all) made after Watch returns, and
	// for each node declared down. stop ends it and waits for fn to return.
	Watch(network, table string, fn func(Event)) (stop func())
}

// Entry is one value in a table.
type Entry struct {
	Network string
	Table   string
	// Owner is the node ID that published the entry (verified against its
	// certificate on every node).
	Owner string
	Key   string
	Value []byte
	// Version is the owner's clock when it wrote the entry: a later write
	// by the same owner always has a higher version.
	Version uint64
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventCreate: an entry appeared.
	EventCreate EventKind = iota + 1
	// EventUpdate: an entry's value changed.
	EventUpdate
	// EventDelete: an entry went away (deleted by its owner, or its owner
	// left or was declared dead). Entry holds its last value.
	EventDelete
	// EventNodeDown: gossip declared a node dead, or it left. Entry.Owner
	// is its ID; the EventDelete of each of its entries came before.
	// (memberlist does not tell the two apart to its event delegate.)
	EventNodeDown
)

func (k EventKind) String() string {
	switch k {
	case EventCreate:
		return "create"
	case EventUpdate:
		return "update"
	case EventDelete:
		return "delete"
	case EventNodeDown:
		return "node-down"
	}
	return "unknown"
}

// Event is one change seen by a watcher.
type Event struct {
	Kind  EventKind
	Entry Entry
}
