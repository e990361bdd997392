package wire

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// benchService is a service as a control-API create makes it: a spec with
// a name, labels, a process and a mode, and the store's metadata.
func benchService(tb testing.TB) *api.Service {
	var s api.Service
	(&filler{}).fill(tb, reflect.ValueOf(&s.Spec.Annotations).Elem(), "Annotations")
	s.ID = api.NewID()
	s.Spec.Mode.Replicated = &api.ReplicatedService{Replicas: 3}
	s.Spec.TaskTemplate.Process = &api.ProcessSpec{Command: []string{"app", "--flag"}}
	s.SpecVersion = 1
	return &s
}

// BenchmarkCodec compares the encoding with encoding/json on a service,
// the object of every control-API write of the benchmarks.
//
//	go test -run '^$' -bench Codec ./internal/wire/
func BenchmarkCodec(b *testing.B) {
	s := benchService(b)
	wb, _ := Marshal(s)
	jb, _ := json.Marshal(s)
	b.Run("wire/encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf, _ = Append(buf[:0], s)
		}
		b.ReportMetric(float64(len(wb)), "bytes")
	})
	b.Run("json/encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(s)
		}
		b.ReportMetric(float64(len(jb)), "bytes")
	})
	b.Run("wire/decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v api.Service
			if err := Unmarshal(wb, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json/decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v api.Service
			if err := json.Unmarshal(jb, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
