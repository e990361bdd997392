package dispatcher_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

// A node that gossips registers where, is handed the others' gossip
// addresses (not its own, and only of ready nodes that gossip), and gets
// them again in a heartbeat when it asks; a malformed address is refused
// naming the field, changing nothing.
func TestGossipPeers(t *testing.T) {
	h := newHarness(t, config(time.Second), nil)
	ctx := context.Background()
	reg := func(id, gossip string) *dispatcher.RegisterResponse {
		t.Helper()
		resp, err := h.d.Register(ctx, &dispatcher.RegisterRequest{NodeID: id, Description: desc(id), Addr: "10.0.0.1:4242", GossipAddr: gossip})
		if err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
		return resp
	}
	a := reg("", "127.0.0.1:7001")
	if len(a.GossipPeers) != 0 {
		t.Errorf("the first node got peers %v", a.GossipPeers)
	}
	if got := h.node(a.NodeID).Status.GossipAddr; got != "127.0.0.1:7001" {
		t.Errorf("the node's GossipAddr is %q", got)
	}
	reg("", "") // takes no part in gossip
	b := reg("", "127.0.0.2:7002")
	if !slices.Equal(b.GossipPeers, []string{"127.0.0.1:7001"}) {
		t.Errorf("the second gossiping node got peers %v, want the first's only", b.GossipPeers)
	}
	hb, err := h.d.Heartbeat(ctx, &dispatcher.HeartbeatRequest{NodeID: a.NodeID, SessionID: a.SessionID, WantGossipPeers: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hb.GossipPeers, []string{"127.0.0.2:7002"}) {
		t.Errorf("heartbeat asking for peers got %v", hb.GossipPeers)
	}
	hb, err = h.d.Heartbeat(ctx, &dispatcher.HeartbeatRequest{NodeID: a.NodeID, SessionID: a.SessionID})
	if err != nil || len(hb.GossipPeers) != 0 {
		t.Errorf("heartbeat not asking got peers %v (%v)", hb.GossipPeers, err)
	}

	before := h.node(a.NodeID)
	_, err = h.d.Register(ctx, &dispatcher.RegisterRequest{NodeID: a.NodeID, Description: desc("x"), GossipAddr: "not an address"})
	if !errors.Is(err, dispatcher.ErrBadRequest) || !strings.Contains(err.Error(), "GossipAddr") {
		t.Fatalf("malformed GossipAddr: %v", err)
	}
	if after := h.node(a.NodeID); after.Meta.Version != before.Meta.Version || after.Status.State != api.NodeStateReady {
		t.Fatal("a refused registration changed the node")
	}
}
