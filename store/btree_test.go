package store

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// checkTree verifies the B-tree invariants (order, node sizes, equal leaf
// depth, length) and that it holds exactly want, in order.
func checkTree(t *testing.T, tr *btree, want []string) {
	t.Helper()
	var got []string
	tr.ascend(nil, func(e *entry) bool { got = append(got, e.id); return true })
	if !slices.Equal(got, want) {
		t.Fatalf("tree holds %d entries %v..., want %d %v...", len(got), head(got), len(want), head(want))
	}
	if tr.length != len(want) {
		t.Fatalf("length %d, want %d", tr.length, len(want))
	}
	if tr.root == nil {
		return
	}
	leafDepth := -1
	var walk func(n *bnode, depth int, lo, hi *entry)
	walk = func(n *bnode, depth int, lo, hi *entry) {
		if len(n.items) < 1 || len(n.items) > btreeMaxItems {
			t.Fatalf("node with %d items", len(n.items))
		}
		for i := range n.items {
			if lo != nil && compareEntries(lo, &n.items[i]) >= 0 || hi != nil && compareEntries(&n.items[i], hi) >= 0 {
				t.Fatalf("item %q out of its node's range", n.items[i].id)
			}
			if i > 0 && compareEntries(&n.items[i-1], &n.items[i]) >= 0 {
				t.Fatalf("items out of order")
			}
		}
		if n.children == nil {
			if leafDepth == -1 {
				leafDepth = depth
			} else if leafDepth != depth {
				t.Fatalf("leaves at depths %d and %d", leafDepth, depth)
			}
			return
		}
		if len(n.children) != len(n.items)+1 {
			t.Fatalf("%d children for %d items", len(n.children), len(n.items))
		}
		for i, c := range n.children {
			l, h := lo, hi
			if i > 0 {
				l = &n.items[i-1]
			}
			if i < len(n.items) {
				h = &n.items[i]
			}
			walk(c, depth+1, l, h)
		}
	}
	walk(tr.root, 0, nil, nil)
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// TestBtreeModel runs random inserts and deletes against a map, taking
// snapshots along the way, and checks that every snapshot keeps what it
// held while later writers change the tree.
func TestBtreeModel(t *testing.T) {
	for _, space := range []int{10, 100, 3000} {
		t.Run(fmt.Sprint(space), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(space)))
			var tr btree
			model := map[string]bool{}
			type snap struct {
				tree btree
				want []string
			}
			var snaps []snap
			for round := 0; round < 60; round++ {
				o := new(owner) // one writer per round, as a transaction
				ops := rng.Intn(3 * space)
				// Rounds that grow, shrink or churn at random, or go
				// through the keys in order, inserting, or deleting and
				// setting (as a writer that moves objects between keys).
				insertBias := rng.Intn(5)
				next := rng.Intn(space)
				for i := 0; i < ops; i++ {
					id := fmt.Sprintf("k%05d", rng.Intn(space))
					if insertBias >= 3 {
						id = fmt.Sprintf("k%05d", next%space)
						next++
					}
					var del bool
					switch insertBias {
					case 0:
						del = rng.Intn(4) == 0
					case 1:
						del = rng.Intn(4) != 0
					case 2, 4:
						del = rng.Intn(2) == 0
					}
					if del {
						old, found := tr.delete(o, ptr(mkEntry("", 0, id, nil)))
						if found != model[id] || found && old.id != id {
							t.Fatalf("delete %s: found %v (%q), model %v", id, found, old.id, model[id])
						}
						delete(model, id)
					} else {
						old, replaced := tr.set(o, mkEntry("", 0, id, nil))
						if replaced != model[id] || replaced && old.id != id {
							t.Fatalf("set %s: replaced %v, model %v", id, replaced, model[id])
						}
						model[id] = true
					}
					if i%97 == 0 {
						if _, ok := tr.get(ptr(mkEntry("", 0, id, nil))); ok != model[id] {
							t.Fatalf("get %s: %v, model %v", id, ok, model[id])
						}
					}
				}
				want := slices.Sorted(maps.Keys(model))
				checkTree(t, &tr, want)
				snaps = append(snaps, snap{tr, want})
				for _, s := range snaps {
					checkTree(t, &s.tree, s.want)
				}
				// Remove everything sometimes, down to an empty tree.
				if round%20 == 19 {
					o := new(owner)
					for _, id := range want {
						tr.delete(o, ptr(mkEntry("", 0, id, nil)))
					}
					clear(model)
					checkTree(t, &tr, nil)
				}
			}
			for _, s := range snaps {
				checkTree(t, &s.tree, s.want)
			}
		})
	}
}

