package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

func TestProposalRoundTripsEveryField(t *testing.T) {
	var actions []action
	for i, o := range filled(0) {
		actions = append(actions,
			action{op: ActionCreate, kind: o.Kind(), id: o.GetID(), obj: o},
			action{op: ActionUpdate, kind: o.Kind(), id: o.GetID(), obj: o, base: uint64(i + 7)},
			action{op: ActionDelete, kind: o.Kind(), id: o.GetID(), base: uint64(i + 9)})
	}
	data, err := encodeActions(actions)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeActions(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, actions) {
		for i := range actions {
			if !reflect.DeepEqual(got[i], actions[i]) {
				t.Errorf("action %d:\n got %#v\nwant %#v", i, got[i].obj, actions[i].obj)
			}
		}
		t.Fatal("proposal does not round-trip")
	}
}

func TestDecodeRejectsBadProposals(t *testing.T) {
	for name, data := range map[string]string{
		"not json":       `{"v":1,"a":[`,
		"wrong format":   `{"v":2,"a":[]}`,
		"unknown kind":   `{"v":1,"a":[{"o":3,"k":"volume","i":"x"}]}`,
		"bad op":         `{"v":1,"a":[{"o":9,"k":"node","i":"x"}]}`,
		"no object":      `{"v":1,"a":[{"o":1,"k":"node"}]}`,
		"empty ID":       `{"v":1,"a":[{"o":1,"k":"node","x":{"ID":""}}]}`,
		"bad task state": `{"v":1,"a":[{"o":1,"k":"task","x":{"ID":"t","DesiredState":"sleeping"}}]}`,
	} {
		if _, err := decodeActions([]byte(data)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestFailedProposalChangesNothing(t *testing.T) {
	f, rs := newReplicated(t, 1)
	s := rs[0]
	fixture(t, s)
	before := allObjects(t, s)
	index := s.Index()
	lost := errors.New("lost leadership")
	f.setFail(lost)
	err := s.Update(func(tx Tx) error {
		if err := tx.CreateNode(node("x", "x")); err != nil {
			return err
		}
		return tx.DeleteNode("n1")
	})
	if !errors.Is(err, lost) {
		t.Fatalf("got %v, want the proposer's error", err)
	}
	if s.Index() != index || !reflect.DeepEqual(allObjects(t, s), before) {
		t.Fatal("failed proposal changed the store")
	}
	// A cancelled context never reaches the log.
	f.setFail(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.UpdateContext(ctx, func(tx Tx) error { return tx.CreateNode(node("y", "y")) })
	if !errors.Is(err, context.Canceled) || s.Index() != index {
		t.Fatalf("cancelled update: %v, index %d", err, s.Index())
	}
}

// TestConflictingWritersOneWins makes two transactions read the same
// version of one object and both update it, each waiting until the other
// has passed its transaction-time checks: exactly one commit may win.
func TestConflictingWritersOneWins(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		mustUpdate(t, s, func(tx Tx) error { return tx.CreateNode(node("n", "n")) })
		var both sync.WaitGroup
		both.Add(2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.Update(func(tx Tx) error {
					n := tx.GetNode("n")
					n.Spec.Labels = map[string]string{"writer": strconv.Itoa(i)}
					err := tx.UpdateNode(n)
					both.Done()
					both.Wait()
					return err
				})
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatal("both conflicting updates committed")
				}
				winner = i
			case !errors.Is(err, ErrConflict):
				t.Fatalf("loser got %v, want ErrConflict", err)
			}
		}
		if winner < 0 {
			t.Fatalf("no update committed: %v", errs)
		}
		n := getNode(s, "n")
		// With a log, the loser's entry is consumed too, so the winner's
		// version is either of the last two indexes.
		if n.Spec.Labels["writer"] != strconv.Itoa(winner) || n.Meta.Version < 2 || n.Meta.Version > s.Index() {
			t.Fatalf("stored %v at version %d (index %d), winner %d", n.Spec.Labels, n.Meta.Version, s.Index(), winner)
		}
	})
}

// TestConflictingCreates: two transactions create objects with the same ID
// or name from the same snapshot; the log admits one.
func TestConflictingCreates(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b *api.Node
		want error
	}{
		{"same ID", node("x", "a"), node("x", "b"), ErrExist},
		{"same name", node("a", "x"), node("b", "x"), ErrNameConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forModes(t, func(t *testing.T, s *MemoryStore) {
				var both sync.WaitGroup
				both.Add(2)
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for i, n := range []*api.Node{tc.a, tc.b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[i] = s.Update(func(tx Tx) error {
							err := tx.CreateNode(n)
							both.Done()
							both.Wait()
							return err
						})
					}()
				}
				wg.Wait()
				if (errs[0] == nil) == (errs[1] == nil) {
					t.Fatalf("want exactly one success: %v", errs)
				}
				if err := errors.Join(errs...); !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			})
		})
	}
}

// TestCounter is a linearizability check under -race: many writers
// increment one counter with read-modify-write transactions, retrying on
// conflict; no increment may be lost or applied twice.
func TestCounter(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		mustUpdate(t, s, func(tx Tx) error { return tx.CreateNode(node("counter", "")) })
		const writers, each = 8, 50
		var conflicts atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					for {
						err := s.Update(func(tx Tx) error {
							n := tx.GetNode("counter")
							c, _ := strconv.Atoi(n.Status.Message)
							n.Status.Message = strconv.Itoa(c + 1)
							return tx.UpdateNode(n)
						})
						if err == nil {
							break
						}
						if !errors.Is(err, ErrConflict) {
							t.Error(err)
							return
						}
						conflicts.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if got := getNode(s, "counter").Status.Message; got != strconv.Itoa(writers*each) {
			t.Fatalf("counter %s, want %d", got, writers*each)
		}
		// Entries refused at apply time consume an index too.
		if s.Index() < writers*each+1 || (s.proposer == nil && s.Index() != writers*each+1) {
			t.Fatalf("index %d, want %d commits", s.Index(), writers*each+1)
		}
		if v := getNode(s, "counter").Meta.Version; v > s.Index() {
			t.Fatalf("version %d above index %d", v, s.Index())
		}
		t.Logf("%d conflicts retried", conflicts.Load())
	})
}

