package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

func TestBatchSplitsIntoProposals(t *testing.T) {
	f, rs := newReplicated(t, 2)
	s := rs[0]
	const n = 2*MaxChangesPerTransaction + 500
	err := s.Batch(func(b *Batch) error {
		for i := 0; i < n; i++ {
			if err := b.Update(func(tx Tx) error {
				return tx.CreateTask(&api.Task{ID: fmt.Sprintf("t%05d", i), ServiceID: "s"})
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sizes := f.proposalSizes(t)
	if want := []int{MaxChangesPerTransaction, MaxChangesPerTransaction, 500}; !slices.Equal(sizes, want) {
		t.Fatalf("proposal sizes %v, want %v", sizes, want)
	}
	for i, r := range rs {
		var count int
		r.View(func(tx ReadTx) {
			ts, _ := tx.FindTasks(ByServiceID("s"))
			count = len(ts)
		})
		if count != n {
			t.Fatalf("replica %d holds %d tasks, want %d", i, count, n)
		}
	}
}

// TestBatchCarriesTransactionsOver: a transaction that would overflow the
// proposal goes to the next one whole, even when it updates objects that
// the previous proposal wrote (whose versions changed by committing).
func TestBatchCarriesTransactionsOver(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		mustUpdate(t, s, func(tx Tx) error { return tx.CreateNode(node("old", "old")) })
		var sizes []int
		err := s.Batch(func(b *Batch) error {
			// Fill the first proposal to one change short of full.
			for i := 0; i < MaxChangesPerTransaction-2; i++ {
				if err := b.Update(func(tx Tx) error { return tx.CreateNode(node(fmt.Sprint(i), "")) }); err != nil {
					return err
				}
			}
			if err := b.Update(func(tx Tx) error {
				n := tx.GetNode("old")
				n.Spec.Labels = map[string]string{"pass": "1"}
				return tx.UpdateNode(n)
			}); err != nil {
				return err
			}
			sizes = append(sizes, len(b.pending))
			// Three changes do not fit: they move whole to the next
			// proposal, where "old" and "0" have new versions.
			if err := b.Update(func(tx Tx) error {
				for _, id := range []string{"old", "0"} {
					n := tx.GetNode(id)
					n.Spec.Labels = map[string]string{"pass": "2"}
					if err := tx.UpdateNode(n); err != nil {
						return err
					}
				}
				n := tx.GetNode("old")
				n.Spec.Labels["again"] = "yes"
				if err := tx.UpdateNode(n); err != nil {
					return err
				}
				return tx.DeleteNode("1")
			}); err != nil {
				return err
			}
			sizes = append(sizes, len(b.pending))
			// The view after the carry-over holds the committed versions:
			// a read-modify-write from it commits.
			return b.Update(func(tx Tx) error {
				n := tx.GetNode("old")
				if n.Meta.Version != s.Index() {
					return fmt.Errorf("view shows version %d, committed %d", n.Meta.Version, s.Index())
				}
				n.Spec.Labels["third"] = "yes"
				return tx.UpdateNode(n)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sizes, []int{MaxChangesPerTransaction - 1, 4}) {
			t.Fatalf("pending after each step: %v", sizes)
		}
		old := getNode(s, "old")
		if old.Spec.Labels["pass"] != "2" || old.Spec.Labels["again"] != "yes" || old.Spec.Labels["third"] != "yes" {
			t.Fatalf("labels %v", old.Spec.Labels)
		}
		if getNode(s, "0").Spec.Labels["pass"] != "2" || getNode(s, "1") != nil {
			t.Fatal("carried-over transaction not applied")
		}
		if s.Index() != 3 {
			t.Fatalf("index %d, want 3 (setup + two proposals)", s.Index())
		}
	})
}

func TestBatchErrors(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		boom := errors.New("boom")
		// A failing b.Update drops its own changes only.
		err := s.Batch(func(b *Batch) error {
			if err := b.Update(func(tx Tx) error { return tx.CreateNode(node("a", "")) }); err != nil {
				return err
			}
			err := b.Update(func(tx Tx) error {
				if err := tx.CreateNode(node("b", "")); err != nil {
					return err
				}
				return boom
			})
			if err != boom {
				return fmt.Errorf("b.Update returned %v", err)
			}
			return b.Update(func(tx Tx) error {
				if tx.GetNode("b") != nil {
					return errors.New("dropped change still visible")
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if getNode(s, "a") == nil || getNode(s, "b") != nil {
			t.Fatal("wrong changes committed")
		}
		// fn's error: pending changes are not committed.
		index := s.Index()
		err = s.Batch(func(b *Batch) error {
			if err := b.Update(func(tx Tx) error { return tx.CreateNode(node("c", "")) }); err != nil {
				return err
			}
			return boom
		})
		if err != boom || getNode(s, "c") != nil || s.Index() != index {
			t.Fatalf("batch error: %v, index %d", err, s.Index())
		}
		// A conflict found when the batch commits is returned.
		err = s.Batch(func(b *Batch) error {
			if err := b.Update(func(tx Tx) error {
				n := tx.GetNode("a")
				n.Spec.Name = "mine"
				return tx.UpdateNode(n)
			}); err != nil {
				return err
			}
			// Someone else writes the same object meanwhile.
			return s.Update(func(tx Tx) error {
				n := tx.GetNode("a")
				n.Spec.Name = "theirs"
				return tx.UpdateNode(n)
			})
		})
		if !errors.Is(err, ErrConflict) || getNode(s, "a").Spec.Name != "theirs" {
			t.Fatalf("got %v, name %q", err, getNode(s, "a").Spec.Name)
		}
	})
}
