package store

import (
	"fmt"

	"github.com/apiary-io/apiary/swarm/api"
)

// Index names. Every table has indexID (unique, primary) and indexName; the
// others exist on the tables noted.
const (
	indexID      = "id"
	indexName    = "name"
	indexService = "service" // task: ServiceID
	indexNode    = "node"    // task: NodeID
	indexSlot    = "slot"    // task: (ServiceID, Slot)
	indexDesired = "desired" // task: DesiredState
	indexState   = "state"   // task: Status.State
	indexRole    = "role"    // node: Spec.Role
	indexNetwork = "network" // service, task: networks referenced
	indexPort    = "port"    // service: ingress ports held or asked for
	indexAddr    = "addr"    // service, task: addresses held (AddrKey)
	indexSecret  = "secret"  // service, task: secrets referenced
	indexConfig  = "config"  // service, task: configs referenced
	// indexVersions: secret, config: Spec.Name, shared by every version
	// kept (the name index holds the newest only).
	indexVersions = "versions"
)

// kindInfo describes one table: how to make an empty object of the kind (to
// decode into), how to read its name, whether names are unique, and its
// indexes.
type kindInfo struct {
	kind       api.Kind
	uniqueName bool
	newObject  func() api.Object
	name       func(any) string
	// tab is the table's position in kindList and in a dbState.
	tab int
	// indexes are the table's indexes; indexes[0] is indexID, the primary
	// one, whose entries are keyed by the ID alone.
	indexes []indexDef
}

// ikey is an index key: a string, a number, or both (the slot index).
type ikey struct {
	s string
	n uint64
}

// indexDef is a secondary index: the keys an object is found under. An
// object without a key (an empty string) is not in the index.
type indexDef struct {
	name string
	// key returns the object's one key, for single-valued indexes.
	key func(api.Object) (ikey, bool)
	// keys appends the object's distinct keys to dst, for multi-valued
	// indexes (key is nil).
	keys func(o api.Object, dst []ikey) []ikey
}

// kindList is every kind in the fixed order Save writes them, so that two
// stores holding the same state produce the same bytes.
var kindList = func() []*kindInfo {
	list := []*kindInfo{
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
		// Secrets and configs came later: last, so snapshots of a store
		// without them are written as before.
		// A superseded version gives its name up to the newer one: it is
		// found by ID or by ByVersionsOf.
		{kind: api.KindSecret, uniqueName: true, newObject: func() api.Object { return new(api.Secret) },
			name: func(o any) string { return secretName(o.(*api.Secret).Spec.Name, o.(*api.Secret).Superseded) }},
		{kind: api.KindConfig, uniqueName: true, newObject: func() api.Object { return new(api.Config) },
			name: func(o any) string { return secretName(o.(*api.Config).Spec.Name, o.(*api.Config).Superseded) }},
	}
	for i, ki := range list {
		ki.tab = i
		ki.indexes = []indexDef{{name: indexID}, {name: indexName, key: stringKey(ki.name)}}
		switch ki.kind {
		case api.KindNode:
			ki.indexes = append(ki.indexes,
				indexDef{name: indexRole, key: stringKey(func(o any) string { return string(o.(*api.Node).Spec.Role) })})
		case api.KindService:
			ki.indexes = append(ki.indexes,
				indexDef{name: indexNetwork, keys: stringKeys(serviceNetworks)},
				indexDef{name: indexPort, keys: stringKeys(servicePorts)},
				indexDef{name: indexAddr, keys: stringKeys(serviceAddrs)},
				indexDef{name: indexSecret, keys: stringKeys(serviceSecrets)},
				indexDef{name: indexConfig, keys: stringKeys(serviceConfigs)})
		case api.KindSecret:
			ki.indexes = append(ki.indexes,
				indexDef{name: indexVersions, key: stringKey(func(o any) string { return o.(*api.Secret).Spec.Name })})
		case api.KindConfig:
			ki.indexes = append(ki.indexes,
				indexDef{name: indexVersions, key: stringKey(func(o any) string { return o.(*api.Config).Spec.Name })})
		case api.KindTask:
			ki.indexes = append(ki.indexes,
				indexDef{name: indexService, key: stringKey(func(o any) string { return o.(*api.Task).ServiceID })},
				indexDef{name: indexNode, key: stringKey(func(o any) string { return o.(*api.Task).NodeID })},
				indexDef{name: indexSlot, key: slotKey},
				indexDef{name: indexDesired, key: func(o api.Object) (ikey, bool) {
					return ikey{n: uint64(o.(*api.Task).DesiredState)}, true
				}},
				indexDef{name: indexState, key: func(o api.Object) (ikey, bool) {
					return ikey{n: uint64(o.(*api.Task).Status.State)}, true
				}},
				indexDef{name: indexNetwork, keys: stringKeys(taskNetworks)},
				indexDef{name: indexAddr, keys: stringKeys(taskAddrs)},
				indexDef{name: indexSecret, keys: stringKeys(func(o any, add func(string)) { specSecrets(&o.(*api.Task).Spec, add) })},
				indexDef{name: indexConfig, keys: stringKeys(func(o any, add func(string)) { specConfigs(&o.(*api.Task).Spec, add) })})
		}
	}
	return list
}()

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

