package swarmtest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// deliveries records, from the leader's dispatcher, which node was sent
// which secrets.
type deliveries struct {
	mu   sync.Mutex
	sent map[string][]string // node ID -> secret IDs
}

func (d *deliveries) record(nodeID string, secrets, _ []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sent[nodeID] = append(d.sent[nodeID], secrets...)
}

func (d *deliveries) to(nodeID string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.sent[nodeID])
}

// Issue 16, end to end over mutual TLS: a secret and a config reach the
// one worker whose task uses them, as files of the right content and mode
// in a private directory of the task (a tmpfs here, as root); the other
// worker, with no such task, is never sent them (the dispatcher's audit
// hook says so); a secret in use is not removed and an over-size one not
// created, with nothing changed; the data is in no log line and no
// inspect output; the files go when the task does.
func TestSecretsEndToEnd(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	sent := &deliveries{sent: map[string][]string{}}
	c, execRoot := processCluster(t, logs, sent)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := c.Client(c.Leader())
	w1, w2 := c.Members[1], c.Members[2]

	secretData := "e2e-secret-" + api.NewID()
	configData := "e2e-config-" + api.NewID()
	sec, err := cl.CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: "db-password"}, Data: api.SecretBytes(secretData)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateConfig(ctx, api.ConfigSpec{Annotations: api.Annotations{Name: "app.conf"}, Data: []byte(configData)}); err != nil {
		t.Fatal(err)
	}
	// The task reports what it sees into report, written whole.
	want := filepath.Join(t.TempDir(), "want")
	if err := os.WriteFile(want, []byte(secretData), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report")
	svc := api.ServiceSpec{
		Annotations: api.Annotations{Name: "app"},
		Mode:        api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 1}},
		TaskTemplate: api.TaskSpec{
			Process: &api.ProcessSpec{Command: []string{"/bin/sh", "-c", `f="$APIARY_SECRETS_DIR/db"
cmp -s "$f" "$WANT" && echo same > "$REPORT.tmp" || echo differ > "$REPORT.tmp"
stat -c %a "$f" >> "$REPORT.tmp"
echo "$(cat "$APIARY_CONFIGS_DIR/app.conf")" >> "$REPORT.tmp"
if env | grep -q "$(cat "$f")"; then echo in-env; else echo not-in-env; fi >> "$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"
exec sleep 300`}, Env: []string{"WANT=" + want, "REPORT=" + report}},
			Placement: &api.Placement{Constraints: []string{"node.hostname==worker-1"}},
			Secrets:   []api.SecretReference{{SecretName: "db-password", File: &api.FileTarget{Name: "db", Mode: 0o400}}},
			Configs:   []api.ConfigReference{{ConfigName: "app.conf"}},
		},
	}
	app, err := cl.CreateService(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitConverged(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	var got []byte
	c.WaitFor("the task's report", func() (bool, string) {
		got, err = os.ReadFile(report)
		return err == nil, errString(err)
	})
	if lines := strings.Split(strings.TrimSpace(string(got)), "\n"); !slices.Equal(lines, []string{"same", "400", configData, "not-in-env"}) {
		t.Fatalf("the task saw %q, want the secret (mode 400), the config, and no secret in its environment", lines)
	}
	// The running task (a loaded machine may have missed a heartbeat
	// and had the first one replaced).
	tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: "app", DesiredStates: []api.TaskState{api.TaskStateRunning}})
	if err != nil || len(tasks) != 1 || tasks[0].NodeID != w1.Node.NodeID() {
		for _, tk := range tasks {
			t.Logf("task %s on %s: %s %q %q", tk.ID, tk.NodeID, tk.Status.State, tk.Status.Message, tk.Status.Err)
		}
		t.Fatalf("%d running tasks (%v), want one on worker-1 (%s)", len(tasks), err, w1.Node.NodeID())
	}
	secretsDir := filepath.Join(execRoot, "worker-1", "tasks", tasks[0].ID, "secrets")

	// Delivered to worker-1 once, never to worker-2 (nor the manager).
	// (Again on a new session, if a loaded machine made it register again.)
	if to1 := slices.Compact(sent.to(w1.Node.NodeID())); !slices.Equal(to1, []string{sec.ID}) {
		t.Errorf("worker-1 was sent secrets %v, want [%s]", to1, sec.ID)
	}
	for _, m := range []*swarmtest.Member{w2, c.Members[0]} {
		if to := sent.to(m.Node.NodeID()); len(to) != 0 {
			t.Errorf("%s, which runs no task using it, was sent secrets %v", m.Name, to)
		}
	}

	// Refused, and nothing changes.
	before, err := cl.ListSecrets(ctx, control.ObjectFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.RemoveSecret(ctx, "db-password"); !errors.Is(err, control.ErrInUse) || !strings.Contains(err.Error(), `"app"`) {
		t.Errorf("remove in use: %v", err)
	}
	_, err = cl.CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: "big"}, Data: make([]byte, api.MaxSecretSize+1)})
	if !errors.Is(err, control.ErrInvalidArgument) || !strings.Contains(err.Error(), "data: must be at most 512000 bytes") {
		t.Errorf("over-size: %v", err)
	}
	if after, _ := cl.ListSecrets(ctx, control.ObjectFilter{}); !equalJSON(t, before, after) {
		t.Errorf("secrets changed: %v -> %v", before, after)
	}

	// Inspect output never holds the secret.
	var shown bytes.Buffer
	for _, o := range []any{must(cl.GetSecret(ctx, "db-password")), before, must(cl.GetService(ctx, "app")), tasks} {
		b, _ := json.Marshal(o)
		shown.Write(b)
	}
	checkAbsent(t, "inspect output", shown.String(), secretData)

	// The task is replaced (a forced update, stop-first): it stops and
	// stays in the history, and its files and tmpfs go as it stops.
	cur, err := cl.GetService(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	next := cur.Spec.Copy()
	next.TaskTemplate.ForceUpdate++
	if _, err := cl.UpdateService(ctx, "app", cur.Meta.Version, next); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the replaced task ended, its secrets gone", func() (bool, string) {
		tk, err := cl.GetTask(ctx, tasks[0].ID)
		if err != nil {
			return false, err.Error()
		}
		_, serr := os.Stat(secretsDir)
		return tk.Status.State.Terminal() && errors.Is(serr, os.ErrNotExist), tk.Status.State.String() + " " + errString(serr)
	})
	if err := cl.RemoveService(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := cl.RemoveSecret(ctx, "db-password"); err != nil {
		t.Fatal(err)
	}
	checkAbsent(t, "the logs", logs.String(), secretData)
}

