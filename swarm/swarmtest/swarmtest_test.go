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

// Three managers and two workers over mutual TLS on loopback: losing the
// leader loses nothing, and it comes back from its data dir.
func TestClusterSurvivesLeaderLossAndRestart(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, Workers: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lead := c.Leader()
	svc, err := c.Client(lead).CreateService(ctx, spec("web", 6))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Client(lead).WaitConverged(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
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
