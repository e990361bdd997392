package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// keysDispatcher is a fake manager that hands the keys it holds in every
// heartbeat response, whatever version the node says it holds, and
// records the versions nodes say they hold.
type keysDispatcher struct {
	*fakeDispatcher
	mu       sync.Mutex
	keys     *session.GossipKeys
	versions []uint64
}

func (d *keysDispatcher) Heartbeat(ctx context.Context, req *dispatcher.HeartbeatRequest) (*dispatcher.HeartbeatResponse, error) {
	resp, err := d.fakeDispatcher.Heartbeat(ctx, req)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.versions = append(d.versions, req.GossipKeysVersion)
	resp.GossipKeys = d.keys
	return resp, nil
}

func (d *keysDispatcher) set(k *session.GossipKeys) {
	d.mu.Lock()
	d.keys = k
	d.mu.Unlock()
}

// heartbeatsSaying counts the heartbeats that said the node holds version.
func (d *keysDispatcher) heartbeatsSaying(version uint64) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, v := range d.versions {
		if v == version {
			n++
		}
	}
	return n
}

func gossipKeys(version uint64, accepted ...*session.GossipKeys) *session.GossipKeys {
	k := &session.GossipKeys{Version: version, Primary: bytes.Repeat([]byte{byte(version)}, api.GossipKeyLen)}
	for _, a := range accepted {
		k.Accepted = append(k.Accepted, a.Primary)
	}
	return k
}

// The agent hands the keys on when they change only, and tells the
// manager which version it holds.
func TestOnGossipKeysOnlyOnAChange(t *testing.T) {
	d := &keysDispatcher{fakeDispatcher: newFakeDispatcher()}
	var mu sync.Mutex
	var got []agent.GossipKeys
	a, err := agent.New(agent.Config{
		Dispatcher: d, Executor: fake.New(fake.Config{}), NodeID: d.nodeID, Logger: testutil.DiscardLogger(), ReconnectBackoff: 20 * time.Millisecond,
		OnGossipKeys: func(k agent.GossipKeys) {
			mu.Lock()
			got = append(got, k)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deliveries := func() []agent.GossipKeys {
		mu.Lock()
		defer mu.Unlock()
		return append([]agent.GossipKeys(nil), got...)
	}

	if a.GossipKeys() != nil {
		t.Fatal("the agent holds gossip keys before any were handed")
	}
	v1 := gossipKeys(1)
	d.set(v1)
	// Several heartbeats that say version 1 is held: each carried the
	// same keys again, and none was handed on.
	testutil.Eventually(t, 10*time.Second, "three heartbeats saying version 1", func() bool { return d.heartbeatsSaying(1) >= 3 })
	if g := deliveries(); len(g) != 1 || !g[0].Equal(v1) {
		t.Fatalf("handed %d deliveries, want version 1 once", len(g))
	}
	v2 := gossipKeys(2, v1)
	d.set(v2)
	testutil.Eventually(t, 10*time.Second, "a heartbeat saying version 2", func() bool { return d.heartbeatsSaying(2) >= 1 })
	g := deliveries()
	if len(g) != 2 || !g[1].Equal(v2) || !a.GossipKeys().Equal(v2) {
		t.Fatalf("handed %d deliveries, want version 1, then 2", len(g))
	}
	primary, accepted := g[1].Raw()
	if !bytes.Equal(primary, v2.Primary) || len(accepted) != 1 || !bytes.Equal(accepted[0], v1.Primary) {
		t.Fatal("Raw does not give the primary, then the accepted key")
	}
	if s := fmt.Sprintf("%v %+v %x", g[1], g[1], g[1]); strings.Contains(s, "2 2 2") || strings.Contains(s, "020202") || !strings.Contains(s, "[redacted]") {
		t.Fatalf("keys print as %s", s)
	}
}
