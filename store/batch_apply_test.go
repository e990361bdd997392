package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// randomEntries makes n entries of one to four actions on a few services
// and nodes, a good part of them refused: names taken, published ports
// held (refused only after the other indexes followed), versions stale,
// objects missing or already there, and transactions refused after their
// earlier actions were written. Versions are read from a model store the
// entries are applied to as they are made, so most updates and deletes
// name the version they replace.
func randomEntries(r *rand.Rand, n int) [][]byte {
	model := NewMemoryStore(nil)
	defer model.Close()
	base := func(kind api.Kind, id string, i int) uint64 {
		var v uint64
		model.View(func(tx ReadTx) {
			if o := getObject(tx, kind, id); o != nil {
				v = o.GetMeta().Version
			}
		})
		if r.IntN(4) == 0 {
			return uint64(r.IntN(i + 1))
		}
		return v
	}
	var out [][]byte
	for i := range n {
		var actions []action
		for range 1 + r.IntN(2) + r.IntN(2) {
			id := fmt.Sprintf("s%d", r.IntN(4))
			switch r.IntN(7) {
			case 0, 1, 2:
				name := "name-" + id
				if r.IntN(5) == 0 {
					name = fmt.Sprintf("name-s%d", r.IntN(4)) // maybe another's
				}
				svc := &api.Service{ID: id, Spec: api.ServiceSpec{Annotations: api.Annotations{
					Name: name, Labels: map[string]string{"e": fmt.Sprint(i)}}}}
				if r.IntN(3) == 0 {
					port := uint32(8080 + r.IntN(2))
					svc.Spec.EndpointSpec = &api.EndpointSpec{Ports: []api.PortConfig{{TargetPort: 80}}}
					svc.Endpoint = &api.Endpoint{Ports: []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: port}}}
				}
				// Mostly the operation that fits, sometimes not.
				op := ActionCreate
				if (base(api.KindService, id, i) != 0) != (r.IntN(6) == 0) {
					op = ActionUpdate
				}
				actions = append(actions, action{op: op, kind: api.KindService, id: id, obj: svc, base: base(api.KindService, id, i)})
			case 3, 4:
				actions = append(actions, action{op: ActionDelete, kind: api.KindService, id: id, base: base(api.KindService, id, i)})
			case 5:
				nid := fmt.Sprintf("n%d", r.IntN(3))
				actions = append(actions, action{op: ActionCreate, kind: api.KindNode, id: nid, obj: node(nid, fmt.Sprintf("node%d", r.IntN(3)))})
			case 6:
				nid := fmt.Sprintf("n%d", r.IntN(3))
				actions = append(actions, action{op: ActionDelete, kind: api.KindNode, id: nid, base: base(api.KindNode, nid, i)})
			}
		}
		data, err := encodeActions(actions)
		if err != nil {
			panic(err)
		}
		_ = model.Apply(uint64(i+1), data)
		out = append(out, data)
	}
	return out
}

// ApplyBatch is Apply of each entry in order, whatever the batches: the
// same errors, the same state, the same events, and indexes equal to
// indexes built from scratch; a refused transaction in a batch leaves no
// trace, whether it was refused before its secondary indexes followed or
// after (a port held).
func TestApplyBatchIsApplyInOrder(t *testing.T) {
	refused := 0
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 14))
		entries := randomEntries(r, 60)
		one, batched := NewMemoryStore(nil), NewMemoryStore(nil)
		w1, w2 := one.Watch(), batched.Watch()
		var errsOne []string
		for i, e := range entries {
			err := one.Apply(uint64(i+1), e)
			errsOne = append(errsOne, errString(err))
			if err != nil {
				refused++
			}
		}
		var errsBatched []string
		for i := 0; i < len(entries); {
			n := 1 + r.IntN(12)
			n = min(n, len(entries)-i)
			var indexes []uint64
			for j := range n {
				indexes = append(indexes, uint64(i+j+1))
			}
			for _, err := range batched.ApplyBatch(indexes, entries[i:i+n]) {
				errsBatched = append(errsBatched, errString(err))
			}
			i += n
		}
		for i := range errsOne {
			if errsOne[i] != errsBatched[i] {
				t.Fatalf("seed %d, entry %d: Apply says %q, ApplyBatch %q", seed, i+1, errsOne[i], errsBatched[i])
			}
		}
		if one.Index() != batched.Index() {
			t.Fatalf("seed %d: index %d, batched %d", seed, one.Index(), batched.Index())
		}
		snap := save(t, one)
		if !bytes.Equal(snap, save(t, batched)) {
			t.Fatalf("seed %d: the batched store differs", seed)
		}
		checkSameIndexes(t, batched.current(), restored(t, snap).current())
		// The same events, in the same order, up to the last commit.
		var lastOK uint64
		for i, e := range errsOne {
			if e == "" {
				lastOK = uint64(i + 1)
			}
		}
		if lastOK > 0 {
			ev1 := eventsUntilCommit(t, w1, lastOK, 5*time.Second)
			ev2 := eventsUntilCommit(t, w2, lastOK, 5*time.Second)
			if len(ev1) != len(ev2) {
				t.Fatalf("seed %d: %d events, batched %d", seed, len(ev1), len(ev2))
			}
			for i, e1 := range ev1 {
				e2 := ev2[i]
				if e1.Action != e2.Action || e1.Version != e2.Version || (e1.Object == nil) != (e2.Object == nil) ||
					(e1.Object != nil && e1.Object.GetID() != e2.Object.GetID()) {
					t.Fatalf("seed %d: event %d: %+v, batched %+v", seed, i, e1, e2)
				}
			}
		}
		w1.Close()
		w2.Close()
		one.Close()
		batched.Close()
	}
	if refused < 40*60/5 || refused > 40*60*4/5 {
		t.Fatalf("%d of %d entries refused: the test does not exercise both the applies and the undo", refused, 40*60)
	}
	t.Logf("%d of %d entries refused", refused, 40*60)
}

// An entry already applied, one that does not decode, and a closed store,
// in a batch, as Apply has them.
func TestApplyBatchErrors(t *testing.T) {
	s := NewMemoryStore(nil)
	good, err := encodeActions([]action{{op: ActionCreate, kind: api.KindNode, id: "a", obj: node("a", "x")}})
	if err != nil {
		t.Fatal(err)
	}
	errs := s.ApplyBatch([]uint64{3, 3, 4, 5}, [][]byte{good, good, []byte("garbage"), good})
	if errs[0] != nil || errs[1] == nil || errs[2] == nil || errs[3] == nil {
		t.Fatalf("errors %v", errs)
	}
	if s.Index() != 5 || getNode(s, "a").Meta.Version != 3 {
		t.Fatalf("index %d, version %d", s.Index(), getNode(s, "a").Meta.Version)
	}
	s.Close()
	for _, err := range s.ApplyBatch([]uint64{6}, [][]byte{good}) {
		if err != ErrClosed {
			t.Fatalf("closed store: %v", err)
		}
	}
}
