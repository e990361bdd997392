package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// service create, scale and update wait for the rollout with a progress
// display (plain lines when the output is not a terminal: the overall
// count when it changes, each slot's state when it changes, then "verify:
// Service converged"); -d returns at once printing the ID alone; --dry-run
// prints the plan and changes nothing.
func TestRolloutProgressDetachAndDryRun(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 2})
	dir := c.Members[0].DataDir

	out := mustCtl(t, dir, "service", "create", "--name", "web", "--replicas", "3", "--", "/bin/app")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines[0]) != len(api.NewID()) {
		t.Fatalf("create printed %q first, want the service ID", lines[0])
	}
	for _, want := range []string{"overall progress: 3 out of 3 tasks", "1/3: running", "2/3: running", "3/3: running"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("create's progress lacks %q:\n%s", want, out)
		}
	}
	if lines[len(lines)-1] != "verify: Service converged" {
		t.Errorf("create's progress ends %q:\n%s", lines[len(lines)-1], out)
	}
	if strings.Contains(out, "\x1b[") || strings.Contains(out, "[=") {
		t.Errorf("progress to a pipe has terminal controls or bars:\n%q", out)
	}
	// It returned converged: every task runs.
	var tasks []*api.Task
	if err := json.Unmarshal([]byte(mustCtl(t, dir, "service", "ps", "web", "--format", "json")), &tasks); err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, tk := range tasks {
		if tk.Status.State == api.TaskStateRunning {
			running++
		}
	}
	if running != 3 {
		t.Errorf("%d of 3 tasks running once create returned", running)
	}

	out = mustCtl(t, dir, "service", "scale", "web=5")
	if !strings.HasPrefix(out, "web scaled to 5\n") || !strings.Contains(out, "5/5: running\n") || !strings.HasSuffix(out, "verify: Service converged\n") {
		t.Errorf("scale printed:\n%s", out)
	}

	out = mustCtl(t, dir, "service", "create", "-d", "--name", "quick", "--replicas", "2", "--", "/bin/app")
	if strings.Count(out, "\n") != 1 || len(strings.TrimSpace(out)) != len(api.NewID()) {
		t.Errorf("create -d printed %q, want the ID alone", out)
	}
	out = mustCtl(t, dir, "service", "update", "-q", "--env", "A=1", "quick")
	if out != "quick\n" {
		t.Errorf("update -q printed %q, want the name alone", out)
	}

	// rollback waits too: back to 3 replicas, converged.
	out = mustCtl(t, dir, "service", "rollback", "web")
	if !strings.HasPrefix(out, "web\n") || !strings.Contains(out, "overall progress: 3 out of 3 tasks") || !strings.HasSuffix(out, "verify: Service converged\n") {
		t.Errorf("rollback printed:\n%s", out)
	}
	mustCtl(t, dir, "service", "scale", "-q", "web=5") // waits, silently

	before := mustCtl(t, dir, "service", "inspect", "web")
	out = mustCtl(t, dir, "service", "update", "--dry-run", "--replicas", "6", "--env", "V=2", "web")
	for _, want := range []string{`update service "web" (replicated): 1 to create, 5 to replace, 0 to remove, 0 unchanged`, "rollout: would end completed", "dry run: nothing was changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("update --dry-run lacks %q:\n%s", want, out)
		}
	}
	if after := mustCtl(t, dir, "service", "inspect", "web"); after != before {
		t.Errorf("update --dry-run changed the service")
	}
	out = mustCtl(t, dir, "service", "create", "--dry-run", "--name", "nowhere", "--replicas", "2", "--constraint", "node.labels.zone==z", "--", "/bin/app")
	if !strings.Contains(out, "nowhere.1") || !strings.Contains(out, "not placed: no suitable node (") || !strings.Contains(out, "scheduler: 2 task(s) would fit on no node") {
		t.Errorf("create --dry-run of an unplaceable service:\n%s", out)
	}
	if _, err := ctl(t, dir, "service", "inspect", "nowhere"); err == nil {
		t.Error("create --dry-run created the service")
	}
}
