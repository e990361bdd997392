package store

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tidwall/btree"

	"github.com/apiary-io/apiary/swarm/api"
)

// dbState is one immutable state of every table: per kind (kindInfo.tab),
// one copy-on-write B-tree per index (kindInfo.indexes). The store keeps
// the committed one; readers and transactions hold whichever they started
// from, for free. States share the trees of the tables that did not change
// between them.
type dbState struct {
	tables [numTables]table
}

// table is the indexes of one kind: the primary one, by ID (ids, for
// kindInfo.indexes[0]), and the secondary ones (indexes[i] for
// kindInfo.indexes[i], i ≥ 1; indexes[0] is nil).
type table struct {
	ids     *idTree
	indexes []*tree
}

// numTables is len(kindList).
const numTables = 7

func newDB() *dbState {
	if len(kindList) != numTables {
		panic("store: numTables does not match kindList")
	}
	d := new(dbState)
	for _, ki := range kindList {
		tb := &d.tables[ki.tab]
		tb.ids = newTree(lessIDs)
		tb.indexes = make([]*tree, len(ki.indexes))
		for i := 1; i < len(ki.indexes); i++ {
			tb.indexes[i] = newTree(lessEntries)
		}
	}
	return d
}

// get returns the stored object with this ID, or nil. The object is shared:
// for the store's own use.
func (d *dbState) get(ki *kindInfo, id string) api.Object {
	if e, ok := d.tables[ki.tab].ids.Get(mkIDEntry(id, nil)); ok {
		return e.obj
	}
	return nil
}

