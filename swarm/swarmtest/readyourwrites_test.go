package swarmtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// A client of any manager reads its own writes: a write through a
// follower is answered once that follower has applied it, so the reads
// that follow on the same connection (answered from the follower's store)
// see it, and the object a create returns is the stored one.
func TestReadYourWritesOnAFollower(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3})
	var follower *swarmtest.Member
	for _, m := range c.Members {
		if m.Node.Manager() != nil && !m.Node.Manager().IsLeader() {
			follower = m
			break
		}
	}
	if follower == nil {
		t.Fatal("no follower")
	}
	cl := c.Client(follower)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 50 {
		created, err := cl.CreateService(ctx, spec(fmt.Sprintf("ryw-%d", i), 0))
		if err != nil {
			t.Fatal(err)
		}
		got, err := cl.GetService(ctx, created.ID)
		if err != nil {
			t.Fatalf("write %d: read back on the same follower: %v", i, err)
		}
		if got.Meta.Version != created.Meta.Version {
			t.Fatalf("write %d: read version %d, the create returned %d", i, got.Meta.Version, created.Meta.Version)
		}
		spec := got.Spec
		spec.Labels = map[string]string{"i": fmt.Sprint(i)}
		updated, err := cl.UpdateService(ctx, got.ID, got.Meta.Version, spec)
		if err != nil {
			t.Fatalf("write %d: update at the version read: %v", i, err)
		}
		list, err := cl.ListServices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen := false
		for _, s := range list {
			if s.ID == updated.ID && s.Meta.Version == updated.Meta.Version && s.Spec.Labels["i"] == fmt.Sprint(i) {
				seen = true
			}
		}
		if !seen {
			t.Fatalf("write %d: the list on the same follower does not show the update at version %d", i, updated.Meta.Version)
		}
	}
}
