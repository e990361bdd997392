package swarmtest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/apiary-io/apiary/internal/testutil"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// Issue 15: the gossip keys live in the replicated cluster object. The
// first leader makes one; a node's removal makes a new primary, the
// previous one kept; a new leader keeps them as they are; the control API
// and the logs never show their material.
func TestGossipKeysAcrossRemovalAndFailover(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, Workers: 2, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ring := func() api.GossipKeyring {
		var k api.GossipKeyring
		c.Leader().Node.Manager().Store().View(func(tx store.ReadTx) {
			if cs, _ := tx.FindClusters(store.All); len(cs) > 0 {
				k = cs[0].GossipKeys.Copy()
			}
		})
		return k
	}
	waitPrimary := func(lamport uint64) api.GossipKeyring {
		t.Helper()
		var k api.GossipKeyring
		c.WaitFor(fmt.Sprintf("gossip key %d", lamport), func() (bool, string) {
			k = ring()
			p := k.Primary()
			if p == nil {
				return false, "no key"
			}
			return p.Lamport == lamport, fmt.Sprintf("primary %d", p.Lamport)
		})
		return k
	}
	removeWorker := func(m *swarmtest.Member) {
		t.Helper()
		id := m.Node.NodeID()
		c.Kill(m)
		if err := c.Client(c.Leader()).RemoveNode(ctx, id, true); err != nil {
			t.Fatalf("remove %s: %v", m.Name, err)
		}
	}
	workers := c.Members[3:]

	first := waitPrimary(1)
	if len(first.Keys) != 1 || len(first.Keys[0].Key) != api.GossipKeyLen {
		t.Fatalf("after init: %d keys", len(first.Keys))
	}
	removeWorker(workers[0])
	second := waitPrimary(2)
	if len(second.Keys) != 2 || !bytes.Equal(second.Keys[1].Key, first.Keys[0].Key) {
		t.Fatalf("after a removal: %d keys; want the new primary, then the previous one", len(second.Keys))
	}

	// Failover: the new leader has the keys, and keeps them.
	c.Kill(c.Leader())
	c.Leader()
	c.WaitReady()
	// (The new leader's store may apply the last entries a moment after
	// it is elected.)
	if k := waitPrimary(2); !bytes.Equal(k.Keys[0].Key, second.Keys[0].Key) {
		t.Fatal("after a failover the primary is another key")
	}
	removeWorker(workers[1])
	third := waitPrimary(3)
	if len(third.Keys) != 3 || !bytes.Equal(third.Keys[1].Key, second.Keys[0].Key) || !bytes.Equal(third.Keys[2].Key, first.Keys[0].Key) {
		t.Fatalf("after a removal under the new leader: %d keys, not the two before it", len(third.Keys))
	}

	// swarm inspect: the keys' clocks, never their material.
	cl, err := c.Client(c.Leader()).GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inspect, err := json.Marshal(cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.GossipKeys.Keys) != 3 || cl.GossipKeys.Primary().Lamport != 3 {
		t.Errorf("inspect shows gossip keys %+v, want three, primary 3", cl.GossipKeys)
	}
	out := string(inspect) + logs.String()
	for _, key := range third.Keys {
		for _, enc := range []string{hex.EncodeToString(key.Key), base64.StdEncoding.EncodeToString(key.Key), fmt.Sprint([]byte(key.Key))} {
			if strings.Contains(out, enc) {
				t.Fatalf("a gossip key shows in inspect output or the logs as %q", enc)
			}
		}
	}
}