// count returns how many objects of the kind there are.
func (d *dbState) count(ki *kindInfo) int { return d.tables[ki.tab].ids.Len() }

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
	tb := &d.tables[ki.tab]
	switch {
	case sel.all:
		tb.ids.Scan(func(e idEntry) bool { return fn(e.obj) })
	case sel.index == 0:
		tb.ids.Ascend(mkIDEntry(sel.prefix, nil), func(e idEntry) bool {
			return strings.HasPrefix(e.id, sel.prefix) && fn(e.obj)
		})
	default:
		tb.indexes[sel.index].Ascend(mkEntry(sel.key.s, sel.key.n, ""), func(e entry) bool {
			return e.s == sel.key.s && e.n == sel.key.n && fn(d.get(ki, e.id))
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

// dbWriter changes a private copy of a dbState: the trees of a table are
// copied (Copy, O(1)) when the writer first changes the table, and the
// writer changes its copies in place where it made the nodes itself;
// commit makes it a new state and ends the writer. Reading it (its
// dbState) sees its writes.
type dbWriter struct {
	dbState
	copied [numTables]bool
	// idHints and hints remember, per index, where the writer's last set
	// and last delete went in the tree ([0] and [1]): writers often go
	// through keys in order, and a search that starts where the last one
	// ended takes a comparison or two per level.
	idHints [numTables][2]btree.PathHint
	hints   [numTables][][2]btree.PathHint
	keys    []ikey // scratch for multi-valued indexes
}

func (d *dbState) writer() *dbWriter {
	return &dbWriter{dbState: dbState{tables: d.tables}}
}

// table returns ki's table, its trees copied for w on its first write.
func (w *dbWriter) table(ki *kindInfo) *table {
	tb := &w.tables[ki.tab]
	if !w.copied[ki.tab] {
		w.copied[ki.tab] = true
		tb.ids = copyTree(tb.ids)
		ts := make([]*tree, len(tb.indexes))
		for i := 1; i < len(ts); i++ {
			ts[i] = copyTree(tb.indexes[i])
		}
		tb.indexes = ts
		w.hints[ki.tab] = make([][2]btree.PathHint, len(ts))
	}
	return tb
}

// publish returns the state written so far, and the writer goes on from
// it: the trees it changed are that state's from now on, so its next
// write to a table copies the table's trees again (Copy, O(1)) and then
// each node it changes once.
func (w *dbWriter) publish() *dbState {
	d := &dbState{tables: w.tables}
	w.copied = [numTables]bool{}
	return d
}

// commit returns the state written. The writer must not be used after.
func (w *dbWriter) commit() *dbState {
	d := &dbState{tables: w.tables}
	w.tables = [numTables]table{}
	w.hints = [numTables][][2]btree.PathHint{}
	return d
}

// set writes e into t and returns the item it replaced. An item after all
// the others (IDs made in order, the tasks of a new service) is appended
// to the last leaf (Load) without a search; any other starts its search
// from hint.
func set[T any](t *btree.BTreeG[T], e T, hint *btree.PathHint) (T, bool) {
	if last, ok := t.Max(); ok && t.Less(last, e) {
		return t.Load(e)
	}
	return t.SetHint(e, hint)
}

// set writes e into secondary index i of ki and returns the entry it
// replaced.
func (w *dbWriter) set(ki *kindInfo, i int, e entry) (entry, bool) {
	return set(w.table(ki).indexes[i], e, &w.hints[ki.tab][i][0])
}

// delete removes the entry equal to e from secondary index i of ki and
// returns it.
func (w *dbWriter) delete(ki *kindInfo, i int, e entry) (entry, bool) {
	return w.table(ki).indexes[i].DeleteHint(e, &w.hints[ki.tab][i][1])
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
	prev, replaced := set(w.table(ki).ids, mkIDEntry(obj.GetID(), obj), &w.idHints[ki.tab][0])
	if !replaced {
		return nil
	}
	return prev.obj
}

// removePrimary is remove in the primary index only.
func (w *dbWriter) removePrimary(ki *kindInfo, id string) api.Object {
	prev, found := w.table(ki).ids.DeleteHint(mkIDEntry(id, nil), &w.idHints[ki.tab][1])
	if !found {
		return nil
	}
	return prev.obj
}

// reindex moves the entries of object id in secondary index i of ki from
// the keys of old to those of obj; either may be nil (a create, a delete).
// scratch is a buffer for multi-valued indexes, returned for reuse.
func (w *dbWriter) reindex(ki *kindInfo, i int, id string, old, obj api.Object, scratch []ikey) []ikey {
	// Only the keys that change: an entry does not hold the object, so
	// one whose key stays is left as it is (and its leaf uncopied).
	ix := &ki.indexes[i]
	if ix.key != nil {
		var k, k0 ikey
		var ok, in bool
		if obj != nil {
			k, ok = ix.key(obj)
		}
		if old != nil {
			k0, in = ix.key(old)
		}
		if in && (!ok || k0 != k) {
			w.delete(ki, i, mkEntry(k0.s, k0.n, id))
		}
		if ok && (!in || k0 != k) {
			w.set(ki, i, mkEntry(k.s, k.n, id))
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
				w.delete(ki, i, mkEntry(k.s, k.n, id))
			}
		}
	}
	for _, k := range keys[:n] {
		if !slices.Contains(keys[n:], k) {
			w.set(ki, i, mkEntry(k.s, k.n, id))
		}
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

// undo reverts changes, made in this order by putDeferred and
// removeDeferred, and by reindexAll when reindexed: a refused
// transaction's writes leave a writer that other transactions share as it
// was. Each change is reverted last first, in the primary index, the
// inline indexes and, once they followed, the others.
func (w *dbWriter) undo(changes []change, reindexed bool) {
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.old != nil {
			w.putPrimary(c.ki, c.old)
		} else {
			w.removePrimary(c.ki, c.id)
		}
		for j := 1; j < len(c.ki.indexes); j++ {
			if reindexed || inline(c.ki, j) {
				w.keys = w.reindex(c.ki, j, c.id, c.obj, c.old, w.keys)
			}
		}
	}
}

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
			w.table(c.ki) // copied here: the goroutines only read w.copied
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
