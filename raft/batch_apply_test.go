package raft

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Concurrent proposals are committed together and a BatchApplier gets them
// in one call; each proposer is answered with its own entry's result (the
// refused ones with the FSM's error), after its entry is applied on its
// member. The same with an FSM that has only Apply.
func TestApplyInBatches(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) {
			c := newCluster(t, memNet, 3, nil)
			if plain {
				// Members restart from their data dirs with the plain FSM.
				lead := c.leader(c.ids, 10*time.Second)
				c.converged(c.ids, c.mustPut(lead, "w-first", "v"), 10*time.Second)
				c.plain = true
				c.restartAll()
			}
			lead := c.leader(c.ids, 10*time.Second)
			const writers, each = 16, 20
			var wg sync.WaitGroup
			errs := make(chan error, writers*each)
			var mu sync.Mutex
			var last uint64
			for w := range writers {
				id := c.ids[w%len(c.ids)]
				wg.Go(func() {
					for i := range each {
						key, value := fmt.Sprintf("w%d-%d", w, i), "v"
						if i%5 == 4 {
							value = "refuse"
						}
						idx, err := c.put(id, key, value)
						switch {
						case value == "refuse" && !errors.Is(err, errKVRefused):
							errs <- fmt.Errorf("%s refused: got (%d, %v), want the FSM's error", key, idx, err)
						case value != "refuse" && err != nil:
							errs <- fmt.Errorf("%s: %v", key, err)
						case value != "refuse":
							if v, _ := c.fsm(id).get(key); v != value {
								errs <- fmt.Errorf("%s answered on %x before it was applied there", key, id)
							}
						}
						mu.Lock()
						last = max(last, idx)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			c.converged(c.ids, last, 10*time.Second)
			want := writers * each * 4 / 5
			if plain {
				want++ // w-first
			}
			if got := c.fsm(lead).len(); got != want {
				t.Fatalf("leader holds %d keys, want %d", got, want)
			}
			c.fsm(lead).mu.Lock()
			batches := c.fsm(lead).batches
			c.fsm(lead).mu.Unlock()
			if plain && batches != 0 {
				t.Fatalf("an FSM without ApplyBatch got %d batches", batches)
			}
			if !plain && batches == 0 {
				t.Fatal("no batch of more than one entry: 16 writers never committed together")
			}
			t.Logf("%d batches of more than one entry", batches)
		})
	}
}
