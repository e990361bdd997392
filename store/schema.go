package store

import (
	"encoding/binary"
	"fmt"

	"github.com/apiary-io/apiary/swarm/api"
	memdb "github.com/hashicorp/go-memdb"
)

// Index names. Every table has indexID (unique, primary) and indexName; the
// others exist on the tables noted.
const (
	indexID       = "id"
	indexIDPrefix = "id_prefix" // memdb's prefix scan of indexID
	indexName     = "name"
	indexService  = "service" // task: ServiceID
	indexNode     = "node"    // task: NodeID
	indexSlot     = "slot"    // task: (ServiceID, Slot)
	indexDesired  = "desired" // task: DesiredState
	indexState    = "state"   // task: Status.State
	indexRole     = "role"    // node: Spec.Role
	indexNetwork  = "network" // service, task: networks referenced
)

// kindInfo describes one table: how to make an empty object of the kind (to
// decode into), how to read its name, and whether names are unique.
type kindInfo struct {
	kind       api.Kind
	uniqueName bool
	newObject  func() api.Object
	name       func(any) string
}

// kindList is every kind in the fixed order Save writes them, so that two
// stores holding the same state produce the same bytes.
var kindList = []*kindInfo{
	{kind: api.KindCluster, uniqueName: true, newObject: func() api.Object { return new(api.Cluster) },
		name: func(o any) string { return o.(*api.Cluster).Spec.Name }},
	{kind: api.KindNode, uniqueName: true, newObject: func() api.Object { return new(api.Node) },
		name: func(o any) string { return o.(*api.Node).Spec.Name }},
	{kind: api.KindNetwork, uniqueName: true, newObject: func() api.Object { return new(api.Network) },
		name: func(o any) string { return o.(*api.Network).Spec.Name }},
	{kind: api.KindService, uniqueName: true, newObject: func() api.Object { return new(api.Service) },
		name: func(o any) string { return o.(*api.Service).Spec.Name }},
	// Task names ("web.3") repeat: every task of a slot has the same one.
	{kind: api.KindTask, uniqueName: false, newObject: func() api.Object { return new(api.Task) },
		name: func(o any) string { return o.(*api.Task).Name }},
}

var kindByName = func() map[api.Kind]*kindInfo {
	m := make(map[api.Kind]*kindInfo, len(kindList))
	for _, k := range kindList {
		m[k.kind] = k
	}
	return m
}()

func lookupKind(k api.Kind) (*kindInfo, error) {
	if ki, ok := kindByName[k]; ok {
		return ki, nil
	}
	return nil, fmt.Errorf("unknown object kind %q", k)
}

// schema builds the memdb schema. The indexers read fields through plain
// functions instead of memdb's reflection-based field indexers: every write
// indexes the object several times, and reflection would dominate its cost.
func schema() *memdb.DBSchema {
	tables := make(map[string]*memdb.TableSchema, len(kindList))
	for _, ki := range kindList {
		idx := map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true,
				Indexer: stringIndex(func(o any) string { return o.(api.Object).GetID() })},
			// Names are checked for uniqueness by the store itself (memdb
			// would silently repoint a unique index), so the index only has
			// to find them. Empty names are not indexed.
			indexName: {Name: indexName, Unique: ki.uniqueName, AllowMissing: true,
				Indexer: stringIndex(ki.name)},
		}
		switch ki.kind {
		case api.KindNode:
			idx[indexRole] = &memdb.IndexSchema{Name: indexRole, AllowMissing: true,
				Indexer: stringIndex(func(o any) string { return string(o.(*api.Node).Spec.Role) })}
		case api.KindService:
			idx[indexNetwork] = &memdb.IndexSchema{Name: indexNetwork, AllowMissing: true,
				Indexer: multiStringIndex(serviceNetworks)}
		case api.KindTask:
			idx[indexService] = &memdb.IndexSchema{Name: indexService, AllowMissing: true,
				Indexer: stringIndex(func(o any) string { return o.(*api.Task).ServiceID })}
			idx[indexNode] = &memdb.IndexSchema{Name: indexNode, AllowMissing: true,
				Indexer: stringIndex(func(o any) string { return o.(*api.Task).NodeID })}
			idx[indexSlot] = &memdb.IndexSchema{Name: indexSlot, AllowMissing: true,
				Indexer: slotIndex{}}
			idx[indexDesired] = &memdb.IndexSchema{Name: indexDesired,
				Indexer: stateIndex(func(o any) api.TaskState { return o.(*api.Task).DesiredState })}
			idx[indexState] = &memdb.IndexSchema{Name: indexState,
				Indexer: stateIndex(func(o any) api.TaskState { return o.(*api.Task).Status.State })}
			idx[indexNetwork] = &memdb.IndexSchema{Name: indexNetwork, AllowMissing: true,
				Indexer: multiStringIndex(taskNetworks)}
		}
		tables[string(ki.kind)] = &memdb.TableSchema{Name: string(ki.kind), Indexes: idx}
	}
	return &memdb.DBSchema{Tables: tables}
}

