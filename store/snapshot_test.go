package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/apiary-io/apiary/internal/wire"
	"github.com/apiary-io/apiary/swarm/api"
)

// Wire types of internal/wire's format, for hand-made encodings.
const (
	wireVarint = 0
	wireBytes  = 2
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
	snap0 := save(t, src)
	snap := bytes.NewReader(snap0)
	size := len(snap0)

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
	if again := save(t, dst); !bytes.Equal(again, snap0) {
		t.Fatalf("re-saved snapshot differs (%d bytes, was %d)", len(again), size)
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

// handSnapshot2 frames records as Save does (format 2), with a correct
// trailer.
func handSnapshot2(index uint64, records ...[]byte) []byte {
	b := binary.AppendUvarint([]byte(snapshotMagic), snapshotFormat)
	b = binary.AppendUvarint(b, index)
	for _, r := range records {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	crc := crc32.ChecksumIEEE(b)
	b = binary.AppendUvarint(binary.AppendUvarint(b, 0), uint64(len(records)))
	return binary.LittleEndian.AppendUint32(b, crc)
}

// record2 is a format-2 record: the kind, then o as wire encodes it (o may
// be raw bytes of an encoding).
func record2(tb testing.TB, kind string, o any) []byte {
	tb.Helper()
	b := append(binary.AppendUvarint(nil, uint64(len(kind))), kind...)
	if raw, ok := o.([]byte); ok {
		return append(b, raw...)
	}
	b, err := wire.Append(b, o)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// wireStrings is the wire encoding of a struct with these string fields
// (name, value, name, value...), to write what no Go value would.
func wireStrings(fields ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(fields); i += 2 {
		b = append(binary.AppendUvarint(b, uint64(len(fields[i]))), fields[i]...)
		b = append(binary.AppendUvarint(append(b, wireBytes), uint64(len(fields[i+1]))), fields[i+1]...)
	}
	return append(b, 0)
}

// splitSnapshot2 cuts a format-2 snapshot into its header, its records
// (each with its length) and its trailer.
func splitSnapshot2(tb testing.TB, b []byte) (header []byte, records [][]byte, trailer []byte) {
	tb.Helper()
	if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
		tb.Fatalf("not a format-2 snapshot: %.20q", b)
	}
	off := len(snapshotMagic)
	for range 2 { // format, index
		_, n := binary.Uvarint(b[off:])
		off += n
	}
	header = b[:off]
	for {
		size, n := binary.Uvarint(b[off:])
		if n <= 0 || size > uint64(len(b)-off-n) {
			tb.Fatalf("bad record length at %d", off)
		}
		if size == 0 {
			return header, records, b[off:]
		}
		records = append(records, b[off:off+n+int(size)])
		off += n + int(size)
	}
}

func TestRestoreRejectsBadStreams(t *testing.T) {
	src := fullStore(t)
	good := save(t, src)
	header, records, trailer := splitSnapshot2(t, good)
	if len(records) != 13+3*numTables {
		t.Fatalf("%d records", len(records))
	}
	join := func(parts ...[]byte) string { return string(bytes.Join(parts, nil)) }
	all := bytes.Join(records, nil)
	flip := bytes.Clone(good)
	at := bytes.Index(flip, []byte("web")) + 1
	flip[at] = 'X' // a valid record still: only the checksum tells
	badCount := bytes.Clone(good)
	badCount[len(badCount)-5]++ // the count: 34 is one byte
	future := binary.AppendUvarint([]byte(snapshotMagic), snapshotFormat+1)
	hugeLength := binary.AppendUvarint(bytes.Clone(header), maxSnapshotRecord+1)
	overflow := append(bytes.Clone(header), bytes.Repeat([]byte{0xff}, 11)...)

	tests := []badStream{
		{"empty", ""},
		{"not a snapshot", "hello\n"},
		{"another magic", "\xB2apiary-stork" + join(good[len(snapshotMagic):])},
		{"future format", join(future, []byte{1}, []byte{0, 0, 0, 0, 0, 0})},
		{"format 1 in binary", join([]byte(snapshotMagic), []byte{1, 1}, trailer)},
		{"header only", join(header)},
		{"torn in the magic", join(header[:5])},
		{"torn in a record", join(header, records[0][:len(records[0])/2])},
		{"torn before the trailer", join(header, all)},
		{"torn in the trailer", join(header, all, trailer[:3])},
		{"a record missing", join(header, bytes.Join(records[1:], nil), trailer)},
		{"a record twice", join(header, all, records[0], trailer)},
		{"records swapped", join(header, records[1], records[0], bytes.Join(records[2:], nil), trailer)},
		{"bit flip", string(flip)},
		{"wrong count", string(badCount)},
		{"data after the trailer", join(good, []byte{0})},
		{"a record longer than the bound", join(hugeLength, all)},
		{"a record length that overflows", string(overflow)},
		{"garbage record", join(header, []byte{3, 1, 2, 3}, all, trailer)},
	}
	// Streams that pass the framing checks but not the content checks:
	// their trailers are computed, as a buggy writer would.
	content := []struct {
		name    string
		records [][]byte
	}{
		{"unknown kind", [][]byte{record2(t, "volume", &api.Node{ID: "x"})}},
		{"no kind", [][]byte{record2(t, "", &api.Node{ID: "x"})}},
		{"kind longer than its record", [][]byte{{100, 'n', 'o', 'd', 'e'}}},
		{"kind without an object", [][]byte{record2(t, "node", []byte{})}},
		{"empty ID", [][]byte{record2(t, "node", &api.Node{})}},
		{"duplicate ID", [][]byte{record2(t, "node", &api.Node{ID: "x"}), record2(t, "node", &api.Node{ID: "x"})}},
		{"duplicate name", [][]byte{record2(t, "node", node("x", "a")), record2(t, "node", node("y", "a"))}},
		{"version above the index", [][]byte{record2(t, "node", &api.Node{ID: "x", Meta: api.Meta{Version: 99}})}},
		{"bad task state", [][]byte{record2(t, "task", wireStrings("ID", "x", "DesiredState", "dreaming"))}},
		{"field of another wire type", [][]byte{record2(t, "node", []byte{2, 'I', 'D', wireVarint, 7, 0})}},
		{"object cut short", [][]byte{record2(t, "node", wireStrings("ID", "x")[:4])}},
		{"bytes after the object", [][]byte{append(record2(t, "node", &api.Node{ID: "x"}), 0)}},
	}
	for _, c := range content {
		tests = append(tests, badStream{c.name, string(handSnapshot2(5, c.records...))})
	}

	dst := refuseAll(t, tests)
	// The hand-made writer is right: a valid stream passes.
	if err := dst.Restore(bytes.NewReader(handSnapshot2(5, record2(t, "node", &api.Node{ID: "x"})))); err != nil {
		t.Fatalf("valid hand-made snapshot: %v", err)
	}
	if dst.Index() != 5 || getNode(dst, "x") == nil || getNode(dst, "only-here") != nil {
		t.Fatal("valid restore did not replace the state")
	}
}

// Format 2 is pinned: testdata/format2/final.snap is what Save wrote, when
// format 2 was made, of the state of testdata/format1 (the format-1 log and
// snapshot). Save writes those bytes still, and they restore to that
// state. Other bytes are another format, with a number of its own, and
// this file stays to be read, as format 1's does.
func TestFormat2IsPinned(t *testing.T) {
	want, err := os.ReadFile("testdata/format2/final.snap")
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile("testdata/format1/final.snap")
	if err != nil {
		t.Fatal(err)
	}
	s := restored(t, old)
	if got := save(t, s); !bytes.Equal(got, want) {
		t.Fatalf("Save writes other bytes than format 2 did:\n got %q\nwant %q", got, want)
	}
	r := restored(t, want)
	if r.Index() != s.Index() || !reflect.DeepEqual(allObjects(t, r), allObjects(t, s)) {
		t.Fatal("the format-2 snapshot restores to another state")
	}
}

type badStream struct{ name, stream string }

// refuseAll restores each stream over a store holding a state: each is
// refused with ErrBadSnapshot, changes nothing and publishes nothing. It
// returns the store, which holds a node "only-here".
func refuseAll(t *testing.T, tests []badStream) *MemoryStore {
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
	return dst
}

// Every cut of a snapshot and every change of one of its bytes is refused,
// and leaves the store as it was.
func TestRestoreRefusesEveryCutAndEveryByteChanged(t *testing.T) {
	src := NewMemoryStore(nil)
	defer src.Close()
	fixture(t, src)
	good := save(t, src)
	dst := fullStore(t)
	before := save(t, dst)
	refused := func(what string, b []byte) {
		t.Helper()
		if err := dst.Restore(bytes.NewReader(b)); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("%s: got %v, want ErrBadSnapshot", what, err)
		}
	}
	for i := range len(good) {
		refused(fmt.Sprintf("cut at %d of %d", i, len(good)), good[:i])
		for _, x := range []byte{0x01, 0x80} { // a bit of a value, a varint's continuation
			b := bytes.Clone(good)
			b[i] ^= x
			refused(fmt.Sprintf("byte %d of %d ^ %#x", i, len(good), x), b)
		}
	}
	if !bytes.Equal(save(t, dst), before) {
		t.Fatal("refused snapshots changed the store")
	}
	t.Logf("%d bytes, every cut and %d changed bytes refused", len(good), 2*len(good))
}

// A record length near the bound in a stream that ends soon after makes
// Restore allocate what the stream holds, not what the length says.
func TestRestoreAllocatesWhatTheStreamHolds(t *testing.T) {
	header, _, _ := splitSnapshot2(t, fixtureSnapshot(t))
	stream := append(binary.AppendUvarint(bytes.Clone(header), maxSnapshotRecord), make([]byte, 1000)...)
	s := NewMemoryStore(nil)
	defer s.Close()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	err := s.Restore(bytes.NewReader(stream))
	runtime.ReadMemStats(&m1)
	if !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("got %v, want ErrBadSnapshot", err)
	}
	if got := m1.TotalAlloc - m0.TotalAlloc; got > 4<<20 {
		t.Fatalf("a record of %d bytes announced in a stream of %d allocated %d bytes", maxSnapshotRecord, len(stream), got)
	}
}

// Two stores with the same state write the same bytes, however they came
// by it and however Go orders their maps (objects here have maps of many
// entries): Save sorts them.
func TestSaveIsDeterministic(t *testing.T) {
	src := NewMemoryStore(nil)
	defer src.Close()
	mustUpdate(t, src, func(tx Tx) error {
		for i := range 3 {
			for _, o := range filled(i * 1000) {
				growMaps(reflect.ValueOf(o).Elem(), 12)
				if err := createObject(tx, o); err != nil {
					return err
				}
			}
		}
		return nil
	})
	want := save(t, src)
	for i := range 5 {
		if got := save(t, src); !bytes.Equal(got, want) {
			t.Fatalf("save %d of one store wrote other bytes", i+2)
		}
	}
	// Another store: restored from format 1, whose records are in reverse
	// order, and from format 2.
	lines := bytes.SplitAfter(saveFormat1(t, src), []byte("\n"))
	lines = lines[:len(lines)-1]
	var reversed [][]byte
	for i := len(lines) - 2; i >= 1; i-- {
		reversed = append(reversed, bytes.TrimSuffix(lines[i], []byte("\n")))
	}
	var old bytes.Buffer
	for _, r := range reversed {
		old.Write(r)
		old.WriteByte('\n')
	}
	byJSON := restored(t, []byte(handSnapshot(t, src.Index(), strings.Split(strings.TrimSuffix(old.String(), "\n"), "\n"))))
	byBinary := restored(t, want)
	for name, s := range map[string]*MemoryStore{"restored from format 1": byJSON, "restored from format 2": byBinary} {
		if !reflect.DeepEqual(allObjects(t, s), allObjects(t, src)) {
			t.Fatalf("%s: another state", name)
		}
		if got := save(t, s); !bytes.Equal(got, want) {
			t.Fatalf("%s: the same state writes other bytes", name)
		}
	}
}

// growMaps gives every map reachable from v at least n entries.
func growMaps(v reflect.Value, n int) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			growMaps(v.Elem(), n)
		}
	case reflect.Slice:
		for i := range v.Len() {
			growMaps(v.Index(i), n)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				growMaps(v.Field(i), n)
			}
		}
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; v.Len() < n; i++ {
			e := reflect.New(v.Type().Elem()).Elem()
			switch e.Kind() {
			case reflect.String:
				e.SetString(fmt.Sprintf("value %d", i))
			case reflect.Slice:
				e.SetBytes([]byte{byte(i)})
			}
			v.SetMapIndex(reflect.ValueOf(fmt.Sprintf("key-%d", i)).Convert(v.Type().Key()), e)
		}
	}
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

// A reader that fails is reported as itself, not as a bad snapshot, and
// changes nothing.
func TestRestoreReportsReadErrors(t *testing.T) {
	good := save(t, fullStore(t))
	dst := fullStore(t)
	before := save(t, dst)
	for _, at := range []int{0, 5, len(snapshotMagic) + 2, len(good) / 2, len(good) - 2, len(good)} {
		err := dst.Restore(io.MultiReader(bytes.NewReader(good[:at]), iotest.ErrReader(errors.New("disk on fire"))))
		if err == nil || errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("failing at %d: got %v", at, err)
		}
		t.Logf("at %d: %v", at, err)
	}
	if !bytes.Equal(save(t, dst), before) {
		t.Fatal("failed reads changed the store")
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
