//go:build unix

package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
)

// The end-to-end test of issue 5: the real binaries as separate OS
// processes on 127.0.0.1-5, driven with apiaryctl.

type proc struct {
	name string
	dir  string
	addr string
	cmd  *exec.Cmd
	log  *syncBuffer
}

// syncBuffer is a log the daemon's output goroutine writes while the test
// may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type e2e struct {
	t     *testing.T
	bin   string
	root  string
	procs map[string]*proc
}

func build(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, pkg := range []string{"./examples/apiaryd", "./examples/apiaryctl", "./examples/webapp/cmd/webapp"} {
		cmd := exec.Command("go", "build", "-o", bin+"/", pkg)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	return bin
}

func (e *e2e) start(name, addr string, args ...string) *proc {
	e.t.Helper()
	p := &proc{name: name, dir: filepath.Join(e.root, name), addr: addr, log: &syncBuffer{}}
	full := append(args, "--data-dir", p.dir, "--hostname", name, "--log-level", "warn", "--heartbeat-period", "300ms")
	p.cmd = exec.Command(filepath.Join(e.bin, "apiaryd"), full...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.procs[name] = p
	return p
}

// kill9 kills the daemon alone: its tasks, in their own process groups,
// live on, as after a crash of the daemon.
func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (e *e2e) ctl(node string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = detached(args)
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "apiaryctl"), append([]string{"--socket", filepath.Join(e.procs[node].dir, "control.sock")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("apiaryctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// detached adds -d to service create, update, scale and rollback, which otherwise
// show the rollout's progress until the service converges (as docker's
// do): the tests wait for what they need themselves, and some make
// services that never converge (a process that exits, a task that fits
// nowhere). A test that wants the progress display passes --detach=false.
func detached(args []string) []string {
	if len(args) < 2 || args[0] != "service" || !slices.Contains([]string{"create", "update", "scale", "rollback"}, args[1]) {
		return args
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-d" || strings.HasPrefix(a, "--detach") || a == "--dry-run" {
			return args
		}
	}
	return append([]string{args[0], args[1], "-d"}, args[2:]...)
}

func (e *e2e) ctlJSON(node string, v any, args ...string) error {
	out, err := e.ctl(node, append(args, "--format", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

// waitFor is testutil.EventuallyWhy that also shows every node's log when
// it times out: a cluster that did not converge explains itself there.
func (e *e2e) waitFor(what string, d time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	held := false
	defer func() {
		if !held { // EventuallyWhy failed the test (t.Fatalf runs the defers)
			for _, p := range e.procs {
				e.t.Logf("--- %s log:\n%s", p.name, p.log.String())
			}
		}
	}()
	testutil.EventuallyWhy(e.t, d, what, cond)
	held = true
}

type nodeJSON struct {
	ID            string
	Spec          struct{ Role string }
	Description   struct{ Hostname string }
	Status        struct{ State string }
	ManagerStatus *struct {
		Leader       bool
		Addr         string
		Reachability string
	}
}

type taskJSON struct {
	ID           string
	Slot         int
	NodeID       string
	DesiredState string
	Status       struct{ State string }
}

// workerToken waits for via to lead and answer its worker join token.
func (e *e2e) workerToken(via string) string {
	e.t.Helper()
	var wt string
	e.waitFor(via+" to lead", 30*time.Second, func() (bool, string) {
		out, err := e.ctl(via, "swarm", "join-token", "worker", "-q")
		wt = strings.TrimSpace(out)
		return err == nil, fmt.Sprint(err)
	})
	return wt
}

// waitReady waits until via lists want nodes, all ready.
func (e *e2e) waitReady(via string, want int) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d ready nodes", want), 60*time.Second, func() (bool, string) {
		ns, err := e.nodes(via)
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range ns {
			if n.Status.State == "ready" {
				ready++
			}
		}
		return ready == want && len(ns) == want, fmt.Sprintf("%d of %d ready", ready, len(ns))
	})
}

func (e *e2e) nodes(via string) ([]nodeJSON, error) {
	var ns []nodeJSON
	err := e.ctlJSON(via, &ns, "node", "ls")
	return ns, err
}

func (e *e2e) running(via, svc string) (int, error) {
	var ts []taskJSON
	if err := e.ctlJSON(via, &ts, "service", "ps", svc); err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		if t.DesiredState == "running" && t.Status.State == "running" {
			n++
		}
	}
	return n, nil
}

func TestBinariesClusterSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	e := &e2e{t: t, bin: build(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	port := 25000 + os.Getpid()%1000
	addr := func(i int) string { return fmt.Sprintf("127.0.0.%d:%d", i, port) }
	e.start("m1", addr(1), "init", "--listen-addr", addr(1))
	var mt string
	e.waitFor("the first manager to lead", 20*time.Second, func() (bool, string) {
		var err error
		mt, err = e.ctl("m1", "swarm", "join-token", "manager", "-q")
		return err == nil, fmt.Sprint(err)
	})
	wt, err := e.ctl("m1", "swarm", "join-token", "worker", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"m2", "m3"} {
		e.start(name, addr(i+2), "join", "--listen-addr", addr(i+2), "--token", strings.TrimSpace(mt), addr(1))
	}
	for i, name := range []string{"w1", "w2"} {
		e.start(name, addr(i+4), "join", "--listen-addr", addr(i+4), "--token", strings.TrimSpace(wt), addr(1))
	}
	e.waitFor("5 ready nodes, 3 managers, 1 leader", 60*time.Second, func() (bool, string) {
		ns, err := e.nodes("m1")
		if err != nil {
			return false, err.Error()
		}
		ready, managers, leaders := 0, 0, 0
		for _, n := range ns {
			if n.Status.State == "ready" {
				ready++
			}
			if n.Spec.Role == "manager" && n.ManagerStatus != nil {
				managers++
				if n.ManagerStatus.Leader {
					leaders++
				}
			}
		}
		return ready == 5 && managers == 3 && leaders == 1, fmt.Sprintf("%d ready, %d managers, %d leaders", ready, managers, leaders)
	})

	if _, err := e.ctl("m1", "service", "create", "--name", "web", "--replicas", "4", "--env", "APP_VERSION=v1", "--", filepath.Join(e.bin, "webapp")); err != nil {
		t.Fatal(err)
	}
	e.waitFor("4 running tasks", 60*time.Second, func() (bool, string) {
		n, err := e.running("m1", "web")
		return n == 4, fmt.Sprint(n, err)
	})
	// Every task's output reaches the CLI from whichever node runs it.
	e.waitFor("the tasks' output in service logs", 30*time.Second, func() (bool, string) {
		out, err := e.ctl("m1", "service", "logs", "web")
		return err == nil && strings.Count(out, "listening on http://") == 4, out
	})
	if _, err := e.ctl("m1", "service", "scale", "web=6"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("6 running tasks", 60*time.Second, func() (bool, string) {
		n, err := e.running("m1", "web")
		return n == 6, fmt.Sprint(n, err)
	})

	// Find and kill -9 the leader.
	ns, err := e.nodes("m1")
	if err != nil {
		t.Fatal(err)
	}
	leader := ""
	for _, n := range ns {
		if n.ManagerStatus != nil && n.ManagerStatus.Leader {
			leader = n.Description.Hostname
		}
	}
	if e.procs[leader] == nil {
		t.Fatalf("leader %q is not one of ours", leader)
	}
	e.procs[leader].kill9()
	other := "m1"
	if leader == "m1" {
		other = "m2"
	}
	e.waitFor("a new leader", 30*time.Second, func() (bool, string) {
		ns, err := e.nodes(other)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range ns {
			if n.ManagerStatus != nil && n.ManagerStatus.Leader && n.Description.Hostname != leader {
				return true, ""
			}
		}
		return false, "the dead leader is still named"
	})
	// The service is still there and every task runs again (the dead
	// manager's tasks, if any, are replaced once it is declared down).
	e.waitFor("6 running tasks after the failover", 60*time.Second, func() (bool, string) {
		n, err := e.running(other, "web")
		return n == 6, fmt.Sprint(n, err)
	})
	// Writes work through the new leader.
	if _, err := e.ctl(other, "service", "scale", "web=5"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("5 running tasks", 60*time.Second, func() (bool, string) {
		n, err := e.running(other, "web")
		return n == 5, fmt.Sprint(n, err)
	})

	// The killed manager comes back from its data dir and rejoins.
	old := e.procs[leader]
	e.start(leader, old.addr, "run")
	e.waitFor("the restarted manager to rejoin and catch up", 60*time.Second, func() (bool, string) {
		var svcs []struct {
			Spec struct {
				Mode struct{ Replicated struct{ Replicas int } }
			}
		}
		if err := e.ctlJSON(leader, &svcs, "service", "ls"); err != nil {
			return false, err.Error()
		}
		if len(svcs) != 1 || svcs[0].Spec.Mode.Replicated.Replicas != 5 {
			return false, fmt.Sprintf("%+v", svcs)
		}
		ns, err := e.nodes(other)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range ns {
			if n.Description.Hostname == leader {
				return n.Status.State == "ready", n.Status.State
			}
		}
		return false, "not listed"
	})
}

// stopAll stops every daemon (SIGTERM, then SIGKILL) and what tasks they
// left: tasks run in their own process groups.
func (e *e2e) stopAll() {
	for _, p := range e.procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range e.procs {
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.kill9()
		}
	}
	// Tasks run in their own process groups: stop what is left.
	exec.Command("pkill", "-f", filepath.Join(e.bin, "webapp")).Run()
}