// index returns the position of the named index in ki.indexes, or -1.
func (ki *kindInfo) index(name string) int {
	for i := range ki.indexes {
		if ki.indexes[i].name == name {
			return i
		}
	}
	return -1
}

// stringKey indexes one string read from the object; "" is not indexed.
func stringKey(f func(any) string) func(api.Object) (ikey, bool) {
	return func(o api.Object) (ikey, bool) {
		s := f(o)
		return ikey{s: s}, s != ""
	}
}

// stringKeys indexes every distinct non-empty string of a list, read
// through f, which calls add for each.
func stringKeys(f func(o any, add func(string))) func(api.Object, []ikey) []ikey {
	return func(o api.Object, dst []ikey) []ikey {
		n := len(dst)
		f(o, func(s string) {
			if s == "" {
				return
			}
			// Lists are a handful of networks: a linear scan beats a map.
			for _, k := range dst[n:] {
				if k.s == s {
					return
				}
			}
			dst = append(dst, ikey{s: s})
		})
		return dst
	}
}

// slotKey indexes tasks by service ID and slot; tasks without a service
// are not indexed.
func slotKey(o api.Object) (ikey, bool) {
	t := o.(*api.Task)
	return ikey{s: t.ServiceID, n: t.Slot}, t.ServiceID != ""
}

func serviceNetworks(o any, add func(string)) {
	s := o.(*api.Service)
	for _, n := range s.Spec.TaskTemplate.Networks {
		add(n.Target)
	}
	if s.Endpoint != nil {
		for _, v := range s.Endpoint.VirtualIPs {
			add(v.NetworkID)
		}
	}
}

func taskNetworks(o any, add func(string)) {
	t := o.(*api.Task)
	for _, n := range t.Spec.Networks {
		add(n.Target)
	}
	for _, n := range t.Networks {
		add(n.NetworkID)
	}
}

// secretName is a secret's or config's name in the name index: none once
// superseded.
func secretName(name string, superseded bool) string {
	if superseded {
		return ""
	}
	return name
}

// serviceSecrets and serviceConfigs add the IDs of the secrets and
// configs a service's spec and previous spec reference: a rollback would
// bring the previous one back, so its versions are kept and in use.
func serviceSecrets(o any, add func(string)) {
	s := o.(*api.Service)
	specSecrets(&s.Spec.TaskTemplate, add)
	if s.PreviousSpec != nil {
		specSecrets(&s.PreviousSpec.TaskTemplate, add)
	}
}

func serviceConfigs(o any, add func(string)) {
	s := o.(*api.Service)
	specConfigs(&s.Spec.TaskTemplate, add)
	if s.PreviousSpec != nil {
		specConfigs(&s.PreviousSpec.TaskTemplate, add)
	}
}

// specSecrets and specConfigs add the IDs of the secrets and configs a
// template references.
func specSecrets(t *api.TaskSpec, add func(string)) {
	for _, r := range t.Secrets {
		add(r.SecretID)
	}
}

func specConfigs(t *api.TaskSpec, add func(string)) {
	for _, r := range t.Configs {
		add(r.ConfigID)
	}
}

