package swarmtest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// Issue 4: the root CA rotates under a running cluster of three managers
// and two workers; no node loses contact, the new root takes over, and a
// node restarted afterwards connects with its new certificate.
func TestRootRotationUnderARunningCluster(t *testing.T) {
	c, ctx, svc := withService(t, 5)
	cl := c.Client(c.Leader())
	before, err := cl.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.RotateRootCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.InProgress || st.NewRootDigest == st.OldRootDigest {
		t.Fatalf("rotation did not start: %+v", st)
	}
	// Every node stays ready throughout, until the rotation finishes.
	c.WaitFor("the rotation to finish with every node in contact", func() (bool, string) {
		nodes, err := cl.ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if n.Status.State != api.NodeStateReady {
				t.Fatalf("node %s lost contact during the rotation: %s %s", n.ID, n.Status.State, n.Status.Message)
			}
		}
		cur, err := cl.RootCAStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		return !cur.InProgress, fmt.Sprintf("pending %v", cur.Pending)
	})
	after, err := cl.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(after.JoinTokens.Worker, st.NewRootDigest) || after.JoinTokens.Worker == before.JoinTokens.Worker {
		t.Fatalf("join token does not pin the new root: %s", after.JoinTokens.Worker)
	}
	// A worker restarted now connects with the certificate of the new root.
	w := c.Members[len(c.Members)-1]
	c.Kill(w)
	c.Restart(w)
	c.WaitReady()
	if _, err := cl.ScaleService(ctx, "web", 7); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
}
