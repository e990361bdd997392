package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
	"github.com/apiary-io/apiary/swarm/dispatcher"
	"github.com/apiary-io/apiary/swarm/keymanager"
)

const keysWait = 20 * time.Second

// keyedNode is an agent that records the gossip keys it is handed, with a
// connection that records its sessions' heartbeats.
type keyedNode struct {
	agent *agent.Agent
	done  chan error

	mu         sync.Mutex
	deliveries []agent.GossipKeys
	sessions   []string // session IDs registered, in order
	beats      map[string]int
}

func (n *keyedNode) delivered() []agent.GossipKeys {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.deliveries)
}

// countingConn is a node's connection to the dispatcher.
type countingConn struct {
	dispatcher.API
	n *keyedNode
}

func (c countingConn) Register(ctx context.Context, req *session.RegisterRequest) (*session.RegisterResponse, error) {
	resp, err := c.API.Register(ctx, req)
	if err == nil {
		c.n.mu.Lock()
		c.n.sessions = append(c.n.sessions, resp.SessionID)
		c.n.mu.Unlock()
	}
	return resp, err
}

func (c countingConn) Heartbeat(ctx context.Context, req *session.HeartbeatRequest) (*session.HeartbeatResponse, error) {
	resp, err := c.API.Heartbeat(ctx, req)
	if err == nil {
		c.n.mu.Lock()
		c.n.beats[req.SessionID]++
		c.n.mu.Unlock()
	}
	return resp, err
}

// keyedCluster is a dispatcher and a key manager over one store, with
// nodes whose agents follow the gossip keys.
type keyedCluster struct {
	*harness
	logs     *testutil.SyncBuffer
	stopKeys func()
	nodes    []*keyedNode
}

