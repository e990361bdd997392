package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// Fuzz targets of the store's two decoders of replicated data: raft
// entries (Apply, what every manager does with a committed proposal) and
// snapshots (Restore, what a manager that fell behind installs). Both come
// from another manager, and a replica must neither crash on them nor end in
// a state another replica or its own snapshot would not reproduce.

// FuzzApply applies an entry to two replicas of one state. They end equal;
// a refused entry changes no object; an accepted one re-encodes to an
// entry with the same effect, leaves indexes equal to indexes rebuilt from
// scratch, and a state whose snapshot restores.
func FuzzApply(f *testing.F) {
	base := fixtureSnapshot(f)
	for _, e := range seedEntries(f) {
		f.Add(e)
	}
	for _, s := range []string{
		`{"v":1,"a":[]}`,
		`{"v":1,"a":[{"o":1,"k":"node","x":{"ID":"n9","Spec":{"Name":"alpha"}}}]}`,
		`{"v":1,"a":[{"o":2,"k":"task","b":1,"x":{"ID":"t1","ServiceID":"svcB","Slot":7,"DesiredState":"remove"}}]}`,
		`{"v":1,"a":[{"o":3,"k":"network","i":"net1","b":1},{"o":1,"k":"network","x":{"ID":"net1","Spec":{"Name":"back"}}}]}`,
		`{"v":1,"a":[{"o":1,"k":"task","x":{"ID":"t9","ServiceID":"svcA","Slot":1,"Spec":{"Networks":[{"Target":"net1"},{"Target":""}]}}},{"o":2,"k":"task","x":{"ID":"t9","Slot":2}}]}`,
		`{"v":1,"a":[{"o":1,"k":"node","i":"other","x":{"ID":"n9"}}]}`,
		`{"v":1,"a":[{"o":2,"k":"node","b":1,"x":{"ID":"n1","Meta":{"Version":99}}}]}`,
		`{"v":1,"a":[{"o":1,"k":"secret","x":{"ID":"s"}}]}`,
		`{"v":2,"a":[]}`, `{"v":1,"a":[{"o":9,"k":"node","i":"n1"}]}`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := restored(t, base), restored(t, base)
		index := a.Index() + 1
		errA, errB := a.Apply(index, data), b.Apply(index, data)
		if errString(errA) != errString(errB) {
			t.Fatalf("replicas disagree on the entry: %v / %v", errA, errB)
		}
		snapA, snapB := save(t, a), save(t, b)
		if !bytes.Equal(snapA, snapB) {
			t.Fatal("replicas that applied the same entry differ")
		}
		if a.Index() != index {
			t.Fatalf("index %d after applying entry %d", a.Index(), index)
		}
		if errA != nil {
			if !bytes.Equal(objectRecords(t, snapA), objectRecords(t, base)) {
				t.Fatalf("a refused entry (%v) changed the state", errA)
			}
			return
		}
		actions, err := decodeActions(data)
		if err != nil {
			t.Fatalf("Apply accepted an entry that does not decode: %v", err)
		}
		again, err := encodeActions(actions)
		if err != nil {
			t.Fatalf("decoded actions do not encode: %v", err)
		}
		c := restored(t, base)
		if err := c.Apply(index, again); err != nil {
			t.Fatalf("the re-encoded entry is refused: %v\n%s", err, again)
		}
		if !bytes.Equal(save(t, c), snapA) {
			t.Fatalf("the re-encoded entry has another effect:\n%s\n%s", data, again)
		}
		d := restored(t, snapA)
		checkSameIndexes(t, a.current(), d.current())
	})
}