func TestBtreeAscendFrom(t *testing.T) {
	var tr btree
	o := new(owner)
	var all []string
	for i := 0; i < 2000; i += 2 {
		id := fmt.Sprintf("k%05d", i)
		tr.set(o, mkEntry("", 0, id, nil))
		all = append(all, id)
	}
	for _, from := range []int{-1, 0, 1, 2, 999, 1000, 1998, 1999, 5000} {
		k := fmt.Sprintf("k%05d", from)
		var got []string
		tr.ascend(ptr(mkEntry("", 0, k, nil)), func(e *entry) bool {
			got = append(got, e.id)
			return len(got) < 10
		})
		i, _ := slices.BinarySearch(all, k)
		want := all[i:min(i+10, len(all))]
		if !slices.Equal(got, want) {
			t.Errorf("from %s: %v, want %v", k, got, want)
		}
	}
}

// TestDBIndexesModel writes random tasks through a dbWriter and checks
// every index against a scan of the objects, in several transactions, with
// earlier states unchanged.
func TestDBIndexesModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ki := kindByName[api.KindTask]
	db := newDB()
	model := map[string]*api.Task{}
	type snap struct {
		db    *dbState
		model map[string]*api.Task
	}
	var snaps []snap
	check := func(db *dbState, model map[string]*api.Task) {
		t.Helper()
		for i := 1; i < len(ki.indexes); i++ {
			ix := &ki.indexes[i]
			want := map[ikey][]string{}
			for id, o := range model {
				var ks []ikey
				if ix.key != nil {
					if k, ok := ix.key(o); ok {
						ks = append(ks, k)
					}
				} else {
					ks = ix.keys(o, nil)
				}
				for _, k := range ks {
					want[k] = append(want[k], id)
				}
			}
			total := 0
			for k, ids := range want {
				slices.Sort(ids)
				var got []string
				db.find(ki, selector{index: i, key: k}, func(o api.Object) bool {
					if model[o.GetID()] != o {
						t.Fatalf("index %s: stale object for %s", ix.name, o.GetID())
					}
					got = append(got, o.GetID())
					return true
				})
				if !slices.Equal(got, ids) {
					t.Fatalf("index %s key %v: %v, want %v", ix.name, k, got, ids)
				}
				total += len(ids)
			}
			if n := db.tables[ki.tab][i].length; n != total {
				t.Fatalf("index %s holds %d entries, want %d", ix.name, n, total)
			}
		}
		if db.count(ki) != len(model) {
			t.Fatalf("%d tasks, want %d", db.count(ki), len(model))
		}
	}
	nets := []string{"", "n1", "n2", "n3"}
	for round := 0; round < 40; round++ {
		w := db.writer()
		// Odd rounds write as applyLocked does: the primary index at once,
		// the others at the end, in parallel.
		deferred := round%2 == 1
		var changes []change
		for i := 0; i < 2*parallelReindex; i++ {
			id := fmt.Sprintf("t%04d", rng.Intn(400))
			if rng.Intn(4) == 0 {
				var old api.Object
				if deferred {
					if old = w.removeDeferred(ki, id); old != nil {
						changes = append(changes, change{ki: ki, id: id, old: old})
					}
				} else {
					old = w.remove(ki, id)
				}
				if (old == nil) != (model[id] == nil) {
					t.Fatalf("remove %s: %v, model %v", id, old, model[id])
				}
				delete(model, id)
				continue
			}
			task := &api.Task{ID: id, ServiceID: fmt.Sprint("s", rng.Intn(3)), NodeID: fmt.Sprint("n", rng.Intn(5)),
				Slot: uint64(rng.Intn(4)), DesiredState: api.TaskState(rng.Intn(3)),
				Status: api.TaskStatus{State: api.TaskState(rng.Intn(5))}}
			if rng.Intn(5) == 0 {
				task.ServiceID, task.NodeID = "", ""
			}
			task.Spec.Networks = []api.NetworkAttachmentConfig{{Target: nets[rng.Intn(4)]}, {Target: nets[rng.Intn(4)]}}
			task.Networks = []api.NetworkAttachment{{NetworkID: nets[rng.Intn(4)]}}
			var old api.Object
			if deferred {
				old = w.putDeferred(ki, task)
				changes = append(changes, change{ki: ki, id: id, old: old, obj: task})
			} else {
				old = w.put(ki, task)
			}
			if old != api.Object(model[id]) && !(old == nil && model[id] == nil) {
				t.Fatalf("put %s replaced %v, model %v", id, old, model[id])
			}
			model[id] = task
		}
		if deferred {
			w.reindexAll(changes)
		}
		check(&w.dbState, model)
		db = w.commit()
		snaps = append(snaps, snap{db, maps.Clone(model)})
		for _, s := range snaps {
			check(s.db, s.model)
		}
	}
}
