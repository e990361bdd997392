//go:build unix

package main_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitOf watches a daemon the test takes over from e (stopAll no longer
// waits for it): the channel yields its exit error once it ended.
func (e *e2e) exitOf(name string) <-chan error {
	p := e.procs[name]
	delete(e.procs, name)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	e.t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
	})
	return done
}

// A node removed from the cluster (issue 12, item 6) stops within seconds
// saying so, rather than retrying for ever; restarted, it does the same.
func TestRemovedNodeExitsSayingSo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	e := &e2e{t: t, bin: build(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	port := 27000 + time.Now().Nanosecond()%1000
	addr := func(i int) string { return fmt.Sprintf("127.0.4.%d:%d", i, port) }
	e.start("m1", addr(1), "init", "--listen-addr", addr(1), "--executor", "fake")
	var wt string
	e.waitFor("the manager to lead", 20*time.Second, func() (bool, string) {
		var err error
		wt, err = e.ctl("m1", "swarm", "join-token", "worker", "-q")
		return err == nil, fmt.Sprint(err)
	})
	e.start("w1", addr(2), "join", "--listen-addr", addr(2), "--executor", "fake", "--token", strings.TrimSpace(wt), addr(1))
	e.waitFor("w1 ready", 30*time.Second, func() (bool, string) {
		ns, err := e.nodes("m1")
		for _, n := range ns {
			if n.Description.Hostname == "w1" && n.Status.State == "ready" {
				return true, ""
			}
		}
		return false, fmt.Sprint(ns, err)
	})
	w1 := e.procs["w1"]
	exited := e.exitOf("w1")
	if _, err := e.ctl("m1", "node", "rm", "--force", "w1"); err != nil {
		t.Fatal(err)
	}
	removedAt := time.Now()
	const within = 5 * time.Second
	// since is when the node was removed, or restarted.
	check := func(what string, since time.Time, exited <-chan error, log *syncBuffer) {
		t.Helper()
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("%s: exit %v, want status 1\n%s", what, err, log.String())
			}
			t.Logf("%s: exited %v after %s", what, time.Since(since).Round(time.Millisecond), since.Format("15:04:05.000"))
		case <-time.After(within):
			t.Fatalf("%s: still running %v after its removal\n%s", what, within, log.String())
		}
		if out := log.String(); !strings.Contains(out, "removed from the cluster") {
			t.Fatalf("%s: the daemon did not say it was removed:\n%s", what, out)
		}
	}
	check("running node", removedAt, exited, w1.log)

	// Restarted from its data dir, it learns the same at once.
	restart := time.Now()
	e.start("w1", addr(2), "run", "--executor", "fake")
	w1 = e.procs["w1"]
	check("restarted node", restart, e.exitOf("w1"), w1.log)
}
