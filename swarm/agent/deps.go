package agent

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// The secrets and configs of the node's tasks (issue 16) are kept in
// memory only, as the dispatcher sends them: it sends a node those its
// tasks need and tells it when they are no longer needed, so what the
// agent holds is bounded by its tasks' references (api.MaxSecretReferences
// per task, api.MaxSecretSize each). They are handed to each task's
// controller when the task's runner starts (executor.DependencyUser);
// the executor keeps what the task needs from then on.
type deps struct {
	secrets map[string]*api.Secret
	configs map[string]*api.Config
}

// take applies a message's secrets and configs; a complete set replaces
// them all. Called with the agent's lock held, before the message's tasks
// are handed to their runners.
func (d *deps) take(m *session.AssignmentsMessage) {
	if m.Type == session.AssignmentsComplete || d.secrets == nil {
		d.secrets, d.configs = map[string]*api.Secret{}, map[string]*api.Config{}
	}
	for _, s := range m.Secrets {
		d.secrets[s.ID] = s
	}
	for _, c := range m.Configs {
		d.configs[c.ID] = c
	}
	for _, id := range m.RemovedSecrets {
		delete(d.secrets, id)
	}
	for _, id := range m.RemovedConfigs {
		delete(d.configs, id)
	}
}

// errNoDependency: a task references a secret or config its node was not
// given (removed from the cluster before the task started).
var errNoDependency = errors.New("not delivered to this node")

// of returns what t references. The objects are shared, read-only.
func (d *deps) of(t *api.Task) (executor.Dependencies, error) {
	var out executor.Dependencies
	for _, r := range t.Spec.Secrets {
		s, ok := d.secrets[r.SecretID]
		if !ok {
			return out, fmt.Errorf("secret %q (%s): %w", r.SecretName, r.SecretID, errNoDependency)
		}
		out.Secrets = append(out.Secrets, s)
	}
	for _, r := range t.Spec.Configs {
		c, ok := d.configs[r.ConfigID]
		if !ok {
			return out, fmt.Errorf("config %q (%s): %w", r.ConfigName, r.ConfigID, errNoDependency)
		}
		out.Configs = append(out.Configs, c)
	}
	return out, nil
}

// dependencies hands a task's controller its secrets and configs, when it
// references any.
func (a *Agent) dependencies(t *api.Task, ctrl executor.Controller) error {
	if len(t.Spec.Secrets)+len(t.Spec.Configs) == 0 {
		return nil
	}
	du, ok := ctrl.(executor.DependencyUser)
	if !ok {
		return errors.New("this node's executor cannot give tasks secrets or configs")
	}
	a.mu.Lock()
	d, err := a.deps.of(t)
	a.mu.Unlock()
	if err != nil {
		return err
	}
	du.SetDependencies(d)
	return nil
}

// HeldDependencies returns the IDs of the secrets and configs the agent
// holds in memory now, sorted: what the dispatcher sent for the node's
// tasks and has not yet told it to forget. For audits and tests.
func (a *Agent) HeldDependencies() (secrets, configs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	secrets = slices.Sorted(maps.Keys(a.deps.secrets))
	configs = slices.Sorted(maps.Keys(a.deps.configs))
	return secrets, configs
}
