package raft

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var linDuration = flag.Duration("raft.linearizability-duration", 0,
	"how long TestLinearizability runs its clients and nemesis (default 3s; or RAFT_LINEARIZABILITY_DURATION)")

func linearizabilityDuration() time.Duration {
	if *linDuration > 0 {
		return *linDuration
	}
	if d, err := time.ParseDuration(os.Getenv("RAFT_LINEARIZABILITY_DURATION")); err == nil && d > 0 {
		return d
	}
	return 3 * time.Second
}

type kvInput struct {
	put        bool
	key, value string
}

// registerModel is one register per key (a service name): a put sets it, a
// get returns it.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		if in.put {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	Equal: func(a, b any) bool { return a == b },
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.put {
			return fmt.Sprintf("put(%s, %s)", in.key, in.value)
		}
		return fmt.Sprintf("get(%s) -> %v", in.key, output)
	},
}

// definite reports whether a failed proposal certainly did not commit.
func definite(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrProposalDropped)
}

// Clients write and read service names through Propose and
// LinearizableRead on random members while a nemesis kills, restarts and
// partitions members. The history must be linearizable, and every
// acknowledged write must be in every member's final state exactly once.
func TestLinearizability(t *testing.T) {
	dur := linearizabilityDuration()
	c := newCluster(t, memNet, 5, func(cfg *Config) {
		cfg.SnapshotInterval = 200
		cfg.SnapshotCatchUpEntries = 20
	})
	c.leader(c.ids, 10*time.Second)
	keys := []string{"web", "db", "cache", "queue", "api"}
	start := time.Now()
	now := func() int64 { return time.Since(start).Nanoseconds() }

	var (
		mu    sync.Mutex
		ops   []porcupine.Operation
		acked = map[string]string{} // value -> key
		lost  = map[string]bool{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 8
	var nextClient atomic.Int64
	nextClient.Store(clients)
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func(cl int) {
			defer wg.Done()
			writer := cl
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				run := c.running()
				if len(run) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				id := run[mrand.N(len(run))]
				c.mu.Lock()
				n, fsm := c.nodes[id], c.fsms[id]
				c.mu.Unlock()
				if n == nil {
					continue
				}
				key := keys[mrand.N(len(keys))]
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if mrand.N(2) == 0 {
					val := fmt.Sprintf("c%d-%d", writer, seq)
					call := now()
					_, err := n.Propose(ctx, kvOp(key, val))
					ret := now()
					mu.Lock()
					switch {
					case err == nil:
						acked[val] = key
						ops = append(ops, porcupine.Operation{ClientId: writer, Input: kvInput{true, key, val}, Call: call, Return: ret})
					case definite(err):
						// Never appended: not an operation.
					default:
						// Unknown outcome: it may take effect at any time
						// after its call, or never.
						lost[val] = true
						ops = append(ops, porcupine.Operation{ClientId: writer, Input: kvInput{true, key, val}, Call: call, Return: math.MaxInt64})
					}
					mu.Unlock()
					if err != nil && !definite(err) {
						// This client's operation stays pending for ever
						// and a client issues one operation at a time: go
						// on as a new client (a crashed and restarted one).
						writer = int(nextClient.Add(1))
					}
				} else {
					call := now()
					_, err := n.LinearizableRead(ctx)
					if err == nil {
						v, _ := fsm.get(key)
						ret := now()
						mu.Lock()
						ops = append(ops, porcupine.Operation{ClientId: writer, Input: kvInput{false, key, ""}, Output: v, Call: call, Return: ret})
						mu.Unlock()
					}
				}
				cancel()
			}
		}(cl)
	}

	// The nemesis.
	nemesisDone := make(chan struct{})
	var actions []string
	go func() {
		defer close(nemesisDone)
		deadline := time.After(dur)
		down := map[uint64]bool{}
		for {
			select {
			case <-deadline:
				return
			case <-time.After(time.Duration(200+mrand.N(400)) * time.Millisecond):
			}
			switch mrand.N(4) {
			case 0: // kill one (at most two down of five)
				if len(down) < 2 {
					id := c.ids[mrand.N(len(c.ids))]
					if !down[id] {
						c.kill(id)
						down[id] = true
						actions = append(actions, fmt.Sprintf("kill %d", id))
					}
				}
			case 1: // restart the dead
				for id := range down {
					c.start(id, nil)
					delete(down, id)
					actions = append(actions, fmt.Sprintf("restart %d", id))
				}
			case 2: // the leader and one other into the minority
				var lead uint64
				for _, id := range c.running() {
					if n := c.node(id); n != nil && n.IsLeader() {
						lead = id
					}
				}
				if lead != 0 {
					other := without(c.ids, lead)[mrand.N(len(c.ids)-1)]
					c.partition([]uint64{lead, other}, without(c.ids, lead, other))
					actions = append(actions, fmt.Sprintf("partition {%d,%d}", lead, other))
				}
			case 3:
				c.heal()
				actions = append(actions, "heal")
			}
		}
	}()
	<-nemesisDone
	close(stop)
	wg.Wait()

	// Heal everything and let the cluster settle.
	c.heal()
	for _, id := range c.ids {
		if c.node(id) == nil {
			c.start(id, nil)
		}
	}
	lead := c.leader(c.ids, 20*time.Second)
	idx := c.mustPut(lead, "final", "barrier")
	c.converged(c.ids, idx, 20*time.Second)

	nPut, nGet := 0, 0
	for _, op := range ops {
		if op.Input.(kvInput).put {
			nPut++
		} else {
			nGet++
		}
	}
	t.Logf("%v: %d acknowledged writes, %d of unknown outcome, %d reads; nemesis: %v",
		dur, len(acked), len(lost), nGet, actions)
	if len(acked) < 10 || nGet < 10 {
		t.Fatalf("too little progress to judge: %d writes, %d reads", len(acked), nGet)
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, time.Minute)
	if res != porcupine.Ok {
		f, err := os.CreateTemp("", "raft-linearizability-*.html")
		if err == nil {
			porcupine.Visualize(registerModel, info, f)
			f.Close()
		}
		t.Fatalf("history is not linearizable: %s (visualization: %s)", res, f.Name())
	}
	// Every acknowledged write is in every member's state, once; a write
	// of unknown outcome at most once.
	for _, id := range c.ids {
		seen := map[string]int{}
		for _, w := range c.fsm(id).writes() {
			seen[w.value]++
		}
		for v, k := range acked {
			if seen[v] != 1 {
				t.Fatalf("member %x: acknowledged write %s=%s applied %d times", id, k, v, seen[v])
			}
		}
		for v := range lost {
			if seen[v] > 1 {
				t.Fatalf("member %x: write %s applied %d times", id, v, seen[v])
			}
		}
	}
}
