package store

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// BenchmarkSnapshot writes (Save, what raft does every 10,000 entries in
// the background) and reads (Restore, what a follower that fell behind or
// a restarting manager does) a state of 10,000 services and 100,000 tasks,
// as each format does it. The snapshot's size is reported as
// snapshot-bytes.
//
//	go test -run '^$' -bench Snapshot -benchtime 5x ./store/
func BenchmarkSnapshot(b *testing.B) {
	src := NewMemoryStore(nil)
	b.Cleanup(src.Close)
	benchState(b, src, 10000, 10)
	db, index := src.current(), src.Index()
	formats := []struct {
		name string
		save func(w io.Writer) error
	}{
		{"format=1", func(w io.Writer) error { return writeFormat1(w, db, index) }},
		{"format=2", func(w io.Writer) error { return saveState(w, db, index) }},
	}
	for _, f := range formats {
		var snap bytes.Buffer
		if err := f.save(&snap); err != nil {
			b.Fatal(err)
		}
		b.Run("save/"+f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f.save(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(snap.Len()), "snapshot-bytes")
		})
		b.Run("restore/"+f.name, func(b *testing.B) {
			dst := NewMemoryStore(nil)
			b.Cleanup(dst.Close)
			b.ReportAllocs()
			for b.Loop() {
				if err := dst.Restore(bytes.NewReader(snap.Bytes())); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(snap.Len()), "snapshot-bytes")
		})
	}
}

// benchState fills s with services of the shape a user creates and perTask
// running tasks each, as the managers record them (placed, addressed,
// reported running), on 100 nodes.
func benchState(tb testing.TB, s *MemoryStore, services, perTask int) {
	tb.Helper()
	const nodes = 100
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	delay := 5 * time.Second
	mustUpdate(tb, s, func(tx Tx) error {
		if err := tx.CreateNetwork(&api.Network{ID: "net-backend", Spec: api.NetworkSpec{Annotations: api.Annotations{Name: "backend"}}}); err != nil {
			return err
		}
		for i := range nodes {
			if err := tx.CreateNode(&api.Node{ID: fmt.Sprintf("node%021d", i), Spec: api.NodeSpec{
				Annotations: api.Annotations{Name: fmt.Sprintf("worker-%d", i), Labels: map[string]string{"zone": fmt.Sprintf("z%d", i%3)}},
				Role:        api.NodeRoleWorker}}); err != nil {
				return err
			}
		}
		return nil
	})
	// Transactions of a service and its tasks: one of a million objects
	// would hold them all twice.
	for i := range services {
		name := fmt.Sprintf("svc-%d", i)
		spec := api.TaskSpec{
			Container: &api.ContainerSpec{
				Image: "registry.example.com/team/app:1.4.2",
				Env:   []string{"MODE=production", "PORT=8080", "SERVICE=" + name},
				Args:  []string{"--serve", "--log-level=info"},
			},
			Resources: &api.ResourceRequirements{
				Limits:       &api.Resources{NanoCPUs: 500_000_000, MemoryBytes: 256 << 20},
				Reservations: &api.Resources{NanoCPUs: 100_000_000, MemoryBytes: 64 << 20},
			},
			RestartPolicy: &api.RestartPolicy{Condition: api.RestartConditionOnFailure, Delay: &delay, MaxAttempts: 3},
			Networks:      []api.NetworkAttachmentConfig{{Target: "net-backend"}},
		}
		annotations := api.Annotations{Name: name, Labels: map[string]string{"com.example.team": "payments", "com.example.tier": "backend"}}
		svcID := fmt.Sprintf("svc%022d", i)
		mustUpdate(tb, s, func(tx Tx) error {
			if err := tx.CreateService(&api.Service{ID: svcID, SpecVersion: 1,
				Spec: api.ServiceSpec{Annotations: annotations, TaskTemplate: spec,
					Mode: api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: int64(perTask)}}},
				Endpoint: &api.Endpoint{VirtualIPs: []api.EndpointVirtualIP{{NetworkID: "net-backend", Addr: fmt.Sprintf("10.%d.%d.%d/8", 200+i>>16, i>>8&255, i&255)}}},
			}); err != nil {
				return err
			}
			for slot := 1; slot <= perTask; slot++ {
				n := i*perTask + slot
				if err := tx.CreateTask(&api.Task{
					ID: fmt.Sprintf("task%021d", n), Name: fmt.Sprintf("%s.%d", name, slot),
					ServiceID: svcID, ServiceAnnotations: annotations, Slot: uint64(slot),
					NodeID: fmt.Sprintf("node%021d", n%nodes), Spec: spec, SpecVersion: 1,
					DesiredState: api.TaskStateRunning,
					Status: api.TaskStatus{Timestamp: now, State: api.TaskStateRunning, Message: "started",
						ContainerStatus: &api.ContainerStatus{ContainerID: fmt.Sprintf("%064x", n), PID: 1000 + n, StartedAt: now}},
					Networks: []api.NetworkAttachment{{NetworkID: "net-backend", Addresses: []string{fmt.Sprintf("10.%d.%d.%d/8", n>>16&255, n>>8&255, n&255)}}},
				}); err != nil {
					return err
				}
			}
			return nil
		})
	}
}
