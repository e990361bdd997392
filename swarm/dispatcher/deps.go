package dispatcher

import (
	"encoding/json"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// Secrets and configs (issue 16) reach a node only while it has a task
// that references them: deps counts, for one node's stream, the tasks
// that hold each (as swarmkit's assignment set does). A task holds its
// references from when the node first gets it, ASSIGNED to RUNNING, until
// it ends (a state past RUNNING), leaves the node or is deleted. The
// first holder sends the data, in the same message as the task or an
// earlier one; the last one to let go sends the ID as removed.
type deps struct {
	store *store.MemoryStore
	// held maps a task to the references it holds.
	held    map[string]taskRefs
	secrets map[string]int
	configs map[string]int
}

// taskRefs are the secret and config IDs one task references.
type taskRefs struct{ secrets, configs []string }

func newDeps(s *store.MemoryStore) *deps {
	return &deps{store: s, held: map[string]taskRefs{}, secrets: map[string]int{}, configs: map[string]int{}}
}

// needs reports whether a task of the node holds its references: until
// it ended. (Tasks reach a node ASSIGNED at the earliest.)
func needs(t *api.Task) bool { return t.Status.State <= api.TaskStateRunning }

// refsOf lists a task's references.
func refsOf(t *api.Task) taskRefs {
	var r taskRefs
	for _, s := range t.Spec.Secrets {
		r.secrets = append(r.secrets, s.SecretID)
	}
	for _, c := range t.Spec.Configs {
		r.configs = append(r.configs, c.ConfigID)
	}
	return r
}

// depsOut is what a change of the node's tasks adds to its messages.
type depsOut struct {
	secrets        []*api.Secret
	configs        []*api.Config
	removedSecrets []string
	removedConfigs []string
}

// hold makes t hold its references, if it does not already, and returns
// the data of those no other task of the node held. A reference to what
// the store no longer has (removed after the service dropped it, while
// an older task still names it) sends nothing: the agent rejects a task
// whose data it lacks.
func (d *deps) hold(t *api.Task, out *depsOut) {
	if _, ok := d.held[t.ID]; ok {
		return
	}
	r := refsOf(t)
	if len(r.secrets)+len(r.configs) == 0 {
		return
	}
	d.held[t.ID] = r
	var newSecrets, newConfigs []string
	for _, id := range r.secrets {
		if d.secrets[id]++; d.secrets[id] == 1 {
			newSecrets = append(newSecrets, id)
		}
	}
	for _, id := range r.configs {
		if d.configs[id]++; d.configs[id] == 1 {
			newConfigs = append(newConfigs, id)
		}
	}
	if len(newSecrets)+len(newConfigs) == 0 {
		return
	}
	d.store.View(func(tx store.ReadTx) {
		for _, id := range newSecrets {
			if s := tx.GetSecret(id); s != nil {
				out.secrets = append(out.secrets, s)
			}
		}
		for _, id := range newConfigs {
			if c := tx.GetConfig(id); c != nil {
				out.configs = append(out.configs, c)
			}
		}
	})
}

// release lets go of what task id held, adding to out the IDs no task of
// the node holds any more.
func (d *deps) release(id string, out *depsOut) {
	r, ok := d.held[id]
	if !ok {
		return
	}
	delete(d.held, id)
	for _, s := range r.secrets {
		if d.secrets[s]--; d.secrets[s] == 0 {
			delete(d.secrets, s)
			out.removedSecrets = append(out.removedSecrets, s)
		}
	}
	for _, c := range r.configs {
		if d.configs[c]--; d.configs[c] == 0 {
			delete(d.configs, c)
			out.removedConfigs = append(out.removedConfigs, c)
		}
	}
}

// change follows one event of a task of the node (or one that left it).
func (d *deps) change(t *api.Task, deleted, onNode bool, out *depsOut) {
	if deleted || !onNode || !needs(t) {
		d.release(t.ID, out)
		return
	}
	d.hold(t, out)
}

// forSet makes a node's complete set's dependencies afresh.
func (d *deps) forSet(tasks []*api.Task) depsOut {
	*d = *newDeps(d.store)
	var out depsOut
	for _, t := range tasks {
		if needs(t) {
			d.hold(t, &out)
		}
	}
	return out
}

// objBytes is what a secret or config adds to a message.
func objBytes(o any) int {
	b, err := json.Marshal(o)
	if err != nil {
		return MaxAssignmentsBytes // alone in its message: the codec reports the error
	}
	return len(b)
}

// delivered tells Config.OnDeliver what a message to a node carries.
func (d *Dispatcher) delivered(nodeID string, m *AssignmentsMessage) {
	if d.cfg.OnDeliver == nil || len(m.Secrets)+len(m.Configs) == 0 {
		return
	}
	var secrets, configs []string
	for _, s := range m.Secrets {
		secrets = append(secrets, s.ID)
	}
	for _, c := range m.Configs {
		configs = append(configs, c.ID)
	}
	d.cfg.OnDeliver(nodeID, secrets, configs)
}
