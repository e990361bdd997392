package dispatcher_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/dispatcher"
)

func mkSecret(id, data string) *api.Secret {
	return &api.Secret{ID: id, Spec: api.SecretSpec{Annotations: api.Annotations{Name: "name-" + id}, Data: api.SecretBytes(data)}}
}

// usingTask is mkTask referencing secrets and configs by ID.
func usingTask(id, nodeID string, secrets, configs []string) *api.Task {
	t := mkTask(id, nodeID, api.TaskStateAssigned)
	for _, s := range secrets {
		t.Spec.Secrets = append(t.Spec.Secrets, api.SecretReference{SecretID: s, SecretName: "name-" + s, File: &api.FileTarget{Name: s}})
	}
	for _, c := range configs {
		t.Spec.Configs = append(t.Spec.Configs, api.ConfigReference{ConfigID: c, ConfigName: "name-" + c, File: &api.FileTarget{Name: c}})
	}
	return t
}

// got is what a node received of secrets and configs so far.
type got struct {
	secrets, configs map[string]string // ID -> data
	removedS         []string
	removedC         []string
	tasks            []string
}

func (g *got) take(m *dispatcher.AssignmentsMessage) {
	if g.secrets == nil {
		g.secrets, g.configs = map[string]string{}, map[string]string{}
	}
	for _, s := range m.Secrets {
		g.secrets[s.ID] = string(s.Spec.Data)
	}
	for _, c := range m.Configs {
		g.configs[c.ID] = string(c.Spec.Data)
	}
	g.removedS = append(g.removedS, m.RemovedSecrets...)
	g.removedC = append(g.removedC, m.RemovedConfigs...)
	g.tasks = append(g.tasks, taskIDs(m.Tasks)...)
}

// until receives messages into g until cond holds.
func (g *got) until(t *testing.T, st dispatcher.AssignmentStream, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: got %+v", what, g)
		}
		g.take(recvTimeout(t, st, 10*time.Second))
	}
}

// A node receives a secret or config only with (or before) a task of its
// own that references it, and only once while several do; it is told to
// forget it when the last such task ends or goes. A node without such a
// task never receives it: node b's stream, read up to a marker task sent
// after every change, carries none.
func TestSecretsOnlyToNodesThatNeedThem(t *testing.T) {
	h := newHarness(t, config(0), func(tx store.Tx) error {
		if err := nodesAB(tx); err != nil {
			return err
		}
		for _, s := range []*api.Secret{mkSecret("s1", "alpha-secret"), mkSecret("s2", "beta-secret"), mkSecret("s3", "never-sent")} {
			if err := tx.CreateSecret(s); err != nil {
				return err
			}
		}
		if err := tx.CreateConfig(&api.Config{ID: "c1", Spec: api.ConfigSpec{Annotations: api.Annotations{Name: "c1"}, Data: []byte("conf")}}); err != nil {
			return err
		}
		return createTasks(usingTask("a1", "a", []string{"s1"}, []string{"c1"}), mkTask("b1", "b", api.TaskStateAssigned),
			// Pending on b: not b's yet, so nothing of it goes to b.
			func() *api.Task {
				t := usingTask("bp", "b", []string{"s3"}, nil)
				t.Status.State = api.TaskStatePending
				return t
			}())(tx)
	})
	_, sa := h.openStream("a")
	_, sb := h.openStream("b")
	var a, b got
	first := recvTimeout(t, sa, 5*time.Second)
	if first.Type != dispatcher.AssignmentsComplete || len(first.Secrets) != 1 || len(first.Configs) != 1 {
		t.Fatalf("a's complete set: %+v", first)
	}
	a.take(first)
	if a.secrets["s1"] != "alpha-secret" || a.configs["c1"] != "conf" {
		t.Fatalf("a got %+v", a)
	}

	// A second task of a needs s1 (held) and s2 (new): only s2 comes, in
	// the task's message.
	h.update(createTasks(usingTask("a2", "a", []string{"s1", "s2"}, nil)))
	m := recvTimeout(t, sa, 5*time.Second)
	if len(m.Tasks) != 1 || m.Tasks[0].ID != "a2" || len(m.Secrets) != 1 || m.Secrets[0].ID != "s2" || len(m.Configs) != 0 {
		t.Fatalf("a2's message: tasks %v secrets %v configs %v", taskIDs(m.Tasks), m.Secrets, m.Configs)
	}
	a.take(m)

	// a1 fails (a status-only change, not echoed): c1 is no longer
	// needed; s1 still is (a2).
	h.update(func(tx store.Tx) error {
		t1 := tx.GetTask("a1")
		t1.Status.State = api.TaskStateFailed
		return tx.UpdateTask(t1)
	})
	a.until(t, sa, "c1 removed", func() bool { return len(a.removedC) > 0 })
	if !slices.Equal(a.removedC, []string{"c1"}) || len(a.removedS) != 0 {
		t.Fatalf("after a1 failed: removed secrets %v configs %v", a.removedS, a.removedC)
	}
	// a2 is deleted: s1 and s2 go.
	h.update(func(tx store.Tx) error { return tx.DeleteTask("a2") })
	a.until(t, sa, "s1, s2 removed", func() bool { return len(a.removedS) == 2 })
	slices.Sort(a.removedS)
	if !slices.Equal(a.removedS, []string{"s1", "s2"}) {
		t.Fatalf("removed secrets %v", a.removedS)
	}

	// b: its complete set, then the marker; nothing of any secret.
	h.update(createTasks(mkTask("b-marker", "b", api.TaskStateAssigned)))
	b.until(t, sb, "b's marker task", func() bool { return slices.Contains(b.tasks, "b-marker") })
	if len(b.secrets)+len(b.configs)+len(b.removedS)+len(b.removedC) != 0 {
		t.Fatalf("node b, with no task using them, received %+v", b)
	}
	// A reconnecting a (its tasks: a1 FAILED) gets no secret either.
	_, sa2 := h.openStream("a")
	if m := recvTimeout(t, sa2, 5*time.Second); len(m.Secrets)+len(m.Configs) != 0 || m.Type != dispatcher.AssignmentsComplete {
		t.Fatalf("a's new complete set carries %v %v", m.Secrets, m.Configs)
	}
}

