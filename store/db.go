package store

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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
	old := w.putPrimary(ki, obj)
	for i := 1; i < len(ki.indexes); i++ {
		w.keys = w.reindex(ki, i, obj.GetID(), old, obj, w.keys)
	}
	return old
}

// remove deletes the object with this ID and returns it, or nil if there
// is none.
func (w *dbWriter) remove(ki *kindInfo, id string) api.Object {
	old := w.removePrimary(ki, id)
	if old != nil {
		for i := 1; i < len(ki.indexes); i++ {
			w.keys = w.reindex(ki, i, id, old, nil, w.keys)
		}
	}
	return old
}

// putPrimary is put in the primary index only.
func (w *dbWriter) putPrimary(ki *kindInfo, obj api.Object) api.Object {
	prev, replaced := w.tables[ki.tab][0].set(w.owner, mkEntry("", 0, obj.GetID(), obj))
	if !replaced {
		return nil
	}
	return prev.obj
}

// removePrimary is remove in the primary index only.
func (w *dbWriter) removePrimary(ki *kindInfo, id string) api.Object {
	prev, found := w.tables[ki.tab][0].delete(w.owner, ptr(mkEntry("", 0, id, nil)))
	if !found {
		return nil
	}
	return prev.obj
}

// reindex moves the entries of object id in secondary index i of ki from
// the keys of old to those of obj; either may be nil (a create, a delete).
// scratch is a buffer for multi-valued indexes, returned for reuse.
func (w *dbWriter) reindex(ki *kindInfo, i int, id string, old, obj api.Object, scratch []ikey) []ikey {
	t := &w.tables[ki.tab][i]
	ix := &ki.indexes[i]
	if ix.key != nil {
		var k ikey
		var ok bool
		if obj != nil {
			k, ok = ix.key(obj)
		}
		if old != nil {
			if k0, in := ix.key(old); in && (!ok || k0 != k) {
				t.delete(w.owner, ptr(mkEntry(k0.s, k0.n, id, nil)))
			}
		}
		if ok {
			t.set(w.owner, mkEntry(k.s, k.n, id, obj))
		}
		return scratch
	}
	keys := scratch[:0]
	if obj != nil {
		keys = ix.keys(obj, keys)
	}
	n := len(keys)
	if old != nil {
		keys = ix.keys(old, keys)
		for _, k := range keys[n:] {
			if !slices.Contains(keys[:n], k) {
				t.delete(w.owner, ptr(mkEntry(k.s, k.n, id, nil)))
			}
		}
	}
	for _, k := range keys[:n] {
		t.set(w.owner, mkEntry(k.s, k.n, id, obj))
	}
	return keys[:0]
}

// change is one write whose secondary indexes are yet to follow: the
// object replaced or removed (old) and the object written (obj), nil when
// there is none.
type change struct {
	ki       *kindInfo
	id       string
	old, obj api.Object
}

// inline reports whether index i of ki must follow each write at once,
// not in reindexAll: the name index of kinds with unique names, which the
// checks of the next writes read.
func inline(ki *kindInfo, i int) bool { return i == 1 && ki.uniqueName }

// putDeferred is put, except that the secondary indexes other than the
// inline ones change only in reindexAll: the caller records the change.
func (w *dbWriter) putDeferred(ki *kindInfo, obj api.Object) api.Object {
	old := w.putPrimary(ki, obj)
	if ki.uniqueName {
		w.keys = w.reindex(ki, 1, obj.GetID(), old, obj, w.keys)
	}
	return old
}

// removeDeferred is remove as putDeferred is put.
func (w *dbWriter) removeDeferred(ki *kindInfo, id string) api.Object {
	old := w.removePrimary(ki, id)
	if old != nil && ki.uniqueName {
		w.keys = w.reindex(ki, 1, id, old, nil, w.keys)
	}
	return old
}

// parallelReindex is how many changes make reindexAll share the indexes
// among goroutines: below it, starting them costs more than it saves.
const parallelReindex = 256

// reindexAll brings the secondary indexes up to date with changes, made by
// putDeferred and removeDeferred, in order. Each index is a tree of its
// own, written by one goroutine, so that a large transaction's indexes are
// built in parallel.
func (w *dbWriter) reindexAll(changes []change) {
	type unit struct {
		ki *kindInfo
		i  int
	}
	var units []unit
	var touched [numTables]bool
	for _, c := range changes {
		if !touched[c.ki.tab] {
			touched[c.ki.tab] = true
			for i := 1; i < len(c.ki.indexes); i++ {
				if !inline(c.ki, i) {
					units = append(units, unit{c.ki, i})
				}
			}
		}
	}
	run := func(u unit, scratch []ikey) []ikey {
		for _, c := range changes {
			if c.ki == u.ki {
				scratch = w.reindex(c.ki, u.i, c.id, c.old, c.obj, scratch)
			}
		}
		return scratch
	}
	workers := min(runtime.GOMAXPROCS(0), len(units))
	if len(changes) < parallelReindex || workers < 2 {
		for _, u := range units {
			w.keys = run(u, w.keys)
		}
		return
	}
	var next atomic.Int32
	work := func() {
		var scratch []ikey
		for {
			u := int(next.Add(1)) - 1
			if u >= len(units) {
				return
			}
			scratch = run(units[u], scratch)
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

func ptr(e entry) *entry { return &e }
