package store

import (
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// BenchmarkApplyBatchServices applies committed entries as a follower
// does (ApplyBatch, entries decoded from their bytes), each the create of
// a 0-replica service with a host VIP, in batches, into a store already
// holding services: the apply half of BenchmarkControlAPIWrite's
// op=create.
func BenchmarkApplyBatchServices(b *testing.B) {
	for _, held := range []int{0, 10000, 60000} {
		for _, batch := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("held=%d/batch=%d", held, batch), func(b *testing.B) {
				s := NewMemoryStore(nil)
				b.Cleanup(s.Close)
				mk := func(i int) *api.Service {
					return &api.Service{ID: api.NewID(), Spec: api.ServiceSpec{
						Annotations:  api.Annotations{Name: fmt.Sprintf("svc-%d", i)},
						Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{}},
						TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
					}, Endpoint: &api.Endpoint{HostVIP: fmt.Sprintf("127.%d.%d.%d", 100+i>>16&0x3f, i>>8&0xff, i&0xff)}}
				}
				if err := s.Update(func(tx Tx) error {
					for i := range held {
						if err := tx.CreateService(mk(i)); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				data := make([][]byte, b.N)
				for i := range data {
					d, err := encodeProposal([]action{{op: ActionCreate, kind: api.KindService, obj: mk(held + i)}}, 0)
					if err != nil {
						b.Fatal(err)
					}
					data[i] = d
				}
				index := s.Index()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					n := min(batch, b.N-i)
					idx := make([]uint64, n)
					for j := range idx {
						index++
						idx[j] = index
					}
					for _, err := range s.ApplyBatch(idx, data[i:i+n]) {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
