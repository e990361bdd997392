//go:build unix

package main_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

type updTask struct {
	ID           string
	Slot         int
	DesiredState string
	Meta         struct{ CreatedAt time.Time }
	Spec         struct {
		ProcessSpec struct{ Env []string }
	}
	Status struct {
		State     string
		Timestamp time.Time
	}
}

// Issue 7's end-to-end: a rolling update through apiaryctl with
// --update-delay 1s --update-parallelism 2, checked from task timestamps.
func TestRollingUpdateThroughApiaryctl(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	e := &e2e{t: t, bin: build(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	port := 26000 + time.Now().Nanosecond()%1000
	addr := func(i int) string { return fmt.Sprintf("127.0.1.%d:%d", i, port) }
	e.start("m1", addr(1), "init", "--listen-addr", addr(1))
	var wt string
	e.waitFor("the manager to lead", 20*time.Second, func() (bool, string) {
		var err error
		wt, err = e.ctl("m1", "swarm", "join-token", "worker", "-q")
		return err == nil, fmt.Sprint(err)
	})
	for i, name := range []string{"w1", "w2"} {
		e.start(name, addr(i+2), "join", "--listen-addr", addr(i+2), "--token", strings.TrimSpace(wt), addr(1))
	}
	if _, err := e.ctl("m1", "service", "create", "--name", "web", "--replicas", "5", "--env", "APP_VERSION=v1", "--", filepath.Join(e.bin, "webapp")); err != nil {
		t.Fatal(err)
	}
	e.waitFor("5 running tasks", 60*time.Second, func() (bool, string) {
		n, err := e.running("m1", "web")
		return n == 5, fmt.Sprint(n, err)
	})
	start := time.Now()
	if _, err := e.ctl("m1", "service", "update", "--env", "APP_VERSION=v2", "--update-delay", "1s", "--update-parallelism", "2", "web"); err != nil {
		t.Fatal(err)
	}
	var tasks []updTask
	e.waitFor("5 running tasks of v2", 60*time.Second, func() (bool, string) {
		tasks = nil
		if err := e.ctlJSON("m1", &tasks, "service", "ps", "web"); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, tk := range tasks {
			if tk.DesiredState == "running" && tk.Status.State == "running" && strings.Contains(strings.Join(tk.Spec.ProcessSpec.Env, " "), "APP_VERSION=v2") {
				n++
			}
		}
		return n == 5, fmt.Sprint(n)
	})
	var v2 []updTask
	for _, tk := range tasks {
		if strings.Contains(strings.Join(tk.Spec.ProcessSpec.Env, " "), "APP_VERSION=v2") {
			v2 = append(v2, tk)
		}
	}
	if len(v2) != 5 {
		t.Fatalf("%d tasks of v2, want 5 (one per slot, no failures)", len(v2))
	}
	sort.Slice(v2, func(i, j int) bool { return v2[i].Meta.CreatedAt.Before(v2[j].Meta.CreatedAt) })
	// Batches: tasks created together. At most 2 per batch, and each batch
	// created at least 1 s after the previous batch's last task ran.
	var batches [][]updTask
	for _, tk := range v2 {
		if n := len(batches); n > 0 && tk.Meta.CreatedAt.Sub(batches[n-1][0].Meta.CreatedAt) < 500*time.Millisecond {
			batches[n-1] = append(batches[n-1], tk)
			continue
		}
		batches = append(batches, []updTask{tk})
	}
	if len(batches) != 3 {
		t.Fatalf("%d batches, want 3 (2+2+1): %v", len(batches), batches)
	}
	for i, b := range batches {
		if len(b) > 2 {
			t.Fatalf("batch %d replaced %d tasks at once, more than the parallelism of 2", i, len(b))
		}
		if i == 0 {
			continue
		}
		var lastRunning time.Time
		for _, tk := range batches[i-1] {
			if tk.Status.Timestamp.After(lastRunning) {
				lastRunning = tk.Status.Timestamp
			}
		}
		if gap := b[0].Meta.CreatedAt.Sub(lastRunning); gap < time.Second {
			t.Fatalf("batch %d started %v after batch %d ran, less than the 1 s delay", i, gap, i-1)
		}
	}
	t.Logf("rolled 5 tasks in %d batches in %v", len(batches), time.Since(start).Round(time.Millisecond))

	// inspect prints the objects as a JSON array with Docker's field names.
	var inspected []struct {
		ID   string
		Spec struct{ Name string }
	}
	if err := e.ctlJSON("m1", &inspected, "service", "inspect", "web"); err != nil || len(inspected) != 1 || inspected[0].Spec.Name != "web" {
		t.Fatalf("service inspect: %+v %v", inspected, err)
	}
	var nodes []nodeJSON
	if err := e.ctlJSON("m1", &nodes, "node", "inspect", "w1", "m1"); err != nil || len(nodes) != 2 || nodes[0].Description.Hostname != "w1" {
		t.Fatalf("node inspect: %+v %v", nodes, err)
	}
	if out, err := e.ctl("m1", "node", "inspect", "nope"); err == nil {
		t.Fatalf("inspect of an unknown node succeeded: %s", out)
	}

	// swarm leave: a manager refuses without --force; a worker leaves, its
	// daemon exits, the cluster sees it down and can remove it.
	if out, err := e.ctl("m1", "swarm", "leave"); err == nil || !strings.Contains(out, "is a manager") {
		t.Fatalf("manager leave without --force: %v %s", err, out)
	}
	if _, err := e.ctl("w2", "swarm", "leave"); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- e.procs["w2"].cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("apiaryd after leave: %v\n%s", err, e.procs["w2"].log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("apiaryd did not exit after leaving")
	}
	delete(e.procs, "w2")
	e.waitFor("the left node down, its tasks elsewhere", 30*time.Second, func() (bool, string) {
		ns, err := e.nodes("m1")
		if err != nil {
			return false, err.Error()
		}
		for _, n := range ns {
			if n.Description.Hostname == "w2" && n.Status.State != "down" {
				return false, n.Status.State
			}
		}
		r, err := e.running("m1", "web")
		return r == 5, fmt.Sprint(r, err)
	})
	if _, err := e.ctl("m1", "node", "rm", "w2"); err != nil {
		t.Fatal(err)
	}

	// node promote: w1 becomes a reachable manager whose own socket serves
	// the control API; node demote of the leader m1 hands leadership to
	// w1, and m1's socket no longer serves it; the last manager cannot be
	// demoted. The service keeps its 5 tasks throughout.
	managerOf := func(host string) (*nodeJSON, error) {
		ns, err := e.nodes("m1")
		if err != nil {
			ns, err = e.nodes("w1")
		}
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			if n.Description.Hostname == host {
				return &n, nil
			}
		}
		return nil, fmt.Errorf("no node %s", host)
	}
	if _, err := e.ctl("m1", "node", "promote", "w1"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("w1 to be a reachable manager", 60*time.Second, func() (bool, string) {
		n, err := managerOf("w1")
		if err != nil {
			return false, err.Error()
		}
		if n.ManagerStatus == nil || n.ManagerStatus.Reachability != "reachable" {
			return false, fmt.Sprintf("%+v", n.ManagerStatus)
		}
		_, err = e.ctl("w1", "service", "ls")
		return err == nil, fmt.Sprint("w1 socket: ", err)
	})
	if _, err := e.ctl("w1", "node", "demote", "m1"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("m1 demoted and w1 leading", 60*time.Second, func() (bool, string) {
		n, err := managerOf("m1")
		if err != nil {
			return false, err.Error()
		}
		if n.Spec.Role != "worker" || n.ManagerStatus != nil {
			return false, fmt.Sprintf("m1 %s %+v", n.Spec.Role, n.ManagerStatus)
		}
		w, err := managerOf("w1")
		if err != nil || w.ManagerStatus == nil || !w.ManagerStatus.Leader {
			return false, fmt.Sprint("w1 does not lead ", err)
		}
		if _, err := e.ctl("m1", "service", "ls"); err == nil {
			return false, "m1's socket still serves the control API"
		}
		return true, ""
	})
	out, err := e.ctl("w1", "node", "demote", "w1")
	if err == nil || !strings.Contains(out, "last manager") {
		t.Fatalf("demoting the last manager: %v %s", err, out)
	}
	e.waitFor("the service at 5 running tasks", 30*time.Second, func() (bool, string) {
		r, err := e.running("w1", "web")
		return r == 5, fmt.Sprint(r, err)
	})
}
