package store

import (
	"slices"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// dbState is one immutable state of every table: per kind (kindInfo.tab),
// one copy-on-write B-tree per index (kindInfo.indexes). The store keeps
// the committed one; readers and transactions hold whichever they started
// from, for free.
type dbState struct {
	tables [numTables][]btree
}

// numTables is len(kindList).
const numTables = 5

func newDB() *dbState {
	if len(kindList) != numTables {
		panic("store: numTables does not match kindList")
	}
	d := new(dbState)
	for _, ki := range kindList {
		d.tables[ki.tab] = make([]btree, len(ki.indexes))
	}
	return d
}

// get returns the stored object with this ID, or nil. The object is shared:
// for the store's own use.
func (d *dbState) get(ki *kindInfo, id string) api.Object {
	if e, ok := d.tables[ki.tab][0].get(&entry{ip: [2]uint64{prefix(id, 0), prefix(id, 8)}, id: id}); ok {
		return e.obj
	}
	return nil
}

// count returns how many objects of the kind there are.
func (d *dbState) count(ki *kindInfo) int { return d.tables[ki.tab][0].length }

// selector is what a Find reads: all objects, those whose ID has a prefix,
// or those under one key of an index.
type selector struct {
	index  int  // position in kindInfo.indexes
	key    ikey // for a secondary index
	prefix string
	all    bool // index 0: every object, in ID order
}

// find calls fn on the objects sel selects, in key then ID order, until fn
// returns false. The objects are shared: for the store's own use.
func (d *dbState) find(ki *kindInfo, sel selector, fn func(api.Object) bool) {
	t := &d.tables[ki.tab][sel.index]
	switch {
	case sel.all:
		t.ascend(nil, func(e *entry) bool { return fn(e.obj) })
	case sel.index == 0:
		from := mkEntry("", 0, sel.prefix, nil)
		t.ascend(&from, func(e *entry) bool {
			return strings.HasPrefix(e.id, sel.prefix) && fn(e.obj)
		})
	default:
		from := mkEntry(sel.key.s, sel.key.n, "", nil)
		t.ascend(&from, func(e *entry) bool {
			return e.s == sel.key.s && e.n == sel.key.n && fn(e.obj)
		})
	}
}

// nameHolder returns the ID of the first object of the kind with this name,
// or "". For kinds with unique names, the only one.
func (d *dbState) nameHolder(ki *kindInfo, name string) string {
	var id string
	d.find(ki, selector{index: 1, key: ikey{s: name}}, func(o api.Object) bool {
		id = o.GetID()
		return false
	})
	return id
}

// checkNameWritten refuses obj's name, obj being written already, when
// another object of its kind has it too.
func (d *dbState) checkNameWritten(ki *kindInfo, obj api.Object) error {
	if !ki.uniqueName {
		return nil
	}
	name := ki.name(obj)
	if name == "" {
		return nil
	}
	self := obj.GetID()
	var other string
	d.find(ki, selector{index: 1, key: ikey{s: name}}, func(o api.Object) bool {
		if id := o.GetID(); id != self {
			other = id
			return false
		}
		return true
	})
	if other != "" {
		return nameConflict(ki, name, other)
	}
	return nil
}

// dbWriter changes a private copy of a dbState, in place where it made the
// nodes itself; commit makes it a new state and ends the writer. Reading
// it (its dbState) sees its writes.
type dbWriter struct {
	dbState
	owner *owner
	keys  []ikey // scratch for multi-valued indexes
}

func (d *dbState) writer() *dbWriter {
	w := &dbWriter{owner: new(owner)}
	for i := range d.tables {
		w.tables[i] = slices.Clone(d.tables[i])
	}
	return w
}

// commit returns the state written. The writer must not be used after.
func (w *dbWriter) commit() *dbState {
	d := &dbState{tables: w.tables}
	w.tables = [numTables][]btree{}
	w.owner = nil
	return d
}

// put stores obj, replacing the object with its ID if there is one, and
// returns the object replaced. The object becomes shared: it must not
// change from now on.
func (w *dbWriter) put(ki *kindInfo, obj api.Object) api.Object {
	trees := w.tables[ki.tab]
	id := obj.GetID()
	prev, replaced := trees[0].set(w.owner, mkEntry("", 0, id, obj))
	old := prev.obj
	if !replaced {
		old = nil
	}
	for i := 1; i < len(ki.indexes); i++ {
		ix := &ki.indexes[i]
		if ix.key != nil {
			k, ok := ix.key(obj)
			if old != nil {
				if ok0, in := ix.key(old); in && (!ok || ok0 != k) {
					trees[i].delete(w.owner, ptr(mkEntry(ok0.s, ok0.n, id, nil)))
				}
			}
			if ok {
				trees[i].set(w.owner, mkEntry(k.s, k.n, id, obj))
			}
			continue
		}
		keys := ix.keys(obj, w.keys[:0])
		n := len(keys)
		if old != nil {
			keys = ix.keys(old, keys)
			for _, k := range keys[n:] {
				if !slices.Contains(keys[:n], k) {
					trees[i].delete(w.owner, ptr(mkEntry(k.s, k.n, id, nil)))
				}
			}
		}
		for _, k := range keys[:n] {
			trees[i].set(w.owner, mkEntry(k.s, k.n, id, obj))
		}
		w.keys = keys[:0]
	}
	return old
}

// remove deletes the object with this ID and returns it, or nil if there
// is none.
func (w *dbWriter) remove(ki *kindInfo, id string) api.Object {
	trees := w.tables[ki.tab]
	prev, found := trees[0].delete(w.owner, ptr(mkEntry("", 0, id, nil)))
	if !found {
		return nil
	}
	old := prev.obj
	for i := 1; i < len(ki.indexes); i++ {
		ix := &ki.indexes[i]
		if ix.key != nil {
			if k, ok := ix.key(old); ok {
				trees[i].delete(w.owner, ptr(mkEntry(k.s, k.n, id, nil)))
			}
			continue
		}
		keys := ix.keys(old, w.keys[:0])
		for _, k := range keys {
			trees[i].delete(w.owner, ptr(mkEntry(k.s, k.n, id, nil)))
		}
		w.keys = keys[:0]
	}
	return old
}

func ptr(e entry) *entry { return &e }
