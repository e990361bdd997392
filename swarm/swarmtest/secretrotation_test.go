package swarmtest_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// readerScript reads the task's secret over and over, recording each
// read's time and checksum in a file of its own under $OUT named
// SLOT-TASKID, until it is stopped.
const readerScript = `out="$OUT/$APIARY_TASK_SLOT-$APIARY_TASK_ID"
while :; do
	s=$(md5sum < "$APIARY_SECRETS_DIR/key" 2>/dev/null | cut -c1-32)
	echo "$(date +%s%N) ${s:-missing}" >> "$out"
	sleep 0.02
done`

// read is one read a task recorded.
type read struct {
	at  time.Time
	sum string
}

// reads returns what each task recorded, by file name (SLOT-TASKID).
func reads(t *testing.T, dir string) map[string][]read {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]read{}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ns, sum, ok := strings.Cut(sc.Text(), " ")
			n, err := strconv.ParseInt(ns, 10, 64)
			if !ok || err != nil {
				continue // a line being written as we read
			}
			out[e.Name()] = append(out[e.Name()], read{time.Unix(0, n), sum})
		}
		f.Close()
	}
	return out
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// Issue 16: a secret update rolls a service to the new version and
// `service rollback` returns it, with tasks reading the file the whole
// time. Two process tasks on worker-1 read their secret file every 20 ms;
// the update (start-first, one at a time) replaces each with a task of
// the new version and the rollback replaces those with tasks of the old.
// Every read of every task is one version whole, the same all its life
// (a task's file never changes: a new version is a new task), each slot
// always has a reader (no gap over 5 s across its tasks), and the
// running tasks end on the version wanted. worker-2, running none of
// them, is never sent any version; the data is in no log line at debug
// level and no inspect output; once the service is gone the old version
// is collected, worker-1's agent forgets both and their files are gone.
func TestSecretRotationRollsOut(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	sent := &deliveries{sent: map[string][]string{}}
	c, execRoot := processCluster(t, logs, sent)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := c.Client(c.Leader())
	w1, w2 := c.Members[1], c.Members[2]

	// 64 KiB each: a read of part of one would not match its checksum.
	// The tokens are what the scans look for: a line holding a part of
	// the data holds one.
	token1, token2 := api.NewID(), api.NewID()
	v1data := strings.Repeat(token1, 64<<10/api.IDLength)
	v2data := strings.Repeat(token2, 64<<10/api.IDLength)
	v1, err := cl.CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: "api-key"}, Data: api.SecretBytes(v1data)})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	update := api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStartFirst, Monitor: 500 * time.Millisecond,
		FailureAction: api.UpdateFailureActionPause}
	spec := api.ServiceSpec{
		Annotations:    api.Annotations{Name: "reader"},
		Mode:           api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 2}},
		UpdateConfig:   &update,
		RollbackConfig: &update,
		TaskTemplate: api.TaskSpec{
			Process:   &api.ProcessSpec{Command: []string{"/bin/sh", "-c", readerScript}, Env: []string{"OUT=" + out}},
			Placement: &api.Placement{Constraints: []string{"node.hostname==worker-1"}},
			Secrets:   []api.SecretReference{{SecretName: "api-key", File: &api.FileTarget{Name: "key"}}},
		},
	}
	svc, err := cl.CreateService(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}

	// settled waits until the service's update is over and its two
	// running tasks hold version id, read it, and read nothing else.
	settled := func(what, id, sum string) []*api.Task {
		t.Helper()
		var running []*api.Task
		c.WaitFor(what, func() (bool, string) {
			s, err := cl.GetService(ctx, svc.ID)
			if err != nil {
				return false, err.Error()
			}
			if u := s.UpdateStatus; u != nil && u.State != api.UpdateStateCompleted && u.State != api.UpdateStateRollbackCompleted {
				return false, "update " + string(u.State)
			}
			if err := cl.WaitConverged(ctx, svc.ID); err != nil {
				return false, err.Error()
			}
			tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: svc.ID, DesiredStates: []api.TaskState{api.TaskStateRunning}})
			if err != nil {
				return false, err.Error()
			}
			got := reads(t, out)
			running = nil
			for _, tk := range tasks {
				rs := got[fmt.Sprintf("%d-%s", tk.Slot, tk.ID)]
				if tk.Status.State != api.TaskStateRunning || tk.Spec.Secrets[0].SecretID != id || len(rs) == 0 || rs[len(rs)-1].sum != sum {
					return false, fmt.Sprintf("task %s: %s, secret %s, %d reads", tk.ID, tk.Status.State, tk.Spec.Secrets[0].SecretID, len(rs))
				}
				running = append(running, tk)
			}
			return len(running) == 2, fmt.Sprintf("%d running", len(running))
		})
		return running
	}
	first := settled("two readers of version 1", v1.ID, md5hex(v1data))

	up, err := cl.UpdateSecret(ctx, "api-key", api.SecretSpec{Data: api.SecretBytes(v2data)})
	if err != nil {
		t.Fatal(err)
	}
	if up.Secret.Version != 2 || !slices.Equal(up.Services, []string{"reader"}) {
		t.Fatalf("update: version %d, services %v", up.Secret.Version, up.Services)
	}
	second := settled("two readers of version 2", up.Secret.ID, md5hex(v2data))
	if _, err := cl.RollbackService(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	third := settled("two readers of version 1 again", v1.ID, md5hex(v1data))
	for _, tk := range append(slices.Clone(first), second...) {
		if slices.ContainsFunc(third, func(x *api.Task) bool { return x.ID == tk.ID }) {
			t.Errorf("task %s survived a change of its secret", tk.ID)
		}
	}

	for name, rs := range reads(t, out) {
		t.Logf("task %s: %d reads of %s from %v to %v", name, len(rs), rs[0].sum, rs[0].at.Format("15:04:05.000"), rs[len(rs)-1].at.Format("15:04:05.000"))
	}
	// Every read whole and of its task's one version; no slot without a
	// reader for long.
	want := map[string]bool{md5hex(v1data): true, md5hex(v2data): true}
	bySlot := map[string][]read{}
	for name, rs := range reads(t, out) {
		for _, r := range rs {
			if !want[r.sum] {
				t.Fatalf("task %s read %q: not one version whole", name, r.sum)
			}
			if r.sum != rs[0].sum {
				t.Fatalf("task %s read both versions: its file changed under it", name)
			}
		}
		slot, _, _ := strings.Cut(name, "-")
		bySlot[slot] = append(bySlot[slot], rs...)
	}
	if len(bySlot) != 2 {
		t.Fatalf("reads of slots %v, want 2", slices.Collect(maps.Keys(bySlot)))
	}
	for slot, rs := range bySlot {
		slices.SortFunc(rs, func(a, b read) int { return a.at.Compare(b.at) })
		for i := 1; i < len(rs); i++ {
			if gap := rs[i].at.Sub(rs[i-1].at); gap > 5*time.Second {
				t.Errorf("slot %s had no reader for %v (at %v)", slot, gap, rs[i-1].at)
			}
		}
	}

	// worker-2 never got a version; worker-1 got both.
	if to := sent.to(w2.Node.NodeID()); len(to) != 0 {
		t.Errorf("worker-2, which runs no reader, was sent secrets %v", to)
	}
	if to := slices.Compact(slices.Sorted(slices.Values(sent.to(w1.Node.NodeID())))); !slices.Equal(to, slices.Sorted(slices.Values([]string{v1.ID, up.Secret.ID}))) {
		t.Errorf("worker-1 was sent %v, want both versions", to)
	}
	// Inspect output: no version's data.
	var shown strings.Builder
	for _, o := range []any{must(cl.GetSecret(ctx, "api-key")), must(cl.GetSecret(ctx, "api-key@1")), must(cl.SecretVersions(ctx, "api-key")),
		must(cl.GetService(ctx, svc.ID)), must(cl.ListTasks(ctx, control.TaskFilter{Service: svc.ID})), up} {
		shown.WriteString(fmt.Sprintf("%+v", o))
		b, _ := json.Marshal(o)
		shown.Write(b)
	}
	for _, token := range []string{token1, token2} {
		checkAbsent(t, "inspect output", shown.String(), token)
	}

	// The service goes: its tasks stop, their files go, the agent forgets
	// both versions, and the superseded one is collected.
	if err := cl.RemoveService(ctx, svc.ID); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the readers' secrets gone from worker-1", func() (bool, string) {
		held, _ := w1.Node.Worker().HeldDependencies()
		if len(held) != 0 {
			return false, fmt.Sprintf("agent holds %v", held)
		}
		for _, tk := range append(append(first, second...), third...) {
			dir := filepath.Join(execRoot, "worker-1", "tasks", tk.ID, "secrets")
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				return false, dir + ": " + errString(err)
			}
		}
		return true, ""
	})
	c.WaitFor("version 1 collected", func() (bool, string) {
		vs, err := cl.SecretVersions(ctx, "api-key")
		if err != nil {
			return false, err.Error()
		}
		return len(vs) == 1 && vs[0].ID == up.Secret.ID, fmt.Sprintf("%d versions", len(vs))
	})
	if held, _ := w2.Node.Worker().HeldDependencies(); len(held) != 0 {
		t.Errorf("worker-2's agent holds %v", held)
	}
	if err := cl.RemoveSecret(ctx, "api-key"); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{token1, token2} {
		checkAbsent(t, "the logs", logs.String(), token)
	}
	if !strings.Contains(logs.String(), "level=DEBUG") {
		t.Error("no debug line logged: the scan saw less than it should")
	}
}

