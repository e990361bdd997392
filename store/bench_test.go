package store

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// The workloads of swarmkit's store benchmarks
// (manager/state/store/memory_test.go), so the two compare side by side:
// a store without a proposer, nodes with an ID and a name, 10,000 of them
// preloaded in one transaction.
//
// One difference is forced by semantics: swarmkit without a proposer does
// not check versions, so its benchmarks update nodes blind. Ours refuses a
// stale version, so the update benchmarks carry the current version (known
// without a read, since the commit index is predictable) and the concurrent
// writers read-modify-write different nodes, counting conflicts.

const benchmarkNumNodes = 10000

func setupNodes(b *testing.B, n int) (*MemoryStore, []string) {
	s := NewMemoryStore(nil)
	b.Cleanup(s.Close)
	nodeIDs := make([]string, n)
	for i := range nodeIDs {
		nodeIDs[i] = api.NewID()
	}
	b.ResetTimer()
	err := s.Update(func(tx Tx) error {
		for i := 0; i < n; i++ {
			if err := tx.CreateNode(&api.Node{
				ID:   nodeIDs[i],
				Spec: api.NodeSpec{Annotations: api.Annotations{Name: "name" + strconv.Itoa(i)}},
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s, nodeIDs
}

// BenchmarkCreateNode creates b.N nodes in one transaction.
func BenchmarkCreateNode(b *testing.B) {
	b.ReportAllocs()
	setupNodes(b, b.N)
}

// BenchmarkUpdateNode updates nodes b.N times in one transaction.
func BenchmarkUpdateNode(b *testing.B) {
	s, nodeIDs := setupNodes(b, benchmarkNumNodes)
	b.ReportAllocs()
	b.ResetTimer()
	err := s.Update(func(tx Tx) error {
		for i := 0; i < b.N; i++ {
			if err := tx.UpdateNode(&api.Node{
				ID:   nodeIDs[i%benchmarkNumNodes],
				Meta: api.Meta{Version: 1}, // the version of the setup commit
				Spec: api.NodeSpec{Annotations: api.Annotations{Name: nodeIDs[i%benchmarkNumNodes] + "_" + strconv.Itoa(i)}},
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkUpdateNodeTransaction updates one node per transaction.
func BenchmarkUpdateNodeTransaction(b *testing.B) {
	s, nodeIDs := setupNodes(b, benchmarkNumNodes)
	versions := make([]uint64, benchmarkNumNodes)
	for i := range versions {
		versions[i] = 1
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % benchmarkNumNodes
		err := s.Update(func(tx Tx) error {
			return tx.UpdateNode(&api.Node{
				ID:   nodeIDs[j],
				Meta: api.Meta{Version: versions[j]},
				Spec: api.NodeSpec{Annotations: api.Annotations{Name: nodeIDs[j] + "_" + strconv.Itoa(i)}},
			})
		})
		if err != nil {
			b.Fatal(err)
		}
		versions[j] = s.Index() // the only writer: its commit is the last
	}
}

// BenchmarkGetNode reads one node by ID per iteration in one snapshot.
func BenchmarkGetNode(b *testing.B) {
	s, nodeIDs := setupNodes(b, benchmarkNumNodes)
	b.ReportAllocs()
	b.ResetTimer()
	s.View(func(tx ReadTx) {
		for i := 0; i < b.N; i++ {
			_ = tx.GetNode(nodeIDs[i%benchmarkNumNodes])
		}
	})
}

// BenchmarkFindAllNodes lists all 10,000 nodes per iteration.
func BenchmarkFindAllNodes(b *testing.B) {
	s, _ := setupNodes(b, benchmarkNumNodes)
	b.ReportAllocs()
	b.ResetTimer()
	s.View(func(tx ReadTx) {
		for i := 0; i < b.N; i++ {
			_, _ = tx.FindNodes(All)
		}
	})
}

// BenchmarkFindNodeByName looks one node up by name per iteration (names
// past the 10,000th find nothing, as in swarmkit's).
func BenchmarkFindNodeByName(b *testing.B) {
	s, _ := setupNodes(b, benchmarkNumNodes)
	b.ReportAllocs()
	b.ResetTimer()
	s.View(func(tx ReadTx) {
		for i := 0; i < b.N; i++ {
			_, _ = tx.FindNodes(ByName("name" + strconv.Itoa(i)))
		}
	})
}

// BenchmarkNodeConcurrency runs 5 writers (b.N transactions each, one node
// update per transaction) and 5 readers (b.N gets each, one snapshot)
// together.
func BenchmarkNodeConcurrency(b *testing.B) {
	s, nodeIDs := setupNodes(b, benchmarkNumNodes)
	var conflicts atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := 0; c < 5; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < b.N; i++ {
				// Each writer works on its own fifth of the nodes, so that
				// conflicts measure the store, not the workload.
				id := nodeIDs[(c*benchmarkNumNodes/5+i)%benchmarkNumNodes]
				err := s.Update(func(tx Tx) error {
					n := tx.GetNode(id)
					n.Spec.Name = id + "_" + strconv.Itoa(c) + "_" + strconv.Itoa(i)
					return tx.UpdateNode(n)
				})
				if errors.Is(err, ErrConflict) {
					conflicts.Add(1)
				} else if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for c := 0; c < 5; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.View(func(tx ReadTx) {
				for i := 0; i < b.N; i++ {
					_ = tx.GetNode(nodeIDs[i%benchmarkNumNodes])
				}
			})
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(conflicts.Load())/float64(5*b.N), "conflicts/update")
}

// BenchmarkUpdateNodeTransactionProposer is BenchmarkUpdateNodeTransaction
// through an in-memory log (the fake raft of the tests): the cost of the
// replicated path's encoding and decoding, without raft itself.
func BenchmarkUpdateNodeTransactionProposer(b *testing.B) {
	_, rs := newReplicated(b, 1)
	s := rs[0]
	nodeIDs := make([]string, benchmarkNumNodes)
	err := s.Batch(func(batch *Batch) error {
		for i := range nodeIDs {
			nodeIDs[i] = api.NewID()
			if err := batch.Update(func(tx Tx) error {
				return tx.CreateNode(&api.Node{ID: nodeIDs[i], Spec: api.NodeSpec{Annotations: api.Annotations{Name: "name" + strconv.Itoa(i)}}})
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	versions := make([]uint64, benchmarkNumNodes)
	s.View(func(tx ReadTx) {
		for i, id := range nodeIDs {
			versions[i] = tx.GetNode(id).Meta.Version
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % benchmarkNumNodes
		err := s.Update(func(tx Tx) error {
			return tx.UpdateNode(&api.Node{
				ID:   nodeIDs[j],
				Meta: api.Meta{Version: versions[j]},
				Spec: api.NodeSpec{Annotations: api.Annotations{Name: nodeIDs[j] + "_" + strconv.Itoa(i)}},
			})
		})
		if err != nil {
			b.Fatal(err)
		}
		versions[j] = s.Index()
	}
}
