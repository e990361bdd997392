package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
)

// A task's controller is handed the secrets and configs it references, as
// the dispatcher sent them, before it prepares; the executor forgets them
// when the task is removed. A task whose secret was never delivered (it
// was removed from the cluster first) is rejected saying which.
func TestAgentHandsTasksTheirSecrets(t *testing.T) {
	m := newManager(t)
	ex := fake.New(fake.Config{Hostname: "w1"})
	a, _ := startAgent(t, m.d, ex)
	m.update(func(tx store.Tx) error {
		if err := tx.CreateSecret(&api.Secret{ID: "s1", Spec: api.SecretSpec{Annotations: api.Annotations{Name: "pw"}, Data: api.SecretBytes("hunter2")}}); err != nil {
			return err
		}
		return tx.CreateConfig(&api.Config{ID: "c1", Spec: api.ConfigSpec{Annotations: api.Annotations{Name: "conf"}, Data: []byte("x=1")}})
	})
	tk := task("t1")
	tk.NodeID = a.NodeID()
	tk.Spec.Secrets = []api.SecretReference{{SecretID: "s1", SecretName: "pw", File: &api.FileTarget{Name: "pw"}}}
	tk.Spec.Configs = []api.ConfigReference{{ConfigID: "c1", ConfigName: "conf", File: &api.FileTarget{Name: "conf"}}}
	m.update(func(tx store.Tx) error { return tx.CreateTask(tk) })
	m.waitTask("t1", api.TaskStateRunning)
	d, ok := ex.Dependencies("t1")
	if !ok || len(d.Secrets) != 1 || string(d.Secret("s1").Spec.Data) != "hunter2" || string(d.Config("c1").Spec.Data) != "x=1" {
		t.Fatalf("task t1 holds %+v (%v)", d, ok)
	}
	ops := ex.Ops("t1")
	if len(ops) < 2 || ops[0] != fake.OpDependencies || ops[1] != fake.OpPrepare {
		t.Fatalf("ops %v: want the dependencies before prepare", ops)
	}

	// The task goes: so does what it held.
	m.update(func(tx store.Tx) error { return tx.DeleteTask("t1") })
	testutil.EventuallyWhy(t, 10*time.Second, "t1's secrets forgotten", func() (bool, string) {
		_, ok := ex.Dependencies("t1")
		return !ok, "still held"
	})

	t2 := task("t2")
	t2.NodeID = a.NodeID()
	t2.Spec.Secrets = []api.SecretReference{{SecretID: "gone", SecretName: "old", File: &api.FileTarget{Name: "old"}}}
	m.update(func(tx store.Tx) error { return tx.CreateTask(t2) })
	got := m.waitTask("t2", api.TaskStateRejected)
	if !strings.Contains(got.Status.Err, `secret "old" (gone): not delivered to this node`) {
		t.Errorf("rejected with %q", got.Status.Err)
	}
}

// plainExecutor's controllers cannot take secrets: they hide the fake's
// SetDependencies.
type plainExecutor struct{ *fake.Executor }

func (e plainExecutor) Controller(t *api.Task) (executor.Controller, error) {
	c, err := e.Executor.Controller(t)
	return struct{ executor.Controller }{c}, err
}

// A task with secrets on a node whose executor cannot give them is
// rejected saying so, and never prepared.
func TestAgentRejectsSecretsItsExecutorCannotTake(t *testing.T) {
	m := newManager(t)
	ex := fake.New(fake.Config{Hostname: "w1"})
	a, err := agent.New(agent.Config{Dispatcher: m.d, Executor: plainExecutor{ex}, Logger: testutil.DiscardLogger(), ReconnectBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testutil.EventuallyWhy(t, 10*time.Second, "agent registered", func() (bool, string) { return a.NodeID() != "", "not yet" })
	m.update(func(tx store.Tx) error {
		return tx.CreateSecret(&api.Secret{ID: "s1", Spec: api.SecretSpec{Annotations: api.Annotations{Name: "pw"}, Data: api.SecretBytes("x")}})
	})
	tk := task("t1")
	tk.NodeID = a.NodeID()
	tk.Spec.Secrets = []api.SecretReference{{SecretID: "s1", SecretName: "pw", File: &api.FileTarget{Name: "pw"}}}
	m.update(func(tx store.Tx) error { return tx.CreateTask(tk) })
	got := m.waitTask("t1", api.TaskStateRejected)
	if !strings.Contains(got.Status.Err, "cannot give tasks secrets or configs") {
		t.Errorf("rejected with %q", got.Status.Err)
	}
	for _, op := range ex.Ops("t1") {
		if op == fake.OpPrepare {
			t.Error("the task was prepared")
		}
	}
}
