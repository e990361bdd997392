package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// label is a text type that also appends its text, of any length.
type label string

func (l label) MarshalText() ([]byte, error) { return []byte(l), nil }
func (l label) AppendText(b []byte) ([]byte, error) {
	if l == "bad" {
		return nil, errors.New("no text for bad")
	}
	return append(b, l...), nil
}
func (l *label) UnmarshalText(b []byte) error { *l = label(b); return nil }

// marshalOnly is a text type without AppendText, written as before.
type marshalOnly string

func (m marshalOnly) MarshalText() ([]byte, error)  { return []byte(m), nil }
func (m *marshalOnly) UnmarshalText(b []byte) error { *m = marshalOnly(b); return nil }

type texts struct {
	A label
	B marshalOnly
	C label
}

// A type with AppendText is written in place, as the same bytes as its
// MarshalText would give, whatever the text's length (a length of 128 and
// more takes two bytes), and a failing AppendText fails the encoding.
func TestTextAppendedInPlace(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 300, 20000} {
		in := texts{A: label(strings.Repeat("a", n)), B: marshalOnly(strings.Repeat("b", n)), C: "c"}
		got, err := Append([]byte("prefix"), &in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("length %d: the bytes before were changed", n)
		}
		var out texts
		if err := Unmarshal(got[len("prefix"):], &out); err != nil || out != in {
			t.Fatalf("length %d: %v, got back %q/%q/%q", n, err, out.A[:min(len(out.A), 10)], out.B[:min(len(out.B), 10)], out.C)
		}
		// A and B are the same text by the two paths: their bytes match.
		ab, _ := Marshal(&struct{ A label }{in.A})
		bb, _ := Marshal(&struct{ A marshalOnly }{marshalOnly(in.A)})
		if !bytes.Equal(ab, bb) {
			t.Fatalf("length %d: AppendText wrote %x, MarshalText %x", n, ab[:min(len(ab), 8)], bb[:min(len(bb), 8)])
		}
	}
	if _, err := Marshal(&texts{A: "bad"}); err == nil || !strings.Contains(err.Error(), "no text for bad") {
		t.Errorf("a failing AppendText: %v", err)
	}
}

// A task's states are written without allocating.
func TestTaskStatesWithoutAllocating(t *testing.T) {
	st := &api.TaskStatus{State: api.TaskStateRunning}
	buf := make([]byte, 0, 256)
	if _, err := Append(buf, st); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { Append(buf, st) }); n != 0 {
		t.Errorf("a task status with its state: %v allocations", n)
	}
}
