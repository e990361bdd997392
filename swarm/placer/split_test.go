package placer_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/placer"
)

// smallEntries is a replicated log of one store whose entries are at most
// max bytes, as raft's MaxEntrySize bounds them.
type smallEntries struct {
	mu      sync.Mutex
	s       *store.MemoryStore
	index   uint64
	max     int
	largest int
}

func (p *smallEntries) Propose(ctx context.Context, data []byte) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.index++
	p.largest = max(p.largest, len(data))
	return p.index, p.s.Apply(p.index, data)
}

func (p *smallEntries) MaxProposalSize() int { return p.max }

// Decisions whose tasks are too large for one entry together are written
// in smaller transactions: every task is placed, and no entry exceeds the
// bound.
func TestDecisionsSplitToFitTheEntrySize(t *testing.T) {
	synctest.Test(t, testDecisionsSplitToFitTheEntrySize)
}

func testDecisionsSplitToFitTheEntrySize(t *testing.T) {
	p := &smallEntries{max: 64 << 10}
	s := store.NewMemoryStore(p)
	p.s = s
	t.Cleanup(s.Close)
	const n = 200
	big := strings.Repeat("x", 2<<10)
	if err := s.Update(func(tx store.Tx) error {
		return tx.CreateNode(node("n1"))
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 10 {
		if err := s.Update(func(tx store.Tx) error {
			for j := i; j < i+10; j++ {
				tk := pending(fmt.Sprintf("t%03d", j), "svc", func(t *api.Task) {
					t.Slot = uint64(j + 1)
					t.Spec.Process.Env = []string{"BIG=" + big}
				})
				if err := tx.CreateTask(tk); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- placer.New(s, nil, testutil.DiscardLogger()).Run(ctx) }()
	defer func() { cancel(); <-done }()
	synctest.Wait()
	assigned := 0
	s.View(func(tx store.ReadTx) {
		ts, _ := tx.FindTasks(store.All)
		for _, tk := range ts {
			if tk.Status.State == api.TaskStateAssigned {
				assigned++
			}
		}
	})
	if assigned != n {
		t.Fatalf("%d of %d tasks assigned", assigned, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.largest > p.max {
		t.Fatalf("an entry of %d bytes, above the bound of %d", p.largest, p.max)
	}
}
