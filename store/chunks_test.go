package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// UpdateInChunks writes every item in transactions of at most
// MaxChangesPerTransaction, halves those too large for one proposal,
// reruns one that conflicted, and counts what was written before an error.
func TestUpdateInChunks(t *testing.T) {
	f := &fakeRaft{}
	lim := limitedRaft{f, 64 << 10}
	s := NewMemoryStore(lim)
	f.replicas = []*MemoryStore{s}
	t.Cleanup(s.Close)
	const n = 2500
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%05d", i)
	}
	// Creating 2,500 nodes: entries of 64 KiB hold far fewer than 1,000.
	written, err := s.UpdateInChunks(context.Background(), n, func(tx Tx, lo, hi int) error {
		for _, id := range ids[lo:hi] {
			if err := tx.CreateNode(node(id, id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || written != n {
		t.Fatalf("written %d, err %v", written, err)
	}
	var got int
	s.View(func(tx ReadTx) { ns, _ := tx.FindNodes(All); got = len(ns) })
	if got != n {
		t.Fatalf("%d nodes, want %d", got, n)
	}
	for i, size := range f.proposalSizes(t) {
		if size > MaxChangesPerTransaction {
			t.Fatalf("entry %d holds %d changes", i, size)
		}
	}

	// A conflict is rerun on fresh state: the first attempt at each
	// chunk is beaten by another writer.
	raced := map[int]bool{}
	written, err = s.UpdateInChunks(context.Background(), 10, func(tx Tx, lo, hi int) error {
		n := tx.GetNode(ids[lo])
		if !raced[lo] {
			raced[lo] = true
			mustUpdate(t, s, func(tx Tx) error {
				m := tx.GetNode(ids[lo])
				m.Spec.Labels = map[string]string{"by": "other"}
				return tx.UpdateNode(m)
			})
		}
		n.Spec.Labels = map[string]string{"by": "chunks"}
		return tx.UpdateNode(n)
	})
	if err != nil || written != 10 {
		t.Fatalf("with a conflict: written %d, err %v", written, err)
	}
	if l := getNode(s, ids[0]).Spec.Labels["by"]; l != "chunks" {
		t.Fatalf("the rerun did not land: label %q", l)
	}

	// An error stops it, and says how much was written before.
	boom := errors.New("boom")
	written, err = s.UpdateInChunks(context.Background(), n, func(tx Tx, lo, hi int) error {
		if hi > 1500 {
			return boom
		}
		for _, id := range ids[lo:hi] {
			if err := tx.DeleteNode(id); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, boom) || written != 1000 {
		t.Fatalf("stopped at %d with %v, want 1000 and boom", written, err)
	}
}
