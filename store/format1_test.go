package store

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
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
	if got := save(t, s); !bytes.Equal(got, want) {
		t.Fatalf("the old log makes another state:\n got %s\nwant %s", got, want)
	}
	// The snapshot that version wrote restores, and takes new entries,
	// now binary, on top.
	r := restored(t, want)
	again := seedEntries(t)
	if again[0][0] != formatBinary {
		t.Fatalf("new entries are not binary: %.20q", again[0])
	}
	if err := r.Apply(r.Index()+1, again[len(again)-1]); err == nil {
		t.Fatal("an entry already applied in the old log applied again") // it deletes svcB, gone
	}
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
