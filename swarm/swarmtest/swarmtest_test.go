package swarmtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

func spec(name string, n int64) api.ServiceSpec {
	return api.ServiceSpec{
		Annotations:  api.Annotations{Name: name},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: n}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
	}
}

// withService starts three managers and two workers and runs service "web"
// with the given replicas on them; ctx ends with the test.
func withService(t *testing.T, replicas int64) (*swarmtest.Cluster, context.Context, *api.Service) {
	t.Helper()
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, Workers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	cl := c.Client(c.Leader())
	svc, err := cl.CreateService(ctx, spec("web", replicas))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	return c, ctx, svc
}

// Three managers and two workers over mutual TLS on loopback: losing the
// leader loses nothing, and it comes back from its data dir.
func TestClusterSurvivesLeaderLossAndRestart(t *testing.T) {
	c, ctx, svc := withService(t, 6)
	lead := c.Leader()
	c.Kill(lead)
	next := c.Leader()
	if next == lead {
		t.Fatal("the killed manager still leads")
	}
	cl := c.Client(next)
	if _, err := cl.ScaleService(ctx, "web", 8); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	c.Restart(lead)
	c.WaitFor("the restarted manager to catch up", func() (bool, string) {
		s, err := c.Client(lead).GetService(ctx, "web")
		if err != nil {
			return false, err.Error()
		}
		return s.Spec.Mode.Replicated.Replicas == 8, fmt.Sprint(s.Spec.Mode.Replicated.Replicas)
	})
	c.WaitReady()
}
