package keymanager

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

const wait = 10 * time.Second

// clock is a fake clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// harness is a store with a cluster object and a running key manager.
type harness struct {
	t     *testing.T
	store *store.MemoryStore
	clock *clock
	km    *KeyManager
	// passes counts the key manager's reconciliations.
	passes chan struct{}
	stop   func()
	logs   *testutil.SyncBuffer
}

func newHarness(t *testing.T, spec api.ClusterSpec) *harness {
	t.Helper()
	s := store.NewMemoryStore(nil)
	t.Cleanup(s.Close)
	if err := s.Update(func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{ID: api.NewID(), Spec: spec})
	}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: s, clock: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	h.start()
	return h
}

// start runs a key manager (a new leader's) over the harness's store.
func (h *harness) start() {
	h.logs = &testutil.SyncBuffer{}
	h.km = New(h.store, Config{Now: h.clock.Now, Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	h.passes = make(chan struct{}, 64)
	h.km.reconciled = func() {
		select {
		case h.passes <- struct{}{}:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.km.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("key manager: %v", err)
			}
		})
	}
	h.t.Cleanup(h.stop)
}

func (h *harness) cluster() *api.Cluster {
	var c *api.Cluster
	h.store.View(func(tx store.ReadTx) {
		cs, _ := tx.FindClusters(store.All)
		c = cs[0]
	})
	return c
}

// waitLamport waits until the primary's Lamport clock is n.
func (h *harness) waitLamport(n uint64) api.GossipKeyring {
	h.t.Helper()
	var k api.GossipKeyring
	testutil.EventuallyWhy(h.t, wait, fmt.Sprintf("primary gossip key %d", n), func() (bool, string) {
		k = h.cluster().GossipKeys
		p := k.Primary()
		if p == nil {
			return false, "no key"
		}
		return p.Lamport == n, fmt.Sprintf("primary is %d", p.Lamport)
	})
	return k
}

// removeNode records a node's removal as the control API does.
func (h *harness) removeNode(id string) {
	h.t.Helper()
	if err := h.store.Update(func(tx store.Tx) error {
		cs, _ := tx.FindClusters(store.All)
		c := cs[0]
		c.RemovedNodes = append(c.RemovedNodes, id)
		return tx.UpdateCluster(c)
	}); err != nil {
		h.t.Fatal(err)
	}
}

// poke has the loop look again (the fake clock moved: its real timer
// does not know).
func (h *harness) poke() { h.km.loop.Queue().Add(struct{}{}) }

// settle waits for one reconciliation that starts after the call.
func (h *harness) settle() {
	h.t.Helper()
	for len(h.passes) > 0 {
		<-h.passes
	}
	h.poke()
	select {
	case <-h.passes:
	case <-time.After(wait):
		h.t.Fatal("the key manager did not reconcile")
	}
}

func TestFirstKeyAtInit(t *testing.T) {
	h := newHarness(t, api.DefaultClusterSpec())
	k := h.waitLamport(1)
	if len(k.Keys) != 1 || len(k.Keys[0].Key) != api.GossipKeyLen {
		t.Fatalf("keyring after init: %d keys, primary of %d bytes; want 1 key of %d", len(k.Keys), len(k.Keys[0].Key), api.GossipKeyLen)
	}
	if !k.Keys[0].CreatedAt.Equal(h.clock.Now()) {
		t.Errorf("primary made at %s, want %s", k.Keys[0].CreatedAt, h.clock.Now())
	}
	if bytes.Equal(k.Keys[0].Key, make([]byte, api.GossipKeyLen)) {
		t.Error("primary key is all zeros")
	}
}

func TestRotationOnSchedule(t *testing.T) {
	spec := api.DefaultClusterSpec()
	spec.Gossip.KeyRotation = time.Hour
	h := newHarness(t, spec)
	first := h.waitLamport(1)
	h.clock.Add(59 * time.Minute)
	h.settle()
	if got := h.cluster().GossipKeys.Primary().Lamport; got != 1 {
		t.Fatalf("rotated after 59m of a 1h interval: primary %d", got)
	}
	h.clock.Add(time.Minute)
	h.poke()
	k := h.waitLamport(2)
	if len(k.Keys) != 2 || !bytes.Equal(k.Keys[1].Key, first.Keys[0].Key) {
		t.Fatalf("after a rotation: %d keys; want the new primary, then the previous one accepted", len(k.Keys))
	}
	if bytes.Equal(k.Keys[0].Key, k.Keys[1].Key) {
		t.Fatal("the new primary is the old key")
	}
}

func TestRotationOnNodeRemoval(t *testing.T) {
	h := newHarness(t, api.DefaultClusterSpec())
	first := h.waitLamport(1)
	h.removeNode("node-a")
	k := h.waitLamport(2)
	if k.RemovedNode != "node-a" || !bytes.Equal(k.Keys[1].Key, first.Keys[0].Key) {
		t.Fatalf("after a removal: removed node %q, %d keys", k.RemovedNode, len(k.Keys))
	}
	// Taken into account: no further rotation.
	h.settle()
	if got := h.cluster().GossipKeys.Primary().Lamport; got != 2 {
		t.Fatalf("primary %d after one removal, want 2", got)
	}
}

func TestAtMostThreeKeysKept(t *testing.T) {
	h := newHarness(t, api.DefaultClusterSpec())
	h.waitLamport(1)
	for i := range 4 {
		h.removeNode(fmt.Sprintf("node-%d", i))
		h.waitLamport(uint64(i + 2))
	}
	k := h.cluster().GossipKeys
	if len(k.Keys) != api.MaxGossipKeys {
		t.Fatalf("%d keys kept, want %d", len(k.Keys), api.MaxGossipKeys)
	}
	for i, key := range k.Keys {
		if want := uint64(5 - i); key.Lamport != want {
			t.Errorf("key %d has lamport %d, want %d (newest first)", i, key.Lamport, want)
		}
	}
}

// A new leader reads when the last rotation was and keeps the keys until
// the next is due.
func TestNewLeaderDoesNotRotate(t *testing.T) {
	spec := api.DefaultClusterSpec()
	spec.Gossip.KeyRotation = time.Hour
	h := newHarness(t, spec)
	before := h.waitLamport(1)
	h.removeNode("node-a")
	before = h.waitLamport(2)
	h.stop()
	h.clock.Add(30 * time.Minute)
	h.start()
	h.settle()
	after := h.cluster().GossipKeys
	if after.Primary().Lamport != 2 || !bytes.Equal(after.Keys[0].Key, before.Keys[0].Key) {
		t.Fatalf("a new leader rotated: primary %d", after.Primary().Lamport)
	}
	h.clock.Add(30 * time.Minute)
	h.poke()
	h.waitLamport(3)
}

func TestKeysNeverLogged(t *testing.T) {
	h := newHarness(t, api.DefaultClusterSpec())
	h.waitLamport(1)
	h.removeNode("node-a")
	k := h.waitLamport(2)
	h.stop()
	logs := h.logs.String()
	if !strings.Contains(logs, "new gossip key") {
		t.Fatalf("no rotation logged:\n%s", logs)
	}
	for _, key := range k.Keys {
		for _, enc := range encodings(key.Key) {
			if strings.Contains(logs, enc) {
				t.Fatalf("a key appears in the logs as %q:\n%s", enc, logs)
			}
		}
	}
}

// encodings are the ways a key could leak into text.
func encodings(key []byte) []string {
	return []string{hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key), fmt.Sprint([]byte(key)), string(key)}
}
