package store

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// The tests here check our layer over the B-tree library, the one place
// where bugs of ours could hide: the entries' order (inline prefixes), the
// table layout, the writers' copies, hints and parallel index updates.
// Each runs random writes through dbWriters against a map model and checks
// every index of every state, including the states committed earlier,
// which later writers must leave as they were.

// taskModel is what a state's task table must hold: the stored objects by
// ID.
type taskModel map[string]*api.Task

// checkTasks verifies the task table of db against model: the primary
// index holds exactly its objects, in ID order, and every secondary index
// exactly the keys the index computes from them, in order.
func checkTasks(t *testing.T, db *dbState, model taskModel) {
	t.Helper()
	ki := kindByName[api.KindTask]
	want := slices.Sorted(maps.Keys(model))
	var got []string
	db.find(ki, selector{all: true}, func(o api.Object) bool {
		if model[o.GetID()] != o {
			t.Fatalf("primary index: stale object for %s", o.GetID())
		}
		got = append(got, o.GetID())
		return true
	})
	if !slices.Equal(got, want) {
		t.Fatalf("primary index holds %d entries %v..., want %d %v...", len(got), head(got), len(want), head(want))
	}
	if db.count(ki) != len(model) {
		t.Fatalf("%d tasks, want %d", db.count(ki), len(model))
	}
	for _, id := range want {
		if !isTask(db.get(ki, id), model[id]) {
			t.Fatalf("get %s: wrong object", id)
		}
	}
	for i := 1; i < len(ki.indexes); i++ {
		ix := &ki.indexes[i]
		byKey := map[ikey][]string{}
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
				byKey[k] = append(byKey[k], id)
			}
		}
		total := 0
		for k, ids := range byKey {
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
		tr := db.tables[ki.tab].indexes[i]
		if n := tr.Len(); n != total {
			t.Fatalf("index %s holds %d entries, want %d", ix.name, n, total)
		}
		// The order the tree keeps is the one of the keys and IDs
		// themselves, not only of their inline prefixes.
		var prev *entry
		tr.Scan(func(e entry) bool {
			if prev != nil {
				if c := cmpKeys(prev, &e); c >= 0 || compareEntries(prev, &e) >= 0 || compareEntries(&e, prev) <= 0 {
					t.Fatalf("index %s: (%q %d %q) before (%q %d %q)", ix.name, prev.s, prev.n, prev.id, e.s, e.n, e.id)
				}
			}
			prev = &e
			return true
		})
	}
}

// cmpKeys compares entries the slow way, on their strings.
func cmpKeys(a, b *entry) int {
	if c := strings.Compare(a.s, b.s); c != 0 {
		return c
	}
	if a.n != b.n {
		if a.n < b.n {
			return -1
		}
		return 1
	}
	return strings.Compare(a.id, b.id)
}

// isTask reports whether o is task, both nil included.
func isTask(o api.Object, task *api.Task) bool {
	if task == nil {
		return o == nil
	}
	return o == api.Object(task)
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// testIDs returns space task IDs of several shapes: short, exactly 16
// bytes, and longer ones that share their first 16 or 24 bytes, so that
// the inline prefixes tie and the strings decide.
func testIDs(space int) []string {
	ids := make([]string, space)
	for i := range ids {
		switch i % 4 {
		case 0:
			ids[i] = fmt.Sprintf("k%05d", i)
		case 1:
			ids[i] = fmt.Sprintf("k%015d", i)
		case 2:
			ids[i] = fmt.Sprintf("longcommonprefix%d", i)
		default:
			ids[i] = fmt.Sprintf("longcommonprefix-and-more-%d", i)
		}
	}
	return ids
}

// randomTask returns a task whose secondary keys are drawn from small
// sets, long ones among them, so that every index has repeated keys.
func randomTask(rng *rand.Rand, id string) *api.Task {
	services := []string{"s0", "service-with-a-long-id-0", "service-with-a-long-id-1"}
	nets := []string{"", "n1", "n2", "network-with-a-long-id"}
	task := &api.Task{ID: id, ServiceID: services[rng.Intn(3)], NodeID: fmt.Sprint("n", rng.Intn(5)),
		Slot: uint64(rng.Intn(4)), DesiredState: api.TaskState(rng.Intn(3)),
		Status: api.TaskStatus{State: api.TaskState(rng.Intn(5))}}
	if rng.Intn(5) == 0 {
		task.ServiceID, task.NodeID = "", ""
	}
	task.Spec.Networks = []api.NetworkAttachmentConfig{{Target: nets[rng.Intn(4)]}, {Target: nets[rng.Intn(4)]}}
	task.Networks = []api.NetworkAttachment{{NetworkID: nets[rng.Intn(4)]}}
	return task
}

// TestIndexModel runs random creates, updates and deletes of tasks
// through one writer per round, as transactions do, checking what each
// write returns against a map, then every index of the state written and
// of the states committed before it. Rounds grow, shrink or churn the
// table at random, or go through the IDs in order (where the writers'
// path hints matter); odd rounds write the secondary indexes at the end,
// in parallel past parallelReindex changes, as applyLocked does; some
// rounds are abandoned, as a transaction that fails; some empty the table.
func TestIndexModel(t *testing.T) {
	for _, space := range []int{10, 100, 2000} {
		t.Run(fmt.Sprint(space), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(space)))
			ki := kindByName[api.KindTask]
			ids := testIDs(space)
			sorted := slices.Sorted(slices.Values(ids))
			db := newDB()
			model := taskModel{}
			type snap struct {
				db    *dbState
				model taskModel
			}
			var snaps []snap
			checkSnaps := func() {
				t.Helper()
				for _, s := range snaps {
					checkTasks(t, s.db, s.model)
				}
			}
			for round := 0; round < 40; round++ {
				w := db.writer()
				next := maps.Clone(model)
				deferred := round%2 == 1
				var changes []change
				ops := rng.Intn(2 * space)
				insertBias := rng.Intn(5)
				pos := rng.Intn(space)
				for i := 0; i < ops; i++ {
					id := ids[rng.Intn(space)]
					if insertBias >= 3 {
						id = sorted[pos%space]
						pos++
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
					var old api.Object
					if del {
						if deferred {
							if old = w.removeDeferred(ki, id); old != nil {
								changes = append(changes, change{ki: ki, id: id, old: old})
							}
						} else {
							old = w.remove(ki, id)
						}
						if !isTask(old, next[id]) {
							t.Fatalf("remove %s: removed %v, model %v", id, old, next[id])
						}
						delete(next, id)
					} else {
						task := randomTask(rng, id)
						if deferred {
							old = w.putDeferred(ki, task)
							changes = append(changes, change{ki: ki, id: id, old: old, obj: task})
						} else {
							old = w.put(ki, task)
						}
						if !isTask(old, next[id]) {
							t.Fatalf("put %s: replaced %v, model %v", id, old, next[id])
						}
						next[id] = task
					}
					if i%97 == 0 && !isTask(w.get(ki, id), next[id]) {
						t.Fatalf("get %s: %v, model %v", id, w.get(ki, id), next[id])
					}
				}
				if deferred {
					w.reindexAll(changes)
				}
				checkTasks(t, &w.dbState, next)
				if round%7 == 6 {
					// Abandoned: the state it started from is intact.
					checkTasks(t, db, model)
					continue
				}
				db, model = w.commit(), next
				snaps = append(snaps, snap{db, model})
				if round%20 == 19 {
					checkSnaps()
					// Remove everything, down to an empty table.
					w := db.writer()
					for _, id := range slices.Sorted(maps.Keys(model)) {
						w.remove(ki, id)
					}
					db, model = w.commit(), taskModel{}
					checkTasks(t, db, model)
				}
			}
			checkSnaps()
		})
	}
}

