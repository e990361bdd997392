package store

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func saveBytes(t testing.TB, s *MemoryStore) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Save(&buf); err != nil {
		t.Fatalf("save: %v", err)
	}
	return bytes.NewReader(buf.Bytes())
}

// fullStore holds fully populated objects of every kind (three each) plus
// the fixture, at an index above 1.
func fullStore(t testing.TB) *MemoryStore {
	s := NewMemoryStore(nil)
	t.Cleanup(s.Close)
	fixture(t, s)
	for i := 0; i < 3; i++ {
		mustUpdate(t, s, func(tx Tx) error {
			for _, o := range filled(i * 1000) {
				if err := createObject(tx, o); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return s
}

func TestSaveRestoreRoundTrip(t *testing.T) {
	src := fullStore(t)
	snap := saveBytes(t, src)
	size := snap.Len()

	dst := NewMemoryStore(nil)
	defer dst.Close()
	mustUpdate(t, dst, func(tx Tx) error { return tx.CreateNode(node("stale", "")) })
	w := dst.Watch()
	defer w.Close()
	if err := dst.Restore(snap); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if dst.Index() != src.Index() {
		t.Fatalf("index %d, want %d", dst.Index(), src.Index())
	}
	want, got := allObjects(t, src), allObjects(t, dst)
	if len(want) != 13+3*numTables {
		t.Fatalf("source holds %d objects", len(want))
	}
	if !reflect.DeepEqual(got, want) {
		for k, o := range want {
			if !reflect.DeepEqual(got[k], o) {
				t.Errorf("%v:\n got %+v\nwant %+v", k, got[k], o)
			}
		}
		t.Fatal("restored state differs")
	}
	ev := nextEvent(t, w, time.Now().Add(10*time.Second))
	if ev.Action != ActionRestore || ev.Version != src.Index() || ev.Object != nil {
		t.Fatalf("event %+v, want restore at %d", ev, src.Index())
	}
	// Same state, same bytes; and the restored store works on from there.
	again := saveBytes(t, dst)
	if again.Len() != size {
		t.Fatalf("re-saved snapshot is %d bytes, was %d", again.Len(), size)
	}
	mustUpdate(t, dst, func(tx Tx) error { return tx.CreateNode(node("next", "")) })
	if n := getNode(dst, "next"); n.Meta.Version != src.Index()+1 {
		t.Fatalf("first commit after restore at %d, want %d", n.Meta.Version, src.Index()+1)
	}
	// The indexes were rebuilt.
	dst.View(func(tx ReadTx) {
		if ts, _ := tx.FindTasks(BySlot("svcA", 1)); len(ts) != 2 {
			t.Errorf("slot index after restore: %d tasks", len(ts))
		}
	})
}

func TestRestoreRejectsBadStreams(t *testing.T) {
	src := fullStore(t)
	good, _ := io.ReadAll(saveBytes(t, src))
	lines := strings.SplitAfter(string(good), "\n")
	lines = lines[:len(lines)-1] // the split leaves "" after the last newline
	n := len(lines)
	header, trailer := lines[0], lines[n-1]
	objects := lines[1 : n-1]
	join := func(parts ...[]string) string {
		var b strings.Builder
		for _, p := range parts {
			for _, l := range p {
				b.WriteString(l)
			}
		}
		return b.String()
	}
	flip := bytes.Clone(good)
	at := bytes.Index(flip, []byte(`"Name":"web"`)) + len(`"Name":"w`)
	flip[at] = 'X' // still valid JSON: only the checksum tells

	tests := []struct {
		name   string
		stream string
	}{
		{"empty", ""},
		{"not a snapshot", "hello\n"},
		{"json but not a header", `{"a":1}` + "\n"},
		{"future format", `{"apiary_store":9,"index":1}` + "\n"},
		{"header only", header},
		{"torn in the header", header[:5]},
		{"torn in a record", header + objects[0][:len(objects[0])/2]},
		{"torn before the trailer", join([]string{header}, objects)},
		{"torn in the trailer", join([]string{header}, objects) + trailer[:10]},
		{"a record missing", join([]string{header}, objects[1:], []string{trailer})},
		{"a record twice", join([]string{header}, objects, objects[:1], []string{trailer})},
		{"bit flip", string(flip)},
		{"data after the trailer", string(good) + "{}\n"},
		{"garbage record", join([]string{header, "{{{\n"}, objects, []string{trailer})},
	}
	// Streams that pass the framing checks but not the content checks:
	// their trailers are recomputed, as a buggy writer would.
	content := []struct {
		name    string
		records []string
	}{
		{"unknown kind", []string{`{"k":"volume","o":{"ID":"x"}}`}},
		{"empty ID", []string{`{"k":"node","o":{"ID":""}}`}},
		{"no object", []string{`{"k":"node"}`}},
		{"duplicate ID", []string{`{"k":"node","o":{"ID":"x"}}`, `{"k":"node","o":{"ID":"x"}}`}},
		{"duplicate name", []string{`{"k":"node","o":{"ID":"x","Spec":{"Name":"a"}}}`, `{"k":"node","o":{"ID":"y","Spec":{"Name":"a"}}}`}},
		{"version above the index", []string{`{"k":"node","o":{"ID":"x","Meta":{"Version":99}}}`}},
		{"bad field", []string{`{"k":"task","o":{"ID":"x","DesiredState":"dreaming"}}`}},
	}
	for _, c := range content {
		tests = append(tests, struct {
			name   string
			stream string
		}{c.name, handSnapshot(t, 5, c.records)})
	}

	dst := fullStore(t)
	mustUpdate(t, dst, func(tx Tx) error { return tx.CreateNode(node("only-here", "only-here")) })
	before := allObjects(t, dst)
	index := dst.Index()
	w := dst.Watch()
	defer w.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := dst.Restore(strings.NewReader(tt.stream))
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("got %v, want ErrBadSnapshot", err)
			}
			if dst.Index() != index || !reflect.DeepEqual(allObjects(t, dst), before) {
				t.Fatal("a failed restore changed the store")
			}
			t.Logf("%v", err)
		})
	}
	select {
	case ev := <-w.Events():
		t.Fatalf("failed restores published %+v", ev)
	default:
	}
	// The hand-made writer is right: a valid stream passes.
	if err := dst.Restore(strings.NewReader(handSnapshot(t, 5, []string{`{"k":"node","o":{"ID":"x"}}`}))); err != nil {
		t.Fatalf("valid hand-made snapshot: %v", err)
	}
	if dst.Index() != 5 || getNode(dst, "x") == nil || getNode(dst, "only-here") != nil {
		t.Fatal("valid restore did not replace the state")
	}
}

// handSnapshot frames records as Save does, with a correct trailer.
func handSnapshot(t testing.TB, index uint64, records []string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"apiary_store":1,"index":%d}`+"\n", index)
	for _, r := range records {
		b.WriteString(r + "\n")
	}
	// Save's checksum: CRC-32 (IEEE) of everything before the trailer.
	crc := crc32.ChecksumIEEE(b.Bytes())
	fmt.Fprintf(&b, `{"end":true,"objects":%d,"crc32":%d}`+"\n", len(records), crc)
	return b.String()
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestSaveReportsWriteErrors(t *testing.T) {
	s := fullStore(t)
	if err := s.Save(&failWriter{n: 100}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v", err)
	}
}

func TestRestoreOnClosedStore(t *testing.T) {
	snap := saveBytes(t, fullStore(t))
	s := NewMemoryStore(nil)
	s.Close()
	if err := s.Restore(snap); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
}
