package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// framingRaft is fakeRaft as a FramingProposer: it writes a header of its
// own over the headroom, as raft's envelope is, and logs what is behind.
type framingRaft struct {
	*fakeRaft
	framed int
}

const testHeadroom = 7

func (f *framingRaft) ProposalHeadroom() int { return testHeadroom }

func (f *framingRaft) ProposeFramed(ctx context.Context, buf []byte) (uint64, error) {
	if len(buf) < testHeadroom || !bytes.Equal(buf[:testHeadroom], make([]byte, testHeadroom)) {
		return 0, fmt.Errorf("the headroom is not free: % x", buf[:min(len(buf), testHeadroom)])
	}
	copy(buf, "HEADER!")
	f.framed++
	return f.Propose(ctx, buf[testHeadroom:])
}

// A store whose proposer frames proposals encodes them behind its
// headroom: what the log holds is the proposal alone, which every replica
// applies as it would a plain one, large transactions and small alike.
func TestProposalsFramedInPlace(t *testing.T) {
	f := &framingRaft{fakeRaft: &fakeRaft{}}
	for range 2 {
		s := NewMemoryStore(f)
		f.replicas = append(f.replicas, s)
		t.Cleanup(s.Close)
	}
	leader, follower := f.replicas[0], f.replicas[1]
	var _ FramingProposer = f
	big := strings.Repeat("x", 100_000) // beyond the size hint's bound
	for i, n := range []int{1, 50, 1, 3} {
		if err := leader.Update(func(tx Tx) error {
			for j := range n {
				svc := &api.Service{ID: fmt.Sprintf("s%d-%d", i, j), Spec: api.ServiceSpec{Annotations: api.Annotations{Name: fmt.Sprintf("svc-%d-%d", i, j)}}}
				if i == 2 {
					svc.Spec.Annotations.Labels = map[string]string{"big": big}
				}
				if err := tx.CreateService(svc); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if f.framed != 4 {
		t.Fatalf("%d framed proposals, want 4", f.framed)
	}
	for _, e := range f.entries {
		if _, err := decodeActions(e); err != nil {
			t.Fatalf("a logged entry does not decode: %v (% x...)", err, e[:min(len(e), 16)])
		}
	}
	var a, b []*api.Service
	leader.View(func(tx ReadTx) { a, _ = tx.FindServices(All) })
	follower.View(func(tx ReadTx) { b, _ = tx.FindServices(All) })
	if len(a) != 55 || len(b) != 55 {
		t.Fatalf("%d and %d services, want 55 on both", len(a), len(b))
	}
	var large *api.Service
	follower.View(func(tx ReadTx) { large = tx.GetService("s2-0") })
	if large == nil || large.Spec.Annotations.Labels["big"] != big {
		t.Fatal("the follower lacks the large service as written")
	}
}