// FuzzRestore restores a stream over a store that holds a state: either
// the input as it is, or (framed) the input's records between a header
// with the given index and a trailer with their true count and checksum,
// so that the fuzzer reaches the records' own checks. Framed input that
// begins with 0xB2 is format 2, the rest of it uvarint-length-prefixed
// records (a length past the end takes what is left); other framed input
// is format 1, its lines the records. A refused stream is an
// ErrBadSnapshot and changes nothing; an accepted one gives a state whose
// own snapshot restores to the same bytes and that takes new writes.
func FuzzRestore(f *testing.F) {
	base := fixtureSnapshot(f)
	f.Add(uint64(0), base, false)
	f.Add(uint64(0), save(f, fullStore(f)), false)
	f.Add(uint64(0), base[:len(base)/2], false)
	f.Add(uint64(0), []byte(`{"apiary_store":1,"index":4}`+"\n"+`{"end":true,"objects":0,"crc32":1}`+"\n"), false)
	f.Add(uint64(0), saveFormat1(f, restored(f, base)), false)
	f.Add(uint64(0), handSnapshot2(4), false)
	for _, c := range []struct {
		index   uint64
		records [][]byte
	}{
		{3, [][]byte{record2(f, "node", &api.Node{ID: "n1", Meta: api.Meta{Version: 2}, Spec: api.NodeSpec{Annotations: api.Annotations{Name: "a", Labels: map[string]string{"x": "1", "y": "2"}}, Role: api.NodeRoleManager}}),
			record2(f, "task", &api.Task{ID: "t1", Name: "web.1", ServiceID: "s", Slot: 1, NodeID: "n1", DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: api.TaskStateRunning},
				Spec: api.TaskSpec{Networks: []api.NetworkAttachmentConfig{{Target: "net"}}}}),
			record2(f, "service", &api.Service{ID: "s", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "web"}, TaskTemplate: api.TaskSpec{Networks: []api.NetworkAttachmentConfig{{Target: "net"}}}},
				Endpoint: &api.Endpoint{VirtualIPs: []api.EndpointVirtualIP{{NetworkID: "net"}}}})}},
		{1, [][]byte{record2(f, "node", &api.Node{ID: "n1", Meta: api.Meta{Version: 2}})}},
		{5, [][]byte{record2(f, "node", node("n1", "a")), record2(f, "node", node("n2", "a"))}},
		{5, [][]byte{record2(f, "service", &api.Service{ID: "s"}), record2(f, "service", &api.Service{ID: "s"})}},
		{5, [][]byte{record2(f, "secret", &api.Secret{ID: "s"})}},
		{5, [][]byte{record2(f, "node", []byte{})}},
		{5, [][]byte{record2(f, "volume", &api.Node{ID: "v"})}},
		{5, [][]byte{record2(f, "task", wireStrings("ID", "t", "DesiredState", "dreaming"))}},
		{5, [][]byte{append(record2(f, "node", &api.Node{ID: "n"}), 0)}},
		{0, nil},
	} {
		framed := []byte{snapshotMagic[0]}
		for _, r := range c.records {
			framed = append(binary.AppendUvarint(framed, uint64(len(r))), r...)
		}
		f.Add(c.index, framed, true)
	}
	for _, c := range []struct {
		index   uint64
		records []string
	}{
		{3, []string{`{"k":"node","o":{"ID":"n1","Meta":{"Version":2},"Spec":{"Name":"a","Role":"manager"}}}`,
			`{"k":"task","o":{"ID":"t1","Name":"web.1","ServiceID":"s","Slot":1,"NodeID":"n1","DesiredState":"running","Status":{"State":"running"},"Spec":{"Networks":[{"Target":"net"}]}}}`,
			`{"k":"service","o":{"ID":"s","Spec":{"Name":"web","TaskTemplate":{"Networks":[{"Target":"net"}]}},"Endpoint":{"VirtualIPs":[{"NetworkID":"net"}]}}}`}},
		{1, []string{`{"k":"node","o":{"ID":"n1","Meta":{"Version":2}}}`}},
		{5, []string{`{"k":"node","o":{"ID":"n1","Spec":{"Name":"a"}}}`, `{"k":"node","o":{"ID":"n2","Spec":{"Name":"a"}}}`}},
		{5, []string{`{"k":"service","o":{"ID":"s"}}`, `{"k":"service","o":{"ID":"s"}}`}},
		{5, []string{`{"k":"secret","o":{"ID":"s"}}`}},
		{5, []string{`{"k":"node"}`}},
		{5, []string{`{"k":"task","o":{"ID":""}}`}},
		{0, nil},
	} {
		f.Add(c.index, []byte(strings.Join(c.records, "\n")), true)
	}
	f.Fuzz(func(t *testing.T, index uint64, data []byte, framed bool) {
		switch {
		case framed && len(data) > 0 && data[0] == snapshotMagic[0]:
			var records [][]byte
			for d := data[1:]; len(d) > 0; {
				size, n := binary.Uvarint(d)
				if n <= 0 {
					break
				}
				d = d[n:]
				size = min(size, uint64(len(d)))
				records = append(records, d[:size])
				d = d[size:]
			}
			data = handSnapshot2(index, records...)
		case framed:
			var records []string
			if len(data) > 0 {
				records = strings.Split(string(data), "\n")
			}
			data = []byte(handSnapshot(t, index, records))
		}
		s := restored(t, base)
		err := s.Restore(bytes.NewReader(data))
		after := save(t, s)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore: %v is not ErrBadSnapshot", err)
			}
			if !bytes.Equal(after, base) {
				t.Fatalf("a refused snapshot (%v) changed the store", err)
			}
			return
		}
		checkVersions(t, s)
		c := restored(t, after)
		if got := save(t, c); !bytes.Equal(got, after) {
			t.Fatalf("the restored state's snapshot restores differently:\n%s\n%s", after, got)
		}
		checkSameIndexes(t, s.current(), c.current())
		last := s.Index()
		id := "fuzz-new-node"
		for getNode(s, id) != nil {
			id += "+"
		}
		if err := s.Update(func(tx Tx) error { return tx.CreateNode(node(id, "")) }); err != nil {
			t.Fatalf("the restored store refuses a new node: %v", err)
		}
		if s.Index() != last+1 {
			t.Fatalf("index %d after a write at %d", s.Index(), last)
		}
	})
}

