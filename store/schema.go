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