// Secrets at the size limit split messages as tasks do: every message is
// within MaxAssignmentsBytes unless it holds one item, and each secret
// comes no later than the first task that needs it.
func TestSecretsInParts(t *testing.T) {
	const n = 5
	var ids []string
	h := newHarness(t, config(0), func(tx store.Tx) error {
		if err := nodesAB(tx); err != nil {
			return err
		}
		for i := range n {
			id := fmt.Sprintf("s%d", i)
			ids = append(ids, id)
			if err := tx.CreateSecret(mkSecret(id, strings.Repeat(string(rune('a'+i)), api.MaxSecretSize))); err != nil {
				return err
			}
		}
		return createTasks(usingTask("t0", "a", ids[:2], nil))(tx)
	})
	_, st := h.openStream("a")
	var g got
	check := func(m *dispatcher.AssignmentsMessage) {
		t.Helper()
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if items := len(m.Tasks) + len(m.Secrets) + len(m.Configs); items > 1 && len(b) > dispatcher.MaxAssignmentsBytes+200 {
			t.Fatalf("message of %d items is %d bytes", items, len(b))
		}
		for _, tk := range m.Tasks {
			for _, r := range tk.Spec.Secrets {
				if _, ok := g.secrets[r.SecretID]; !ok && !slices.ContainsFunc(m.Secrets, func(s *api.Secret) bool { return s.ID == r.SecretID }) {
					t.Fatalf("task %s came before its secret %s", tk.ID, r.SecretID)
				}
			}
		}
		g.take(m)
	}
	for {
		m := recvTimeout(t, st, 5*time.Second)
		check(m)
		if !m.More {
			break
		}
	}
	h.update(createTasks(usingTask("t1", "a", ids, nil)))
	for len(g.secrets) < n || !slices.Contains(g.tasks, "t1") {
		check(recvTimeout(t, st, 5*time.Second))
	}
	for i, id := range ids {
		if len(g.secrets[id]) != api.MaxSecretSize || g.secrets[id][0] != byte('a'+i) {
			t.Fatalf("secret %s: %d bytes", id, len(g.secrets[id]))
		}
	}
}

// After a restore of the store, a node's stream sends the complete set of
// the new state with the secrets it needs then, counted afresh: a secret
// only the old state's tasks used is not in it, and the next change of
// the restored state is counted from there.
func TestSecretsAfterRestore(t *testing.T) {
	secrets := func(tx store.Tx) error {
		for _, s := range []*api.Secret{mkSecret("old", "o"), mkSecret("new", "n")} {
			if err := tx.CreateSecret(s); err != nil {
				return err
			}
		}
		return nil
	}
	snap := snapshot(t, 0, func(tx store.Tx) error {
		if err := errors.Join(nodesAB(tx), secrets(tx)); err != nil {
			return err
		}
		return createTasks(usingTask("restored", "a", []string{"new"}, nil))(tx)
	})
	h := newHarness(t, config(0), func(tx store.Tx) error {
		if err := errors.Join(nodesAB(tx), secrets(tx)); err != nil {
			return err
		}
		return createTasks(usingTask("before", "a", []string{"old"}, nil))(tx)
	})
	_, st := h.openStream("a")
	if m := recvTimeout(t, st, 5*time.Second); len(m.Secrets) != 1 || m.Secrets[0].ID != "old" {
		t.Fatalf("first set's secrets %v", m.Secrets)
	}
	if err := h.s.Restore(snap); err != nil {
		t.Fatal(err)
	}
	m := recvTimeout(t, st, 5*time.Second)
	if m.Type != dispatcher.AssignmentsComplete || len(m.Secrets) != 1 || m.Secrets[0].ID != "new" || !slices.Equal(taskIDs(m.Tasks), []string{"restored"}) {
		t.Fatalf("after the restore: %v tasks %v secrets %v", m.Type, taskIDs(m.Tasks), m.Secrets)
	}
	h.update(func(tx store.Tx) error { return tx.DeleteTask("restored") })
	var g got
	g.until(t, st, "new removed", func() bool { return len(g.removedS) > 0 })
	if !slices.Equal(g.removedS, []string{"new"}) {
		t.Fatalf("removed %v", g.removedS)
	}
}