// fixtureSnapshot is the snapshot of the fixture state both targets start
// from.
func fixtureSnapshot(tb testing.TB) []byte {
	s := NewMemoryStore(nil)
	defer s.Close()
	fixture(tb, s)
	return save(tb, s)
}

// seedEntries are the entries real transactions make: through a replicated
// store, over the fixture.
func seedEntries(tb testing.TB) [][]byte {
	fr, rs := newReplicated(tb, 1)
	s := rs[0]
	fixture(tb, s)
	mustUpdate(tb, s, func(tx Tx) error {
		n := tx.GetNode("n2")
		n.Spec.Availability = api.NodeAvailabilityDrain
		if err := tx.UpdateNode(n); err != nil {
			return err
		}
		t := tx.GetTask("t3")
		t.Status.State = api.TaskStateRunning
		t.NodeID = "n3"
		return tx.UpdateTask(t)
	})
	mustUpdate(tb, s, func(tx Tx) error {
		for i := range 3 {
			if err := tx.CreateTask(&api.Task{ID: fmt.Sprintf("new%d", i), Name: "web.3", ServiceID: "svcA", Slot: 3,
				Spec: api.TaskSpec{Networks: []api.NetworkAttachmentConfig{{Target: "net2"}}}}); err != nil {
				return err
			}
		}
		return tx.DeleteTask("t2")
	})
	mustUpdate(tb, s, func(tx Tx) error {
		if err := tx.DeleteService("svcB"); err != nil {
			return err
		}
		svc := tx.GetService("svcA")
		svc.Spec.Name = "db"
		return tx.UpdateService(svc)
	})
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return fr.entries
}

// restored is a new store holding snapshot.
func restored(tb testing.TB, snapshot []byte) *MemoryStore {
	tb.Helper()
	s := NewMemoryStore(nil)
	tb.Cleanup(s.Close)
	if err := s.Restore(bytes.NewReader(snapshot)); err != nil {
		tb.Fatalf("restore: %v", err)
	}
	return s
}

func save(tb testing.TB, s *MemoryStore) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := s.Save(&buf); err != nil {
		tb.Fatalf("save: %v", err)
	}
	return buf.Bytes()
}

// objectRecords is a snapshot without its header and trailer, which hold
// the index.
func objectRecords(tb testing.TB, snap []byte) []byte {
	_, records, _ := splitSnapshot2(tb, snap)
	return bytes.Join(records, nil)
}

// checkSameIndexes compares every index of two states entry by entry: the
// indexes a store kept up to date write by write must be those a restore
// builds from the objects alone.
func checkSameIndexes(t *testing.T, got, want *dbState) {
	t.Helper()
	type row struct {
		s  string
		n  uint64
		id string
	}
	for _, ki := range kindList {
		for i := 1; i < len(ki.indexes); i++ {
			var rows [2][]row
			for j, d := range []*dbState{got, want} {
				d.tables[ki.tab].indexes[i].Scan(func(e entry) bool {
					rows[j] = append(rows[j], row{e.s, e.n, e.id})
					return true
				})
			}
			if !reflect.DeepEqual(rows[0], rows[1]) {
				t.Fatalf("%s index %s differs from the one rebuilt from its objects:\n%v\n%v", ki.kind, ki.indexes[i].name, rows[0], rows[1])
			}
		}
	}
}

// checkVersions: no object is newer than the store's index.
func checkVersions(t *testing.T, s *MemoryStore) {
	t.Helper()
	for k, o := range allObjects(t, s) {
		if v := o.GetMeta().Version; v > s.Index() {
			t.Fatalf("%s %s has version %d above the index %d", k.kind, k.id, v, s.Index())
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimSpace(err.Error())
}