func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		// The schema is static: a failure is a programming error that every
		// test would hit.
		panic(fmt.Sprintf("store: invalid memdb schema: %v", err))
	}
	return db
}

func serviceNetworks(o any) []string {
	s := o.(*api.Service)
	var out []string
	for _, n := range s.Spec.TaskTemplate.Networks {
		out = append(out, n.Target)
	}
	if s.Endpoint != nil {
		for _, v := range s.Endpoint.VirtualIPs {
			out = append(out, v.NetworkID)
		}
	}
	return out
}

func taskNetworks(o any) []string {
	t := o.(*api.Task)
	var out []string
	for _, n := range t.Spec.Networks {
		out = append(out, n.Target)
	}
	for _, n := range t.Networks {
		out = append(out, n.NetworkID)
	}
	return out
}

// Index keys. Strings end in a NUL byte, as memdb's own string indexes do:
// memdb looks keys up by prefix and appends the primary key to the values of
// non-unique indexes, so without a terminator "web" would also find "web2".

func stringKey(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

func stringArg(args []any) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("want one argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return "", fmt.Errorf("want a string argument, got %T", args[0])
	}
	return s, nil
}

// stringIndex indexes one string read from the object; "" is not indexed.
type stringIndex func(any) string

func (f stringIndex) FromObject(o any) (bool, []byte, error) {
	s := f(o)
	if s == "" {
		return false, nil, nil
	}
	return true, stringKey(s), nil
}

func (f stringIndex) FromArgs(args ...any) ([]byte, error) {
	s, err := stringArg(args)
	if err != nil {
		return nil, err
	}
	return stringKey(s), nil
}

// PrefixFromArgs makes the index usable with memdb's "_prefix" scans.
func (f stringIndex) PrefixFromArgs(args ...any) ([]byte, error) {
	s, err := stringArg(args)
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// multiStringIndex indexes every non-empty string of a list.
type multiStringIndex func(any) []string

func (f multiStringIndex) FromObject(o any) (bool, [][]byte, error) {
	vals := f(o)
	var keys [][]byte
next:
	for i, s := range vals {
		if s == "" {
			continue
		}
		// Lists are a handful of networks: a linear scan beats a map.
		for _, prev := range vals[:i] {
			if prev == s {
				continue next
			}
		}
		keys = append(keys, stringKey(s))
	}
	return len(keys) > 0, keys, nil
}

func (f multiStringIndex) FromArgs(args ...any) ([]byte, error) {
	s, err := stringArg(args)
	if err != nil {
		return nil, err
	}
	return stringKey(s), nil
}

// stateIndex indexes a task state as 8 big-endian bytes.
type stateIndex func(any) api.TaskState

func stateKey(s api.TaskState) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(s))
}

func (f stateIndex) FromObject(o any) (bool, []byte, error) { return true, stateKey(f(o)), nil }