// An update of a 500 KiB secret used by 40 services whose specs are near
// api.MaxSpecBytes, on three managers: the first write (the new version,
// the old one marked superseded and 16 services with both their specs)
// and the next ones fit raft's entries (all 40 at once would not: 10 MB),
// and every service ends on the new version with its old spec kept.
func TestSecretUpdateOfManyLargeServices(t *testing.T) {
	// Megabytes a write: a slower tick than the tests' 20 ms, so a loaded
	// machine (under -race) does not call elections while a leader
	// writes them; this test is about their size, not failover.
	c := swarmtest.Start(t, swarmtest.Options{Managers: 3, RaftTick: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := c.Client(c.Leader())
	data := strings.Repeat("k", api.MaxSecretSize)
	v1, err := cl.CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: "big"}, Data: api.SecretBytes(data)})
	if err != nil {
		t.Fatal(err)
	}
	env := make([]string, 0, 110)
	for i := range cap(env) {
		env = append(env, fmt.Sprintf("VAR%d=%s", i, strings.Repeat("v", 1<<10)))
	}
	var names []string
	for i := range 40 {
		spec := api.ServiceSpec{
			Annotations: api.Annotations{Name: fmt.Sprintf("svc%02d", i)},
			Mode:        api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 0}},
			TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}, Env: env},
				Secrets: []api.SecretReference{{SecretName: "big"}}},
		}
		if _, err := cl.CreateService(ctx, spec); err != nil {
			t.Fatal(err)
		}
		names = append(names, spec.Name)
	}
	up, err := cl.UpdateSecret(ctx, "big", api.SecretSpec{Data: api.SecretBytes(strings.Repeat("K", api.MaxSecretSize))})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(up.Services, names) {
		t.Fatalf("moved %v", up.Services)
	}
	// Every manager's store has it all.
	for _, m := range c.Members {
		mcl := c.Client(m)
		c.WaitFor(m.Name+" has every service on version 2", func() (bool, string) {
			for _, name := range names {
				svc, err := mcl.GetService(ctx, name)
				if err != nil {
					return false, err.Error()
				}
				if svc.Spec.TaskTemplate.Secrets[0].SecretID != up.Secret.ID || svc.PreviousSpec.TaskTemplate.Secrets[0].SecretID != v1.ID {
					return false, name + " not moved"
				}
			}
			// The versions' own fields replicate too.
			vs, err := mcl.SecretVersions(ctx, "big")
			if err != nil || len(vs) != 2 || vs[0].ID != up.Secret.ID || vs[0].Version != 2 || vs[0].Superseded ||
				vs[1].ID != v1.ID || !vs[1].Superseded || vs[1].DataVersion() != 1 {
				return false, fmt.Sprintf("versions %+v %v", vs, err)
			}
			return true, ""
		})
	}
}

