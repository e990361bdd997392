package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// encodeFormat1 is the encoder of format 1 (JSON) as the store had it
// before format 2, kept to make old entries in tests.
func encodeFormat1(actions []action, nonce uint64) ([]byte, error) {
	w := wireProposal{Format: proposalFormat, Nonce: nonce, Actions: make([]wireAction, len(actions))}
	for i, a := range actions {
		w.Actions[i] = wireAction{Op: a.op, Kind: a.kind, Base: a.base}
		if a.op == ActionDelete {
			w.Actions[i].ID = a.id
			continue
		}
		b, err := json.Marshal(a.obj)
		if err != nil {
			return nil, err
		}
		w.Actions[i].Object = b
	}
	return json.Marshal(w)
}

// Entries written by the store before format 2 (testdata/format1: the
// log of seedEntries as that version wrote it, and the snapshot of the
// state they made, written by that version) still apply, to the same
// state.
func TestFormat1EntriesStillApply(t *testing.T) {
	b, err := os.ReadFile("testdata/format1/entries.json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/format1/final.snap")
	if err != nil {
		t.Fatal(err)
	}
	s := NewMemoryStore(nil)
	defer s.Close()
	for i, e := range entries {
		if e[0] != '{' {
			t.Fatalf("entry %d is not format 1", i)
		}
		if err := s.Apply(uint64(i+1), []byte(e)); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	// The snapshot that version wrote restores to the state the log
	// makes (the same objects, so the same format-2 bytes), and takes new
	// entries, now binary, on top.
	r := restored(t, want)
	if got := saveFormat1(t, s); !bytes.Equal(got, want) {
		t.Fatalf("the old log makes another state:\n got %s\nwant %s", got, want)
	}
	if !bytes.Equal(save(t, r), save(t, s)) || !reflect.DeepEqual(allObjects(t, r), allObjects(t, s)) {
		t.Fatal("the old snapshot restores to another state than the old log makes")
	}
	again := seedEntries(t)
	if again[0][0] != formatBinary {
		t.Fatalf("new entries are not binary: %.20q", again[0])
	}
	if err := r.Apply(r.Index()+1, again[len(again)-1]); err == nil {
		t.Fatal("an entry already applied in the old log applied again") // it deletes svcB, gone
	}
}

// saveFormat1 is Save as it was before format 2: JSON lines. Kept to make
// old snapshots in tests and to compare the formats (BenchmarkSnapshot).
func saveFormat1(tb testing.TB, s *MemoryStore) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := writeFormat1(&buf, s.current(), s.Index()); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func writeFormat1(w io.Writer, db *dbState, index uint64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	crc := crc32.NewIEEE()
	out := io.MultiWriter(bw, crc)
	hdr, err := json.Marshal(snapshotHeader{Format: snapshotFormat1, Index: index})
	if err != nil {
		return err
	}
	if _, err := out.Write(append(hdr, '\n')); err != nil {
		return err
	}
	var n uint64
	var buf bytes.Buffer
	for _, ki := range kindList {
		var err error
		db.find(ki, selector{all: true}, func(o api.Object) bool {
			var obj []byte
			if obj, err = json.Marshal(o); err != nil {
				return false
			}
			buf.Reset()
			buf.WriteString(`{"k":"` + string(ki.kind) + `","o":`)
			buf.Write(obj)
			buf.WriteString("}\n")
			_, err = out.Write(buf.Bytes())
			n++
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	trailer, err := json.Marshal(snapshotRecord{End: true, Objects: n, CRC: crc.Sum32()})
	if err != nil {
		return err
	}
	if _, err := bw.Write(append(trailer, '\n')); err != nil {
		return err
	}
	return bw.Flush()
}

// A format-1 snapshot of every kind with every field set
// (testdata/format1/full.snap: fullStore, written by the format-1 writer
// before format 2) restores every object as that version wrote it, and
// the state it gives round-trips through format 2 unchanged.
func TestFormat1SnapshotsStillRestore(t *testing.T) {
	old, err := os.ReadFile("testdata/format1/full.snap")
	if err != nil {
		t.Fatal(err)
	}
	s := restored(t, old)
	got := allObjects(t, s)
	if len(got) != 13+3*numTables {
		t.Fatalf("restored %d objects", len(got))
	}
	// Each object is the one its line holds.
	lines := bytes.Split(bytes.TrimSuffix(old, []byte("\n")), []byte("\n"))
	for _, line := range lines[1 : len(lines)-1] {
		var rec snapshotRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		ki, err := lookupKind(rec.Kind)
		if err != nil {
			t.Fatal(err)
		}
		o := ki.newObject()
		if err := json.Unmarshal(rec.Object, o); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[key{rec.Kind, o.GetID()}], o) {
			t.Errorf("%s %s restored as\n%+v\nwant %+v", rec.Kind, o.GetID(), got[key{rec.Kind, o.GetID()}], o)
		}
	}
	// The filled objects kept every field but the store's bookkeeping.
	for i := range 3 {
		for _, o := range filled(i * 1000) {
			r := got[key{o.Kind(), o.GetID()}]
			if r == nil {
				t.Fatalf("%s %s not restored", o.Kind(), o.GetID())
			}
			o.SetMeta(r.GetMeta())
			if !reflect.DeepEqual(r, o) {
				t.Errorf("%s %s restored as\n%+v\nwant %+v", o.Kind(), o.GetID(), r, o)
			}
		}
	}
	again := restored(t, save(t, s))
	if again.Index() != s.Index() || !reflect.DeepEqual(allObjects(t, again), got) {
		t.Fatal("the state of a format-1 snapshot changes through format 2")
	}
	if !bytes.Equal(saveFormat1(t, again), old) {
		t.Fatal("the format-1 writer kept in the tests no longer writes what format 1 wrote")
	}
}

// Format-1 streams are validated as they were: every corruption is refused
// with ErrBadSnapshot and leaves the store as it was.
func TestRestoreRejectsBadFormat1Streams(t *testing.T) {
	good := saveFormat1(t, fullStore(t))
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

	tests := []badStream{
		{"empty", ""},
		{"not a snapshot", "hello\n"},
		{"json but not a header", `{"a":1}` + "\n"},
		{"future format", `{"apiary_store":9,"index":1}` + "\n"},
		{"format 2 in JSON", `{"apiary_store":2,"index":1}` + "\n"},
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
		tests = append(tests, badStream{c.name, handSnapshot(t, 5, c.records)})
	}

	dst := refuseAll(t, tests)
	// The hand-made writer is right: a valid stream passes.
	if err := dst.Restore(strings.NewReader(handSnapshot(t, 5, []string{`{"k":"node","o":{"ID":"x"}}`}))); err != nil {
		t.Fatalf("valid hand-made snapshot: %v", err)
	}
	if dst.Index() != 5 || getNode(dst, "x") == nil || getNode(dst, "only-here") != nil {
		t.Fatal("valid restore did not replace the state")
	}
}

// handSnapshot frames records as format 1 did, with a correct trailer.
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

// A transaction decodes to the same actions from either format, and a
// nonce is found only in the binary one (the proposer writes no other).
func TestFormatsDecodeAlike(t *testing.T) {
	var actions []action
	for i, o := range filled(0) {
		actions = append(actions,
			action{op: ActionCreate, kind: o.Kind(), id: o.GetID(), obj: o},
			action{op: ActionUpdate, kind: o.Kind(), id: o.GetID(), obj: o, base: uint64(i + 7)},
			action{op: ActionDelete, kind: o.Kind(), id: `id "with" <odd> \ chars`, base: uint64(i + 9)},
			action{op: ActionDelete, kind: o.Kind(), id: "x"})
	}
	for _, nonce := range []uint64{0, 1, 18446744073709551615} {
		old, err := encodeFormat1(actions, nonce)
		if err != nil {
			t.Fatal(err)
		}
		bin, err := encodeProposal(actions, nonce)
		if err != nil {
			t.Fatal(err)
		}
		a1, err := decodeActions(old)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := decodeActions(bin)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(a2, actions) {
			t.Fatalf("nonce %d: the formats decode differently", nonce)
		}
		if n := proposalNonce(bin); n != nonce {
			t.Errorf("proposalNonce = %d, want %d", n, nonce)
		}
		if n := proposalNonce(old); n != 0 {
			t.Errorf("proposalNonce of format 1 = %d, want 0", n)
		}
		if len(bin) >= len(old) {
			t.Errorf("binary entry of %d bytes, JSON %d", len(bin), len(old))
		}
		t.Logf("%d actions: %d bytes, JSON %d", len(actions), len(bin), len(old))
	}
	if n := proposalNonce([]byte{formatBinary, 1, 2, 3}); n != 0 {
		t.Errorf("a cut nonce reads %d, want 0", n)
	}
}

func TestDecodeRejectsBadBinaryProposals(t *testing.T) {
	good, err := encodeProposal([]action{{op: ActionCreate, kind: "node", id: "n", obj: node("n", "x")}, {op: ActionDelete, kind: "task", id: "t", base: 3}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeActions(good); err != nil {
		t.Fatal(err)
	}
	// Every cut is refused, and so is anything after the end.
	for i := range len(good) {
		if _, err := decodeActions(good[:i]); err == nil {
			t.Errorf("cut at %d of %d: decoded", i, len(good))
		}
	}
	if _, err := decodeActions(append(good, 0)); err == nil {
		t.Error("a byte after the last action: decoded")
	}
	head := func(n int) []byte {
		b := append([]byte{formatBinary}, make([]byte, 8)...)
		return append(b, byte(n))
	}
	for name, data := range map[string][]byte{
		"too many actions": append(head(100), 1, 4, 'n', 'o', 'd', 'e', 0, 0),
		"unknown kind":     append(head(1), 3, 6, 'v', 'o', 'l', 'u', 'm', 'e', 0, 1, 'x'),
		"bad op":           append(head(1), 9, 4, 'n', 'o', 'd', 'e', 0, 1, 'x'),
		"empty ID":         append(head(1), 3, 4, 'n', 'o', 'd', 'e', 0, 0),
		"object no ID":     append(head(1), 1, 4, 'n', 'o', 'd', 'e', 0, 0),
		"long kind":        append(head(1), 1, 40, 'n', 'o', 'd', 'e', 0, 0),
		"bad task state":   append(append(head(1), 1, 4, 't', 'a', 's', 'k', 0, 2, 'I', 'D', 2, 1, 't'), append([]byte{12}, append([]byte("DesiredState"), 2, 8, 's', 'l', 'e', 'e', 'p', 'i', 'n', 'g', 0)...)...),
	} {
		_, err := decodeActions(data)
		t.Logf("%s: %v", name, err)
		if err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// BenchmarkDecodeProposal is what a follower pays per write: one create of
// a filled service, in each format.
//
//	go test -run '^$' -bench DecodeProposal ./store/
func BenchmarkDecodeProposal(b *testing.B) {
	svc := filled(3)[3]
	actions := []action{{op: ActionCreate, kind: svc.Kind(), id: svc.GetID(), obj: svc}}
	old, _ := encodeFormat1(actions, 1)
	bin, _ := encodeProposal(actions, 1)
	for name, data := range map[string][]byte{"format=1": old, "format=2": bin} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.ReportMetric(float64(len(data)), "bytes")
			for b.Loop() {
				if _, err := decodeActions(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("encode/format=2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodeProposal(actions, 1)
		}
	})
}