func newKeyedCluster(t *testing.T, nodes int) *keyedCluster {
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := config(api.MinHeartbeatPeriod)
	cfg.Logger = log
	c := &keyedCluster{harness: newHarness(t, cfg, nil), logs: logs}
	ctx, cancel := context.WithCancel(context.Background())
	kmDone := make(chan error, 1)
	go func() { kmDone <- keymanager.New(c.s, keymanager.Config{Logger: log}).Run(ctx) }()
	var once sync.Once
	c.stopKeys = func() {
		once.Do(func() {
			cancel()
			if err := <-kmDone; err != nil {
				t.Errorf("key manager: %v", err)
			}
		})
	}
	t.Cleanup(c.stopKeys)
	for i := range nodes {
		n := &keyedNode{done: make(chan error, 1), beats: map[string]int{}}
		a, err := agent.New(agent.Config{
			Dispatcher:       countingConn{API: c.d, n: n},
			Executor:         fake.New(fake.Config{Hostname: fmt.Sprintf("w%d", i)}),
			Logger:           log,
			ReconnectBackoff: 100 * time.Millisecond,
			OnGossipKeys: func(k agent.GossipKeys) {
				n.mu.Lock()
				n.deliveries = append(n.deliveries, k)
				n.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		n.agent = a
		actx, acancel := context.WithCancel(context.Background())
		go func() { n.done <- a.Run(actx) }()
		t.Cleanup(func() {
			acancel()
			<-n.done
		})
		c.nodes = append(c.nodes, n)
	}
	return c
}

// primary returns the cluster's gossip keys as the store holds them.
func (c *keyedCluster) keys() api.GossipKeyring {
	var k api.GossipKeyring
	c.s.View(func(tx store.ReadTx) {
		cs, _ := tx.FindClusters(store.All)
		k = cs[0].GossipKeys.Copy()
	})
	return k
}

// waitKeys waits until each node's last delivery is the cluster's keys at
// lamport version.
func (c *keyedCluster) waitKeys(version uint64, nodes ...*keyedNode) *session.GossipKeys {
	c.t.Helper()
	var want *session.GossipKeys
	testutil.EventuallyWhy(c.t, keysWait, fmt.Sprintf("gossip keys %d on every node", version), func() (bool, string) {
		want = session.GossipKeysOf(c.keys())
		if want == nil || want.Version != version {
			return false, "the cluster's keys are not there yet"
		}
		for i, n := range nodes {
			d := n.delivered()
			if len(d) == 0 || !d[len(d)-1].Equal(want) {
				return false, fmt.Sprintf("node %d holds %d deliveries", i, len(d))
			}
		}
		return true, ""
	})
	return want
}

// removeNode removes a node as the control API does (forced: it is up).
func (c *keyedCluster) removeNode(id string) {
	c.t.Helper()
	c.update(func(tx store.Tx) error {
		cs, _ := tx.FindClusters(store.All)
		cl := cs[0]
		cl.RemovedNodes = append(cl.RemovedNodes, id)
		if err := tx.UpdateCluster(cl); err != nil {
			return err
		}
		return tx.DeleteNode(id)
	})
}

// checkDeliveries checks that a node was handed each version once, in
// order.
func checkDeliveries(t *testing.T, i int, n *keyedNode) {
	t.Helper()
	var prev uint64
	for _, k := range n.delivered() {
		if k.Version <= prev {
			t.Errorf("node %d was handed version %d after %d: deliveries only on a change", i, k.Version, prev)
		}
		if len(k.Primary) != api.GossipKeyLen {
			t.Errorf("node %d: primary of %d bytes", i, len(k.Primary))
		}
		prev = k.Version
	}
}

// Every node gets the first key, and the new primary once a node is
// removed, with the previous key accepted; the removed node gets nothing
// more: its session ends and it learns it was removed.
func TestGossipKeysReachEveryNode(t *testing.T) {
	c := newKeyedCluster(t, 4)
	first := c.waitKeys(1, c.nodes...)
	if len(first.Accepted) != 0 {
		t.Fatalf("first keys accept %d older keys", len(first.Accepted))
	}
	gone, stay := c.nodes[0], c.nodes[1:]
	c.removeNode(gone.agent.NodeID())
	second := c.waitKeys(2, stay...)
	if len(second.Accepted) != 1 || !bytes.Equal(second.Accepted[0], first.Primary) {
		t.Fatalf("after the rotation nodes accept %d keys; want the previous primary", len(second.Accepted))
	}
	select {
	case err := <-gone.done:
		if !errors.Is(err, session.ErrNodeRemoved) {
			t.Fatalf("the removed node's agent ended with %v, want ErrNodeRemoved", err)
		}
		gone.done <- err // for the cleanup
	case <-time.After(keysWait):
		t.Fatal("the removed node's agent still runs")
	}
	for _, k := range gone.delivered() {
		if k.Version >= 2 {
			t.Fatalf("the removed node was handed the key made because it left (version %d)", k.Version)
		}
	}
	for i, n := range c.nodes {
		checkDeliveries(t, i, n)
	}
}

// A new leader's dispatcher hands the same keys: the nodes, registering
// with it, are not handed them again.
func TestGossipKeysSurviveADispatcherFailover(t *testing.T) {
	c := newKeyedCluster(t, 3)
	c.waitKeys(1, c.nodes...)
	c.stop()
	c.start()
	// Each node registers anew and heartbeats on its new session: the
	// registration's keys were taken before the first heartbeat.
	testutil.EventuallyWhy(t, keysWait, "every node heartbeating on a second session", func() (bool, string) {
		for i, n := range c.nodes {
			n.mu.Lock()
			ok := len(n.sessions) >= 2 && n.beats[n.sessions[len(n.sessions)-1]] > 0
			n.mu.Unlock()
			if !ok {
				return false, fmt.Sprintf("node %d not yet", i)
			}
		}
		return true, ""
	})
	for i, n := range c.nodes {
		if d := n.delivered(); len(d) != 1 {
			t.Errorf("node %d was handed keys %d times across the failover, want once", i, len(d))
		}
	}
}

// A heartbeat carries the keys only to a node that does not hold them.
func TestHeartbeatCarriesKeysOnlyOnAChange(t *testing.T) {
	c := newKeyedCluster(t, 0)
	want := c.waitKeys(1)
	// The store holding the keys does not mean the dispatcher's watch has
	// seen them yet: register (again, as the same node) until a
	// registration carries them, then ask the heartbeats.
	s := c.register("", "w1")
	testutil.EventuallyWhy(t, keysWait, "a registration carrying the keys", func() (bool, string) {
		if s.GossipKeys.Equal(want) {
			return true, ""
		}
		s = c.register(s.NodeID, "w1")
		return false, fmt.Sprintf("registration carries keys %v", s.GossipKeys)
	})
	beat := func(version uint64) *session.GossipKeys {
		t.Helper()
		resp, err := c.d.Heartbeat(context.Background(), &dispatcher.HeartbeatRequest{NodeID: s.NodeID, SessionID: s.SessionID, GossipKeysVersion: version})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GossipKeys
	}
	if k := beat(1); k != nil {
		t.Errorf("a node holding version 1 was handed version %d", k.Version)
	}
	if k := beat(0); !k.Equal(want) {
		t.Errorf("a node holding no keys was handed %v", k)
	}
}

// Key material never reaches the logs of the dispatcher, the key manager
// or the agents.
func TestGossipKeysNeverLogged(t *testing.T) {
	c := newKeyedCluster(t, 2)
	c.waitKeys(1, c.nodes...)
	c.removeNode(c.nodes[0].agent.NodeID())
	c.waitKeys(2, c.nodes[1])
	logs := c.logs.String()
	for _, line := range []string{"new gossip key", "gossip keys changed", "gossip keys received"} {
		if !strings.Contains(logs, line) {
			t.Errorf("no %q in the logs", line)
		}
	}
	for _, key := range c.keys().Keys {
		for _, enc := range []string{hex.EncodeToString(key.Key), base64.StdEncoding.EncodeToString(key.Key), fmt.Sprint([]byte(key.Key))} {
			if strings.Contains(logs, enc) {
				t.Fatalf("a gossip key is in the logs as %q", enc)
			}
		}
	}
}
