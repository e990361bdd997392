package agent

import (
	"errors"
	"slices"
	"sort"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

func heldIDs(d *deps) (secrets, configs []string) {
	for id := range d.secrets {
		secrets = append(secrets, id)
	}
	for id := range d.configs {
		configs = append(configs, id)
	}
	sort.Strings(secrets)
	sort.Strings(configs)
	return secrets, configs
}

// The agent holds exactly what the stream says: a complete set replaces
// everything, an incremental message adds and forgets.
func TestDepsFollowTheStream(t *testing.T) {
	sec := func(id string) *api.Secret { return &api.Secret{ID: id} }
	cfg := func(id string) *api.Config { return &api.Config{ID: id} }
	var d deps
	d.take(&session.AssignmentsMessage{Type: session.AssignmentsIncremental, Secrets: []*api.Secret{sec("s0")}})
	d.take(&session.AssignmentsMessage{Type: session.AssignmentsComplete, Secrets: []*api.Secret{sec("s1"), sec("s2")}, Configs: []*api.Config{cfg("c1")}})
	if s, c := heldIDs(&d); !slices.Equal(s, []string{"s1", "s2"}) || !slices.Equal(c, []string{"c1"}) {
		t.Fatalf("after the complete set: %v %v", s, c)
	}
	d.take(&session.AssignmentsMessage{Type: session.AssignmentsIncremental, Secrets: []*api.Secret{sec("s3")}, RemovedSecrets: []string{"s1"}, RemovedConfigs: []string{"c1", "unknown"}})
	if s, c := heldIDs(&d); !slices.Equal(s, []string{"s2", "s3"}) || len(c) != 0 {
		t.Fatalf("after a change: %v %v", s, c)
	}
	task := &api.Task{Spec: api.TaskSpec{Secrets: []api.SecretReference{{SecretID: "s2"}, {SecretID: "s1", SecretName: "gone"}}}}
	if _, err := d.of(task); !errors.Is(err, errNoDependency) {
		t.Fatalf("a task needing a forgotten secret: %v", err)
	}
	task.Spec.Secrets = task.Spec.Secrets[:1]
	if got, err := d.of(task); err != nil || len(got.Secrets) != 1 || got.Secrets[0].ID != "s2" {
		t.Fatalf("of: %+v %v", got, err)
	}
	d.take(&session.AssignmentsMessage{Type: session.AssignmentsComplete})
	if s, c := heldIDs(&d); len(s)+len(c) != 0 {
		t.Fatalf("an empty complete set left %v %v", s, c)
	}
}
