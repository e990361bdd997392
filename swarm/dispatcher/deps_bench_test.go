package dispatcher

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// BenchmarkCompleteSetWithSecrets: what a node's stream does to send its
// complete set of 1,000 tasks, each referencing 10 of 100 secrets of 4
// KiB: count the references, read the secrets from the store, split the
// set into messages. Reports the messages and their items' bytes.
func BenchmarkCompleteSetWithSecrets(b *testing.B) {
	const tasks, secrets, perTask, size = 1000, 100, 10, 4 << 10
	s := store.NewMemoryStore(nil)
	defer s.Close()
	var set []*api.Task
	if err := s.Update(func(tx store.Tx) error {
		for i := range secrets {
			id := fmt.Sprintf("s%03d", i)
			if err := tx.CreateSecret(&api.Secret{ID: id, Spec: api.SecretSpec{Annotations: api.Annotations{Name: id}, Data: bytes.Repeat([]byte{'x'}, size)}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for i := range tasks {
		t := &api.Task{ID: fmt.Sprintf("t%04d", i), NodeID: "n", Status: api.TaskStatus{State: api.TaskStateRunning},
			Spec: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}}}
		for j := range perTask {
			id := fmt.Sprintf("s%03d", (i+j*7)%secrets)
			t.Spec.Secrets = append(t.Spec.Secrets, api.SecretReference{SecretID: id, SecretName: id, File: &api.FileTarget{Name: fmt.Sprint(j)}})
		}
		set = append(set, t)
	}
	var msgs, itemBytes int
	b.ReportAllocs()
	for b.Loop() {
		d := newDeps(s)
		ms := partsWith(d.forSet(set), set)
		msgs, itemBytes = len(ms), 0
		for _, m := range ms {
			for _, x := range m.Secrets {
				itemBytes += objBytes(x)
			}
			for _, t := range m.Tasks {
				itemBytes += taskBytes(t)
			}
		}
	}
	b.ReportMetric(float64(msgs), "messages")
	b.ReportMetric(float64(itemBytes), "item-bytes")
}