// A secret update is rolled out like any update, failure action included:
// version 2 makes the service's task fail, so the update (failure action
// rollback) returns the service to version 1 by itself, and its running
// task reads version 1 again.
func TestSecretUpdateFailureRollsBack(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	c, _ := processCluster(t, logs, &deliveries{sent: map[string][]string{}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := c.Client(c.Leader())
	v1, err := cl.CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: "flag"}, Data: api.SecretBytes("good")})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	delay := 100 * time.Millisecond
	update := api.UpdateConfig{Parallelism: 1, Order: api.UpdateOrderStopFirst, Monitor: 3 * time.Second,
		FailureAction: api.UpdateFailureActionRollback}
	rollback := update
	rollback.FailureAction = api.UpdateFailureActionPause
	svc, err := cl.CreateService(ctx, api.ServiceSpec{
		Annotations:    api.Annotations{Name: "picky"},
		Mode:           api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 1}},
		UpdateConfig:   &update,
		RollbackConfig: &rollback,
		TaskTemplate: api.TaskSpec{
			// It runs only with a good flag, recording that it did.
			Process: &api.ProcessSpec{Command: []string{"/bin/sh", "-c", `grep -qx good "$APIARY_SECRETS_DIR/flag" || exit 3
touch "$OUT/$APIARY_TASK_ID"
exec sleep 300`}, Env: []string{"OUT=" + out}},
			Placement:     &api.Placement{Constraints: []string{"node.hostname==worker-1"}},
			RestartPolicy: &api.RestartPolicy{Delay: &delay},
			Secrets:       []api.SecretReference{{SecretName: "flag"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// runsOn waits until the service's running task uses secret id and
	// has found it good.
	runsOn := func(what, id string, state string) {
		t.Helper()
		c.WaitFor(what, func() (bool, string) {
			s, err := cl.GetService(ctx, svc.ID)
			if err != nil {
				return false, err.Error()
			}
			if state != "" && (s.UpdateStatus == nil || s.UpdateStatus.State != state) {
				return false, fmt.Sprintf("update status %+v", s.UpdateStatus)
			}
			tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: svc.ID, DesiredStates: []api.TaskState{api.TaskStateRunning}})
			if err != nil || len(tasks) != 1 {
				return false, fmt.Sprintf("%d running tasks %v", len(tasks), err)
			}
			tk := tasks[0]
			_, ferr := os.Stat(filepath.Join(out, tk.ID))
			return tk.Status.State == api.TaskStateRunning && tk.Spec.Secrets[0].SecretID == id && ferr == nil,
				fmt.Sprintf("task %s %s on %s: %s", tk.ID, tk.Status.State, tk.Spec.Secrets[0].SecretID, errString(ferr))
		})
	}
	runsOn("the task running on version 1", v1.ID, "")
	up, err := cl.UpdateSecret(ctx, "flag", api.SecretSpec{Data: api.SecretBytes("bad")})
	if err != nil {
		t.Fatal(err)
	}
	runsOn("the update rolled back to version 1", v1.ID, api.UpdateStateRollbackCompleted)
	s, err := cl.GetService(ctx, svc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.PreviousSpec == nil || s.PreviousSpec.TaskTemplate.Secrets[0].SecretID != up.Secret.ID {
		t.Errorf("after the automatic rollback the previous spec is %+v, want version 2's", s.PreviousSpec)
	}
}
