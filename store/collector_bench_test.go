package store

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// BenchmarkCollectorAt100kTasks is what a follower's store of 1,000
// services and 100,000 running tasks costs the collector: the store is
// filled as a follower fills it (encoded entries, applied), and each
// iteration is one forced collection, reported as the CPU its marking
// took (runtime/metrics) and the heap's objects. The collector's time goes
// to the pointers it follows, a cache miss each, so the count of objects
// is what to keep down (docs/benchmarks.md, "Session of 2026-12-05
// (fifth)"). The host's speed moves it by ±20%: compare builds in
// alternating runs.
//
//	go test -run '^$' -bench CollectorAt100kTasks -benchtime 15x ./store/
func BenchmarkCollectorAt100kTasks(b *testing.B) {
	s := NewMemoryStore(nil)
	b.Cleanup(s.Close)
	fillAsFollower(b, s, 1000, 100)
	runtime.GC()
	samples := []metrics.Sample{
		{Name: "/cpu/classes/gc/mark/dedicated:cpu-seconds"},
		{Name: "/cpu/classes/gc/mark/idle:cpu-seconds"},
		{Name: "/cpu/classes/gc/mark/assist:cpu-seconds"},
	}
	markCPU := func() float64 {
		metrics.Read(samples)
		return samples[0].Value.Float64() + samples[1].Value.Float64() + samples[2].Value.Float64()
	}
	b.ResetTimer()
	before := markCPU()
	for b.Loop() {
		runtime.GC()
	}
	b.StopTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric((markCPU()-before)*1000/float64(b.N), "mark-cpu-ms/op")
	b.ReportMetric(float64(ms.HeapObjects), "heap-objects")
	b.ReportMetric(float64(ms.HeapAlloc>>20), "heap-MB")
	runtime.KeepAlive(s)
}

// fillAsFollower applies, as encoded entries, services with replicas
// running tasks each, shaped as the write benchmark's (process runtime, a
// placement constraint, a container status): one entry per service and
// its tasks.
func fillAsFollower(tb testing.TB, s *MemoryStore, services, replicas int) {
	tb.Helper()
	now := time.Now().UTC()
	nodes := []string{api.NewID(), api.NewID(), api.NewID(), api.NewID()}
	for i := range services {
		svc := &api.Service{ID: api.NewID(), Spec: api.ServiceSpec{
			Annotations: api.Annotations{Name: fmt.Sprintf("bulk-%d", i)},
			Mode:        api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: int64(replicas)}},
			TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}},
				Placement: &api.Placement{Constraints: []string{"node.role==worker"}}},
		}}
		acts := []action{{op: ActionCreate, kind: api.KindService, id: svc.ID, obj: svc}}
		for j := range replicas {
			t := &api.Task{ID: api.NewID(), Name: fmt.Sprintf("bulk-%d.%d", i, j+1), ServiceID: svc.ID,
				ServiceAnnotations: svc.Spec.Annotations, Slot: uint64(j + 1), NodeID: nodes[j%len(nodes)],
				Spec: svc.Spec.TaskTemplate, SpecVersion: 1, DesiredState: api.TaskStateRunning,
				Status: api.TaskStatus{Timestamp: now, State: api.TaskStateRunning, Message: "started",
					ContainerStatus: &api.ContainerStatus{ContainerID: "proc-" + api.NewID(), PID: 1234, StartedAt: now}}}
			acts = append(acts, action{op: ActionCreate, kind: api.KindTask, id: t.ID, obj: t})
		}
		data, err := encodeProposal(acts, 0)
		if err != nil {
			tb.Fatal(err)
		}
		if err := s.Apply(uint64(i+1), data); err != nil {
			tb.Fatal(err)
		}
	}
}