func (f stateIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("want one argument, got %d", len(args))
	}
	s, ok := args[0].(api.TaskState)
	if !ok {
		return nil, fmt.Errorf("want an api.TaskState argument, got %T", args[0])
	}
	return stateKey(s), nil
}

// slotIndex indexes tasks by service ID and slot; tasks without a service
// are not indexed.
type slotIndex struct{}

func slotKey(serviceID string, slot uint64) []byte {
	return binary.BigEndian.AppendUint64(stringKey(serviceID), slot)
}

func (slotIndex) FromObject(o any) (bool, []byte, error) {
	t := o.(*api.Task)
	if t.ServiceID == "" {
		return false, nil, nil
	}
	return true, slotKey(t.ServiceID, t.Slot), nil
}

func (slotIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("want service ID and slot, got %d arguments", len(args))
	}
	id, ok1 := args[0].(string)
	slot, ok2 := args[1].(uint64)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("want (string, uint64), got (%T, %T)", args[0], args[1])
	}
	return slotKey(id, slot), nil
}

// overlay answers, for a transaction being built or applied, what is stored
// under an ID and who holds a name, from the state the transaction started
// from (base) plus its own writes (kept in maps). It exists for speed:
// reading a memdb write transaction after writing to it clones the index
// and throws away memdb's cache of nodes it may write in place, so a read
// before every write made each insert of a large transaction copy whole
// index paths. With the overlay, the checks never read the write
// transaction.
type overlay struct {
	base *memdb.Txn
	// objs holds the objects written so far: the object, or nil once
	// deleted. Nil map until the first write.
	objs map[key]api.Object
	// names maps {kind, name} to the ID of the last object written with
	// that name, which may have moved on since.
	names map[key]string
}

func (o *overlay) touched(kind api.Kind, id string) bool {
	_, ok := o.objs[key{kind, id}]
	return ok
}

func (o *overlay) get(kind api.Kind, id string) api.Object {
	if obj, ok := o.objs[key{kind, id}]; ok {
		return obj
	}
	return lookup(o.base, kind, id)
}

// put records obj as written; remove records a delete.
func (o *overlay) put(ki *kindInfo, obj api.Object) {
	if o.objs == nil {
		o.objs = make(map[key]api.Object)
		o.names = make(map[key]string)
	}
	id := obj.GetID()
	o.objs[key{ki.kind, id}] = obj
	if ki.uniqueName {
		if name := ki.name(obj); name != "" {
			o.names[key{ki.kind, name}] = id
		}
	}
}

func (o *overlay) remove(kind api.Kind, id string) {
	if o.objs == nil {
		o.objs = make(map[key]api.Object)
		o.names = make(map[key]string)
	}
	o.objs[key{kind, id}] = nil
}

// holder returns the ID of the object that has the name now, or "".
func (o *overlay) holder(ki *kindInfo, name string) string {
	holds := func(id string) bool {
		cur := o.get(ki.kind, id)
		return cur != nil && ki.name(cur) == name
	}
	// The last object of this transaction to take the name, if it kept it.
	// No other object of the transaction can hold it: each took it only
	// while it was free, so any later taker would be the last one.
	if id, ok := o.names[key{ki.kind, name}]; ok && holds(id) {
		return id
	}
	// Otherwise whoever held it before, unless this transaction renamed or
	// deleted it.
	prev, err := o.base.First(string(ki.kind), indexName, name)
	if err != nil {
		panic(fmt.Sprintf("store: lookup %s name %q: %v", ki.kind, name, err))
	}
	if prev == nil {
		return ""
	}
	if id := prev.(api.Object).GetID(); holds(id) {
		return id
	}
	return ""
}

// checkName refuses obj's name when another object of its kind has it.
func (o *overlay) checkName(ki *kindInfo, obj api.Object) error {
	if !ki.uniqueName {
		return nil
	}
	name := ki.name(obj)
	if name == "" {
		return nil
	}
	if id := o.holder(ki, name); id != "" && id != obj.GetID() {
		return fmt.Errorf("name %q is taken by %s %s: %w", name, ki.kind, id, ErrNameConflict)
	}
	return nil
}
