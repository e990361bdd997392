package store

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// The appliers' writer keeps its state from one commit to the next until
// a reader asks for it (MemoryStore.current): these tests hold it to what
// that must never change, that a reader sees every commit applied before
// it asked and that a state once read never changes, and to what it is
// for, that commits nobody reads copy no B-tree nodes again.

// taskEntry encodes one entry creating (base 0) or updating (base the
// committed version) a task, the way a follower receives it.
func taskEntry(tb testing.TB, op Action, base uint64, t *api.Task) []byte {
	tb.Helper()
	data, err := encodeProposal([]action{{op: op, kind: api.KindTask, id: t.ID, base: base, obj: t}}, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func plainTask(id string, i int, state api.TaskState) *api.Task {
	return &api.Task{ID: id, Name: fmt.Sprintf("web.%d", i), ServiceID: "svc", Slot: uint64(i), NodeID: fmt.Sprintf("node-%d", i%7),
		DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: state}}
}

func countTasks(t *testing.T, tx ReadTx, by By) int {
	t.Helper()
	tasks, err := tx.FindTasks(by)
	if err != nil {
		t.Fatal(err)
	}
	return len(tasks)
}

// fillTasks applies n task creations, one entry each, and returns their IDs.
func fillTasks(tb testing.TB, s *MemoryStore, n int) []string {
	tb.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = api.NewID()
		if err := s.Apply(s.Index()+1, taskEntry(tb, ActionCreate, 0, plainTask(ids[i], i, api.TaskStateNew))); err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}

func TestReadersSeeEveryCommitAndHeldStatesNeverChange(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	ids := fillTasks(t, s, 500)

	// A state taken now, and what it holds.
	var held ReadTx
	s.View(func(tx ReadTx) { held = tx })
	heldBytes := save(t, s)
	heldIndex := s.Index()

	// Updates of the tasks already there (the nodes the held state
	// shares), creations and deletions, some in one batch, none read.
	var idx []uint64
	var data [][]byte
	for i, id := range ids[:200] {
		idx = append(idx, s.Index()+uint64(len(idx))+1)
		data = append(data, taskEntry(t, ActionUpdate, uint64(i+1), plainTask(id, i, api.TaskStateRunning)))
	}
	for _, err := range s.ApplyBatch(idx, data) {
		if err != nil {
			t.Fatal(err)
		}
	}
	fillTasks(t, s, 300)
	del, err := encodeProposal([]action{{op: ActionDelete, kind: api.KindTask, id: ids[499], base: 500}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(s.Index()+1, del); err != nil {
		t.Fatal(err)
	}
	// A refused entry in a batch: its changes are undone in the writer.
	bad := taskEntry(t, ActionUpdate, 1, plainTask(ids[0], 0, api.TaskStateFailed))    // stale base
	good := taskEntry(t, ActionUpdate, 502, plainTask(ids[1], 1, api.TaskStateFailed)) // updated at 501+1 above
	errs := s.ApplyBatch([]uint64{s.Index() + 1, s.Index() + 2}, [][]byte{bad, good})
	if errs[0] == nil || errs[1] != nil {
		t.Fatalf("batch errors %v, want the first entry refused and the second applied", errs)
	}

	// The held state is the one taken: every object, every index.
	var heldAgain bytes.Buffer
	if err := saveState(&heldAgain, held.(readTx).db, heldIndex); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(heldAgain.Bytes(), heldBytes) {
		t.Fatal("a state held by a reader changed under later commits")
	}
	if n := countTasks(t, held, ByServiceID("svc")); n != 500 {
		t.Fatalf("the held state's service index has %d tasks, want 500", n)
	}

	// A new reader sees everything.
	s.View(func(tx ReadTx) {
		if n := countTasks(t, tx, ByServiceID("svc")); n != 799 {
			t.Fatalf("a reader after the commits sees %d tasks, want 799", n)
		}
		if got := tx.GetTask(ids[0]).Status.State; got != api.TaskStateRunning {
			t.Fatalf("task 0 is %s: the refused entry's change was kept", got)
		}
		if got := tx.GetTask(ids[1]).Status.State; got != api.TaskStateFailed {
			t.Fatalf("task 1 is %s, want failed", got)
		}
		if tx.GetTask(ids[499]) != nil {
			t.Fatal("the deleted task is still there")
		}
		if n := countTasks(t, tx, ByNodeID("node-3")); n == 0 {
			t.Fatal("the node index is empty")
		}
	})
	// And the state a snapshot of it restores to is the same, index by
	// index.
	checkSameIndexes(t, s.current(), restored(t, save(t, s)).current())
}

// Readers in parallel with an applier each see a whole commit: every
// task in the primary index is in the service index, and the other way
// round, and the count only grows (the race detector checks that no
// reader touches a node the writer changes in place).
func TestReadersDuringCommitsSeeWholeStates(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	fillTasks(t, s, 100)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.View(func(tx ReadTx) {
					a, err1 := tx.FindTasks(All)
					b, err2 := tx.FindTasks(ByServiceID("svc"))
					all, bySvc := len(a), len(b)
					if err1 != nil || err2 != nil {
						all = -1
					}
					if all != bySvc || all < last {
						select {
						case errc <- fmt.Errorf("a reader saw %d tasks by ID and %d by service, after %d", all, bySvc, last):
						default:
						}
					}
					last = all
				})
			}
		}()
	}
	for i := range 100 {
		idx := []uint64{s.Index() + 1, s.Index() + 2, s.Index() + 3}
		var data [][]byte
		for j := range idx {
			data = append(data, taskEntry(t, ActionCreate, 0, plainTask(api.NewID(), 1000+3*i+j, api.TaskStateNew)))
		}
		for _, err := range s.ApplyBatch(idx, data) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	s.View(func(tx ReadTx) {
		if n := countTasks(t, tx, All); n != 400 {
			t.Fatalf("%d tasks after the commits, want 400", n)
		}
	})
}

// What the lazy publication is for: a follower that nobody reads between
// commits copies a B-tree node once, not at every commit. Updates of
// random tasks of 20,000, read after each commit and not: the bytes the
// commits allocate, the decoding's included.
func TestCommitsNobodyReadsCopyNoNodes(t *testing.T) {
	allocated := func(read bool) uint64 {
		s := NewMemoryStore(nil)
		defer s.Close()
		ids := fillTasks(t, s, 20000)
		entries := make([][]byte, 2000)
		for i := range entries {
			k := (i * 7919) % len(ids)
			entries[i] = taskEntry(t, ActionUpdate, uint64(k+1), plainTask(ids[k], k, api.TaskStateRunning))
		}
		s.View(func(ReadTx) {})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, e := range entries {
			if err := s.Apply(s.Index()+1, e); err != nil {
				t.Fatal(err)
			}
			if read {
				s.View(func(ReadTx) {})
			}
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / uint64(len(entries))
	}
	unread, read := allocated(false), allocated(true)
	t.Logf("bytes allocated per commit: %d read after each, %d not", read, unread)
	if unread*2 > read {
		t.Fatalf("commits nobody reads allocate %d bytes each, those read %d: nodes are still copied at every commit", unread, read)
	}
}

// Restore replaces the writer's state too: nothing applied before it
// leaks into the restored store or the commits after it.
func TestRestoreDropsTheWritersState(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	fillTasks(t, s, 10)
	snap := save(t, s)
	fillTasks(t, s, 5) // applied, never read
	if err := s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	fillTasks(t, s, 1)
	s.View(func(tx ReadTx) {
		if n := countTasks(t, tx, All); n != 11 {
			t.Fatalf("%d tasks after restoring 10 and adding 1", n)
		}
	})
}
