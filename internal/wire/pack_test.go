package wire

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/apiary-io/apiary/swarm/api"
)

type packed struct {
	A    string            `json:"A"`
	B    string            `json:"B"`
	List []string          `json:"List"`
	P    *inner            `json:"P"`
	M    map[string]inner  `json:"M"`
	L    map[string]string `json:"L"`
}

// within reports whether s lies in b's memory.
func within(s string, b []byte) bool {
	if len(s) == 0 || len(b) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(&b[0]))
	return p >= lo && p < lo+uintptr(len(b))
}

// strs returns every string of v.
func (v *packed) strs() []string {
	out := append([]string{v.A, v.B, v.P.A}, v.List...)
	for k, x := range v.M {
		out = append(out, k, x.A)
	}
	for k, x := range v.L {
		out = append(out, k, x)
	}
	return out
}

// roundTripPacked encodes in and decodes it, and returns both.
func roundTripPacked(t *testing.T, in *packed) ([]byte, *packed) {
	t.Helper()
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out packed
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return b, &out
}

// A decoded value's strings are its own: nothing points into the input,
// which the caller may reuse (gRPC's buffers go back to a pool).
func TestDecodedStringsOwnTheirMemory(t *testing.T) {
	in := packed{A: "alpha", B: "beta", List: []string{"x", "yy", "zzz"}, P: &inner{A: "pointed"},
		M: map[string]inner{"key": {A: "in a map"}}, L: map[string]string{"label": "value"}}
	b, out := roundTripPacked(t, &in)
	for _, s := range out.strs() {
		if within(s, b) {
			t.Fatalf("%q points into the input", s)
		}
	}
	want := strings.Join(in.strs(), ",")
	clear(b)
	if got := strings.Join(out.strs(), ","); got != want {
		t.Fatalf("after the input was cleared: %s, want %s", got, want)
	}
}

// The strings of a value outside maps share one allocation: a task the
// store keeps is a handful of objects for the collector, not one per
// string.
func TestDecodedStringsShareOneAllocation(t *testing.T) {
	task := api.Task{ID: strings.Repeat("i", 25), Name: "web.1", ServiceID: strings.Repeat("s", 25), NodeID: strings.Repeat("n", 25),
		ServiceAnnotations: api.Annotations{Name: "web"}, Spec: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app", "--flag"}}},
		Status: api.TaskStatus{Message: "started", ContainerStatus: &api.ContainerStatus{ContainerID: "proc-1"}}}
	b, err := Marshal(&task)
	if err != nil {
		t.Fatal(err)
	}
	var out api.Task
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	strs := []string{out.ID, out.Name, out.ServiceID, out.ServiceAnnotations.Name, out.NodeID, out.Spec.Process.Command[0], out.Spec.Process.Command[1], out.Status.Message, out.Status.ContainerStatus.ContainerID}
	// In one chunk, in the order decoded: each starts where a previous
	// one ends, or at the chunk's start.
	base := uintptr(unsafe.Pointer(unsafe.StringData(strs[0])))
	total := 0
	for _, s := range strs {
		total += len(s)
	}
	for _, s := range strs {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		if p < base || p+uintptr(len(s)) > base+uintptr(total) {
			t.Fatalf("%q is outside the chunk of the task's %d string bytes", s, total)
		}
	}
	// The task, its process spec, its command's array, its container
	// status, one chunk for nine strings: 5 allocations (and none for the
	// decoder, which is pooled).
	allocs := testing.AllocsPerRun(100, func() {
		var out api.Task
		if err := Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
	})
	want := 5.0
	if raceEnabled {
		want++ // the decoder, sometimes
	}
	if allocs > want {
		t.Fatalf("decoding the task allocates %.1f times, want at most %.0f", allocs, want)
	}
}

// A chunk holds at most packChunk bytes, so that a string kept alone
// keeps little else alive; a longer string has one of its own.
func TestPackedChunksAreBounded(t *testing.T) {
	long := strings.Repeat("L", packChunk+1)
	var list []string
	for i := range 12 {
		list = append(list, strings.Repeat(string(rune('a'+i)), 1000))
	}
	in := packed{A: "before", B: long, List: list, P: &inner{A: "after"}}
	_, out := roundTripPacked(t, &in)
	if out.B != long || out.A != "before" || out.P.A != "after" || strings.Join(out.List, "") != strings.Join(list, "") {
		t.Fatal("the strings differ after decoding")
	}
	// Strings in one chunk are adjacent; a new chunk starts elsewhere.
	// Group the strings, in decoding order, by adjacency.
	seq := append(append([]string{out.A, out.B}, out.List...), out.P.A)
	var chunks []int
	size := len(seq[0])
	for i := 1; i < len(seq); i++ {
		prev, cur := seq[i-1], seq[i]
		if uintptr(unsafe.Pointer(unsafe.StringData(cur))) == uintptr(unsafe.Pointer(unsafe.StringData(prev)))+uintptr(len(prev)) {
			size += len(cur)
			continue
		}
		chunks = append(chunks, size)
		size = len(cur)
	}
	chunks = append(chunks, size)
	for i, n := range chunks {
		if n > packChunk && n != len(long) {
			t.Errorf("chunk %d holds %d bytes, more than %d", i, n, packChunk)
		}
	}
	// "before" alone (the long string does not fit after it), the long
	// one alone, then the 12 strings of 1,000 bytes four to a chunk,
	// "after" with the last four.
	if want := []int{6, len(long), 4000, 4000, 4005}; !slices.Equal(chunks, want) {
		t.Errorf("chunks of %v bytes, want %v", chunks, want)
	}
}

// A value that fails to decode does not point into the input either.
func TestFailedDecodeKeepsNoView(t *testing.T) {
	in := packed{A: "alpha", B: "beta", P: &inner{A: "pointed", N: 7}}
	b, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out packed
	if err := Unmarshal(b[:len(b)-3], &out); err == nil {
		t.Fatal("a truncated value decoded")
	}
	for _, s := range []string{out.A, out.B} {
		if within(s, b) {
			t.Fatalf("%q points into the input", s)
		}
	}
	if !bytes.Contains(b, []byte("alpha")) {
		t.Fatal("the input changed")
	}
}

// Same tells values apart exactly where their encodings differ: a nil
// and an empty list differ, a field the encoding leaves out does not, and
// values of two types or of a type without an encoding are never the same.
func TestSameComparesEncodings(t *testing.T) {
	a := &api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}}
	b := &api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}}
	if !Same(a, b) {
		t.Error("equal specs are not the same")
	}
	b.Process.Command = []string{"app", "-v"}
	if Same(a, b) {
		t.Error("specs with other commands are the same")
	}
	b.Process.Command = []string{"app"}
	b.Networks = []api.NetworkAttachmentConfig{}
	if Same(a, b) {
		t.Error("a nil and an empty list are the same")
	}
	if !Same(&small{Hidden: "x"}, &small{Hidden: "y"}) {
		t.Error("a field left out of the encoding tells values apart")
	}
	if Same(&inner{A: "x"}, &small{S: "x"}) {
		t.Error("values of two types are the same")
	}
	type unencodable struct{ F func() }
	if Same(&unencodable{}, &unencodable{}) {
		t.Error("values without an encoding are the same")
	}
}