// overlay answers, for a transaction being built, what is stored under an
// ID and who holds a name, from the state the transaction started from
// (base) plus its own writes. It exists for speed: the writes reach a
// table only when the transaction commits (or when it searches by index,
// see tx.sync), so that most transactions write each change into the
// tables once, not twice.
type overlay struct {
	base *dbState
	// few holds the first overlayFew objects written, each once (the
	// object, or nil once deleted), searched in turn: most transactions
	// write one object or a few, for which two maps per table were most
	// of what a transaction allocated. Past that, every write is in the
	// maps (spilled).
	few     [overlayFew]written
	nfew    int
	spilled bool
	// objs holds, per table, the objects written so far: the object, or
	// nil once deleted. Nil maps until the first write.
	objs [numTables]map[string]api.Object
	// names maps, per table, a name to the ID of the last object written
	// with that name, which may have moved on since.
	names [numTables]map[string]string
}

const overlayFew = 4

type written struct {
	tab int
	id  string
	obj api.Object
}

func (o *overlay) get(ki *kindInfo, id string) api.Object {
	if !o.spilled {
		for _, w := range o.few[:o.nfew] {
			if w.tab == ki.tab && w.id == id {
				return w.obj
			}
		}
	} else if obj, ok := o.objs[ki.tab][id]; ok {
		return obj
	}
	return o.base.get(ki, id)
}

// put records obj as written; remove records a delete.
func (o *overlay) put(ki *kindInfo, obj api.Object) { o.write(ki, obj.GetID(), obj) }

func (o *overlay) remove(ki *kindInfo, id string) { o.write(ki, id, nil) }

func (o *overlay) write(ki *kindInfo, id string, obj api.Object) {
	if !o.spilled {
		for i := range o.few[:o.nfew] {
			if w := &o.few[i]; w.tab == ki.tab && w.id == id {
				w.obj = obj
				return
			}
		}
		if o.nfew < overlayFew {
			o.few[o.nfew] = written{tab: ki.tab, id: id, obj: obj}
			o.nfew++
			return
		}
		o.spilled = true
		for _, w := range o.few {
			o.writeMaps(kindList[w.tab], w.id, w.obj)
		}
		o.few = [overlayFew]written{}
	}
	o.writeMaps(ki, id, obj)
}

func (o *overlay) writeMaps(ki *kindInfo, id string, obj api.Object) {
	objs := o.objs[ki.tab]
	if objs == nil {
		objs = make(map[string]api.Object)
		o.objs[ki.tab] = objs
	}
	objs[id] = obj
	if obj != nil && ki.uniqueName {
		if name := ki.name(obj); name != "" {
			if o.names[ki.tab] == nil {
				o.names[ki.tab] = make(map[string]string)
			}
			o.names[ki.tab][name] = id
		}
	}
}

// holder returns the ID of the object that has the name now, or "".
func (o *overlay) holder(ki *kindInfo, name string) string {
	holds := func(id string) bool {
		cur := o.get(ki, id)
		return cur != nil && ki.name(cur) == name
	}
	// An object of this transaction that has the name now. No two can:
	// each took it only while it was free. Among the few, look at each;
	// in the maps, at the last to take it, which would be the one.
	if !o.spilled {
		for _, w := range o.few[:o.nfew] {
			if w.tab == ki.tab && w.obj != nil && ki.name(w.obj) == name {
				return w.id
			}
		}
	} else if id, ok := o.names[ki.tab][name]; ok && holds(id) {
		return id
	}
	// Otherwise whoever held it before, unless this transaction renamed or
	// deleted it.
	if id := o.base.nameHolder(ki, name); id != "" && holds(id) {
		return id
	}
	return ""
}

// checkName refuses obj's name when another object of its kind has it.
func (o *overlay) checkName(ki *kindInfo, obj api.Object) error {
	return checkName(ki, obj, o.holder)
}

// checkName refuses obj's name when holder says another object of its
// kind has it.
func checkName(ki *kindInfo, obj api.Object, holder func(*kindInfo, string) string) error {
	if !ki.uniqueName {
		return nil
	}
	name := ki.name(obj)
	if name == "" {
		return nil
	}
	if id := holder(ki, name); id != "" && id != obj.GetID() {
		return nameConflict(ki, name, id)
	}
	return nil
}

func nameConflict(ki *kindInfo, name, holder string) error {
	return fmt.Errorf("name %q is taken by %s %s: %w", name, ki.kind, holder, ErrNameConflict)
}