// TestFindByIDPrefix reads ID prefixes, each search starting inside or
// between the tree's keys, against a filter of the IDs.
func TestFindByIDPrefix(t *testing.T) {
	ki := kindByName[api.KindTask]
	w := newDB().writer()
	var all []string
	for i := 0; i < 2000; i += 2 {
		id := fmt.Sprintf("k%05d", i)
		w.put(ki, &api.Task{ID: id})
		all = append(all, id)
	}
	for _, id := range testIDs(400) {
		w.put(ki, &api.Task{ID: id})
		all = append(all, id)
	}
	slices.Sort(all)
	all = slices.Compact(all) // testIDs repeats some of the first ones
	db := w.commit()
	for _, p := range []string{"", "j", "k", "k0", "k00", "k01", "k019", "k0199", "k01998", "k01999", "k02", "k000000000",
		"longcommonprefix", "longcommonprefix1", "longcommonprefix-", "longcommonprefix-and-more-3", "m", "z"} {
		var got []string
		db.find(ki, selector{prefix: p}, func(o api.Object) bool {
			got = append(got, o.GetID())
			return true
		})
		var want []string
		for _, id := range all {
			if strings.HasPrefix(id, p) {
				want = append(want, id)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("prefix %q: %d IDs %v..., want %d %v...", p, len(got), head(got), len(want), head(want))
		}
	}
}

// TestConcurrentWriters starts writers from one state, and from states
// that share the trees of the tables they did not change, in parallel with
// readers of those states, as transactions and Batch do: each writer must
// see only its own writes, and the states stay as they were. (The race
// detector does not see two unserialized Copy calls of one tree: the
// library's atomic counter of tree IDs orders them for it.)
func TestConcurrentWriters(t *testing.T) {
	ki := kindByName[api.KindTask]
	nodes := kindByName[api.KindNode]
	rng := rand.New(rand.NewSource(1))
	w := newDB().writer()
	model := taskModel{}
	ids := testIDs(1000)
	for _, id := range ids {
		task := randomTask(rng, id)
		w.put(ki, task)
		model[id] = task
	}
	base := w.commit()
	// Another state sharing base's task trees.
	w = base.writer()
	w.put(nodes, &api.Node{ID: "node1"})
	sibling := w.commit()

	const writers = 6
	results := make([]taskModel, writers)
	states := make([]*dbState, writers)
	var wg sync.WaitGroup
	for g := range writers {
		from := base
		if g%2 == 1 {
			from = sibling
		}
		seed := int64(g)
		wg.Go(func() {
			rng := rand.New(rand.NewSource(seed))
			w := from.writer()
			m := maps.Clone(model)
			for i := 0; i < 300; i++ {
				id := fmt.Sprintf("g%d-%04d", seed, rng.Intn(200))
				if rng.Intn(3) == 0 {
					id = ids[rng.Intn(len(ids))]
				}
				if rng.Intn(4) == 0 {
					w.remove(ki, id)
					delete(m, id)
				} else {
					task := randomTask(rng, id)
					w.put(ki, task)
					m[id] = task
				}
			}
			results[seed], states[seed] = m, w.commit()
		})
		wg.Go(func() {
			from.find(ki, selector{all: true}, func(api.Object) bool { return true })
			from.get(ki, "k00000")
		})
	}
	wg.Wait()
	for g := range writers {
		checkTasks(t, states[g], results[g])
	}
	checkTasks(t, base, model)
	checkTasks(t, sibling, model)
}
