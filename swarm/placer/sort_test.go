package placer

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

func TestSortByIDMatchesStringOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var ts []*api.Task
	for i := 0; i < 2000; i++ {
		var id string
		switch i % 4 {
		case 0:
			id = api.NewID()
		case 1:
			id = fmt.Sprintf("task-%07d", rng.Intn(500)) // ties and shared prefixes
		case 2:
			id = fmt.Sprintf("a-much-longer-shared-prefix-%d", rng.Intn(300))
		default:
			id = "x"[:rng.Intn(2)] + string(rune('a'+rng.Intn(3))) // short, and ""
		}
		ts = append(ts, &api.Task{ID: id})
	}
	want := slices.Clone(ts)
	slices.SortStableFunc(want, func(a, b *api.Task) int { return strings.Compare(a.ID, b.ID) })
	sortByID(ts)
	for i := range ts {
		if ts[i].ID != want[i].ID {
			t.Fatalf("position %d: %q, want %q", i, ts[i].ID, want[i].ID)
		}
	}
}
