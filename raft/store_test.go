package raft

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// The store is the FSM raft replicates, and raft is the store's Proposer.
var (
	_ FSM                   = (*store.MemoryStore)(nil)
	_ store.Proposer        = (*Node)(nil)
	_ store.Proposer        = (*lateProposer)(nil)
	_ store.FramingProposer = (*Node)(nil)
	_ store.FramingProposer = (*lateProposer)(nil)
)

// lateProposer breaks the construction cycle: the store needs its
// proposer before the node exists, the node needs the store as its FSM.
type lateProposer struct{ n atomic.Pointer[Node] }

func (p *lateProposer) Propose(ctx context.Context, data []byte) (uint64, error) {
	n := p.n.Load()
	if n == nil {
		return 0, ErrStopped
	}
	return n.Propose(ctx, data)
}

// The store frames its proposals through it, as through swarm's.
func (p *lateProposer) ProposalHeadroom() int { return envelopeHdrSize }

func (p *lateProposer) ProposeFramed(ctx context.Context, buf []byte) (uint64, error) {
	n := p.n.Load()
	if n == nil {
		return 0, ErrStopped
	}
	return n.ProposeFramed(ctx, buf)
}

type storeMember struct {
	node  *Node
	store *store.MemoryStore
}

func startStoreMember(t *testing.T, nw *Network, base string, id uint64, peers []Peer) storeMember {
	t.Helper()
	p := &lateProposer{}
	st := store.NewMemoryStore(p)
	cfg := testConfig()
	cfg.ID = id
	cfg.DataDir = filepath.Join(base, fmt.Sprint(id))
	cfg.FSM = st
	cfg.Transport = nw.Transport(id)
	cfg.Peers = peers
	cfg.SnapshotInterval = 25
	cfg.SnapshotCatchUpEntries = 5
	cfg.Logger = testLogger(t)
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.n.Store(n)
	return storeMember{n, st}
}

func service(id, name string) *api.Service {
	return &api.Service{ID: id, Spec: api.ServiceSpec{Annotations: api.Annotations{Name: name}}}
}

// Three stores replicated through raft: writes through any member's store
// reach all of them, conflicts found at apply time reach the writer, and
// a member restarted from disk (snapshot + log) holds the same objects.
func TestStoreReplication(t *testing.T) {
	nw := NewNetwork()
	defer nw.Close()
	base := t.TempDir()
	peers := []Peer{{ID: 1}, {ID: 2}, {ID: 3}}
	ms := map[uint64]storeMember{}
	for id := uint64(1); id <= 3; id++ {
		ms[id] = startStoreMember(t, nw, base, id, peers)
	}
	defer func() {
		for _, m := range ms {
			m.node.Stop()
			m.store.Close()
		}
	}()
	testutil.Eventually(t, 10*time.Second, "a leader", func() bool { return ms[1].node.Leader() != 0 && ms[2].node.Leader() == ms[1].node.Leader() })

	for i := 0; i < 60; i++ {
		m := ms[uint64(1+i%3)]
		err := m.store.Update(func(tx store.Tx) error {
			return tx.CreateService(service(fmt.Sprintf("svc%d", i), fmt.Sprintf("name%d", i)))
		})
		if err != nil {
			t.Fatalf("create service %d: %v", i, err)
		}
	}
	// Two writers update the same object from the same version: exactly
	// one wins, the other gets the store's conflict error from raft.
	var base1, base2 *api.Service
	ms[1].store.View(func(tx store.ReadTx) { base1 = tx.GetService("svc0") })
	ms[2].store.View(func(tx store.ReadTx) { base2 = tx.GetService("svc0") })
	if base1 == nil || base2 == nil || base1.Meta.Version != base2.Meta.Version {
		// Not yet applied on 2: wait for it.
		testutil.Eventually(t, 5*time.Second, "svc0 on member 2", func() bool {
			ms[2].store.View(func(tx store.ReadTx) { base2 = tx.GetService("svc0") })
			return base2 != nil && base2.Meta.Version == base1.Meta.Version
		})
	}
	base1.Spec.Labels = map[string]string{"by": "1"}
	base2.Spec.Labels = map[string]string{"by": "2"}
	err1 := ms[1].store.Update(func(tx store.Tx) error { return tx.UpdateService(base1) })
	err2 := ms[2].store.Update(func(tx store.Tx) error { return tx.UpdateService(base2) })
	if (err1 == nil) == (err2 == nil) {
		t.Fatalf("concurrent updates: %v, %v; want exactly one conflict", err1, err2)
	}
	if err := errors.Join(err1, err2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("want ErrConflict, got %v", err)
	}

	count := func(s *store.MemoryStore) int {
		var n int
		s.View(func(tx store.ReadTx) {
			all, _ := tx.FindServices(store.All)
			n = len(all)
		})
		return n
	}
	index := ms[1].store.Index()
	for _, m := range ms {
		testutil.Eventually(t, 10*time.Second, "replication", func() bool { return m.store.Index() >= index && count(m.store) == 60 })
	}

	// Restart member 3 from disk: its store comes back from the snapshot
	// and the log after it.
	ms[3].node.Stop()
	ms[3].store.Close()
	ms[3] = startStoreMember(t, nw, base, 3, nil)
	testutil.Eventually(t, 10*time.Second, "member 3 to replay", func() bool { return ms[3].store.Index() >= index && count(ms[3].store) == 60 })
	var got *api.Service
	ms[3].store.View(func(tx store.ReadTx) { got = tx.GetService("svc0") })
	if got == nil || got.Meta.Version == base1.Meta.Version {
		t.Fatalf("restarted member lost the update of svc0: %+v", got)
	}
}