// processCluster starts a manager and two workers over mutual TLS:
// worker-1 runs process tasks (under execRoot/worker-1), worker-2 a fake
// executor. Every node and the process executor log to logs at debug
// level, and the leader's dispatcher records in sent what it sends each
// node. Once the cluster stopped, the process tasks are removed (see
// removeProcessTasks).
func processCluster(t *testing.T, logs *testutil.SyncBuffer, sent *deliveries) (c *swarmtest.Cluster, execRoot string) {
	t.Helper()
	execRoot = t.TempDir()
	debug := &slog.HandlerOptions{Level: slog.LevelDebug}
	var procExec *process.Executor
	t.Cleanup(func() { removeProcessTasks(t, procExec) })
	c = swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 2, HeartbeatPeriod: time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, debug)),
		Executor: func(name string) executor.Executor {
			if name != "worker-1" {
				return fake.New(fake.Config{Hostname: name})
			}
			e, err := process.New(process.Config{DataDir: filepath.Join(execRoot, name), Hostname: name,
				Logger: slog.New(slog.NewTextHandler(logs, debug))})
			if err != nil {
				t.Fatal(err)
			}
			procExec = e
			return e
		},
		Configure: func(name string, cfg *swarm.NodeConfig) { cfg.Manager.Dispatcher.OnDeliver = sent.record },
	})
	return c, execRoot
}

