package raft_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/apiary-io/apiary/raft"
)

// lines is a replicated state machine: the payloads proposed, in log order.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) Apply(index uint64, data []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, string(data))
	return nil
}

func (l *lines) Save(w io.Writer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return json.NewEncoder(w).Encode(l.got)
}

func (l *lines) Restore(r io.Reader) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return json.NewDecoder(r).Decode(&l.got)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.got)
}

// Three members in memory: an in-memory network between them, in-memory
// logs, a fast clock. A proposal on any member is committed by a majority
// and applied by every member in the same order.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	network := raft.NewNetwork()
	defer network.Close()

	peers := []raft.Peer{{ID: 1, Addr: "m1"}, {ID: 2, Addr: "m2"}, {ID: 3, Addr: "m3"}}
	var members []*raft.Node
	var states []*lines
	for _, p := range peers {
		cfg := raft.DefaultConfig()
		cfg.ID, cfg.Addr, cfg.Peers = p.ID, p.Addr, peers // Peers: bootstrap a new cluster
		cfg.Storage = raft.NewMemoryStorage()
		cfg.Transport = network.Transport(p.ID)
		cfg.TickInterval = 20 * time.Millisecond // elections in a fraction of a second
		cfg.Logger = slog.New(slog.DiscardHandler)
		state := &lines{}
		cfg.FSM = state
		n, err := raft.NewNode(cfg)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer n.Stop()
		members, states = append(members, n), append(states, state)
	}

	// Wait until member 1 knows a leader: a follower forwards proposals to
	// it, one that knows none refuses them.
	views, stopWatching := members[0].WatchLeadership()
	for view := range views {
		if view.Leader != 0 {
			break
		}
	}
	stopWatching()

	var last uint64
	for _, s := range []string{"a", "b", "c"} {
		index, err := members[0].Propose(ctx, []byte(s)) // returns once applied on member 1
		if err != nil {
			fmt.Println(err)
			return
		}
		last = index
	}
	for i, n := range members {
		if err := n.WaitApplied(ctx, last); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("member", n.ID(), states[i])
	}
	// Output:
	// member 1 [a b c]
	// member 2 [a b c]
	// member 3 [a b c]
}