// randomWriter runs n random transactions (creates, updates, deletes over a
// small ID space, so they collide) and returns how many committed.
func randomWriter(s *MemoryStore, seed int64, n int, stop <-chan struct{}) (committed int, err error) {
	r := rand.New(rand.NewSource(seed))
	for i := 0; i < n; i++ {
		select {
		case <-stop:
			return committed, nil
		default:
		}
		err := s.Update(func(tx Tx) error {
			for j := 0; j < 1+r.Intn(3); j++ {
				id := "o" + strconv.Itoa(r.Intn(20))
				var err error
				switch cur := tx.GetTask(id); {
				case cur == nil:
					err = tx.CreateTask(&api.Task{ID: id, ServiceID: "s" + strconv.Itoa(r.Intn(3)), Slot: uint64(r.Intn(4))})
				case r.Intn(4) == 0:
					err = tx.DeleteTask(id)
				default:
					cur.Status.Message = fmt.Sprintf("w%d-%d", seed, i)
					cur.DesiredState = api.TaskState(r.Intn(int(api.TaskStateOrphaned)))
					err = tx.UpdateTask(cur)
				}
				if err != nil {
					return err
				}
			}
			// A writer that loses a name race does so at apply time.
			if r.Intn(5) == 0 {
				return tx.CreateNode(node("n"+strconv.Itoa(r.Intn(1000000)), "shared"+strconv.Itoa(r.Intn(3))))
			}
			return nil
		})
		switch {
		case err == nil:
			committed++
		case errors.Is(err, ErrConflict), errors.Is(err, ErrExist), errors.Is(err, ErrNotFound), errors.Is(err, ErrNameConflict):
		default:
			return committed, err
		}
	}
	return committed, nil
}

// TestReplicasConverge runs concurrent writers through a fake raft log into
// three replicas: they must end byte-for-byte identical, since Apply is
// deterministic.
func TestReplicasConverge(t *testing.T) {
	f, rs := newReplicated(t, 3)
	var wg sync.WaitGroup
	var total atomic.Int64
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := randomWriter(rs[0], int64(w), 100, nil)
			if err != nil {
				t.Error(err)
			}
			total.Add(int64(n))
		}()
	}
	wg.Wait()
	var snaps [][]byte
	for i, s := range rs {
		if s.Index() != f.index {
			t.Fatalf("replica %d at index %d, log at %d", i, s.Index(), f.index)
		}
		var buf bytes.Buffer
		if err := s.Save(&buf); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, buf.Bytes())
	}
	for i := 1; i < len(snaps); i++ {
		if !bytes.Equal(snaps[0], snaps[i]) {
			t.Fatalf("replica %d differs from replica 0", i)
		}
	}
	t.Logf("%d of %d proposals committed", total.Load(), f.index)
}

func TestApplyIndexOrder(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	data, err := encodeActions([]action{{op: ActionCreate, kind: api.KindNode, id: "a", obj: node("a", "")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(5, data); err != nil {
		t.Fatal(err)
	}
	if s.Index() != 5 || getNode(s, "a").Meta.Version != 5 {
		t.Fatalf("index %d, version %d, want 5", s.Index(), getNode(s, "a").Meta.Version)
	}
	if err := s.Apply(5, data); err == nil {
		t.Fatal("applied the same index twice")
	}
	// A refused entry is consumed: the index moves, the state does not.
	if err := s.Apply(6, data); !errors.Is(err, ErrExist) {
		t.Fatalf("got %v, want ErrExist", err)
	}
	if err := s.Apply(7, []byte("garbage")); err == nil {
		t.Fatal("applied garbage")
	}
	if s.Index() != 7 || getNode(s, "a").Meta.Version != 5 {
		t.Fatalf("index %d, version %d", s.Index(), getNode(s, "a").Meta.Version)
	}
	s.Close()
	if err := s.Apply(8, data); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply on a closed store: %v", err)
	}
	if err := s.Update(func(tx Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("update on a closed store: %v", err)
	}
}

// limitedRaft is fakeRaft with a bound on a proposal's size, as raft's
// MaxEntrySize is.
type limitedRaft struct {
	*fakeRaft
	max int
}

func (l limitedRaft) MaxProposalSize() int { return l.max }

// A transaction larger than the proposer takes is refused with
// ErrTooLarge, naming its size and the bound, before anything is proposed;
// one that fits commits.
func TestTransactionLargerThanAProposalRefused(t *testing.T) {
	f := &fakeRaft{}
	s := NewMemoryStore(limitedRaft{f, 2048})
	f.replicas = []*MemoryStore{s}
	t.Cleanup(s.Close)
	err := s.Update(func(tx Tx) error {
		for i := range 20 {
			if err := tx.CreateNode(node(fmt.Sprintf("n%d", i), fmt.Sprintf("node-%d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "at most 2048") {
		t.Fatalf("oversized transaction: %v", err)
	}
	if len(f.entries) != 0 || s.Index() != 0 {
		t.Fatalf("an oversized transaction reached the log (%d entries, index %d)", len(f.entries), s.Index())
	}
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateNode(node("n", "n")) })
}