// removeProcessTasks removes every task e still holds, which unmounts
// their tmpfs before the temporary directory goes: a stopped cluster's
// agents leave their tasks running.
func removeProcessTasks(t *testing.T, e *process.Executor) {
	if e == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, _ := e.ListTasks(ctx)
	for _, tk := range held {
		if ctrl, err := e.Controller(tk); err == nil {
			if err := ctrl.Remove(ctx); err != nil {
				t.Errorf("remove task %s: %v", tk.ID, err)
			}
		}
	}
	e.Close()
}

// checkAbsent fails if text holds data, raw or base64 (as JSON encodes
// bytes).
func checkAbsent(t *testing.T, where, text, data string) {
	t.Helper()
	for _, enc := range []string{data, base64.StdEncoding.EncodeToString([]byte(data))} {
		if strings.Contains(text, enc) {
			t.Errorf("%s hold the secret (%q)", where, enc)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(x, y)
}

// A new leader's dispatcher delivers secrets as the old one did: the
// worker's task, started under the first leader, keeps what it was given,
// and a task placed after the failover gets the secret from the new
// leader's store (fake executors record what each task was handed).
func TestSecretsAcrossLeaderFailover(t *testing.T) {
	var mu sync.Mutex
	fakes := map[string]*fake.Executor{}
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, Workers: 1, HeartbeatPeriod: time.Second,
		Executor: func(name string) executor.Executor {
			mu.Lock()
			defer mu.Unlock()
			if fakes[name] == nil {
				fakes[name] = fake.New(fake.Config{Hostname: name})
			}
			return fakes[name]
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := "failover-secret-" + api.NewID()
	sec, err := c.Client(c.Leader()).CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: "token"}, Data: api.SecretBytes(data)})
	if err != nil {
		t.Fatal(err)
	}
	spec := api.ServiceSpec{
		Annotations: api.Annotations{Name: "svc"},
		Mode:        api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 1}},
		TaskTemplate: api.TaskSpec{
			Process:   &api.ProcessSpec{Command: []string{"app"}},
			Placement: &api.Placement{Constraints: []string{"node.hostname==worker-1"}},
			Secrets:   []api.SecretReference{{SecretName: "token"}},
		},
	}
	svc, err := c.Client(c.Leader()).CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	worker := fakes["worker-1"]
	// handed waits until want running tasks of svc hold the secret on the
	// worker.
	handed := func(want int) {
		t.Helper()
		c.WaitFor(fmt.Sprintf("%d tasks holding the secret", want), func() (bool, string) {
			tasks, err := c.Client(c.Alive()).ListTasks(ctx, control.TaskFilter{Service: svc.ID, DesiredStates: []api.TaskState{api.TaskStateRunning}})
			if err != nil {
				return false, err.Error()
			}
			n := 0
			for _, tk := range tasks {
				if d, ok := worker.Dependencies(tk.ID); ok && d.Secret(sec.ID) != nil && string(d.Secret(sec.ID).Spec.Data) == data && tk.Status.State == api.TaskStateRunning {
					n++
				}
			}
			return n == want, fmt.Sprintf("%d of %d", n, len(tasks))
		})
	}
	handed(1)
	old := c.Leader()
	c.Kill(old)
	c.WaitFor("a new leader", func() (bool, string) {
		for _, m := range c.Members {
			if m != old && m.Node != nil && m.Node.Manager() != nil && m.Node.Manager().IsLeader() {
				return true, ""
			}
		}
		return false, "none"
	})
	if _, err := c.Client(c.Alive()).ScaleService(ctx, svc.ID, 2); err != nil {
		t.Fatal(err)
	}
	handed(2)
}
