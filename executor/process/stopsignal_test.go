//go:build unix

package process

import (
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// A task's stop signal replaces SIGTERM: a process that ignores SIGTERM
// but exits on SIGINT stops at once with StopSignal SIGINT (by name, short
// name or number), not after its grace period.
func TestStopSignal(t *testing.T) {
	e := newTestExecutor(t, Config{})
	for _, sig := range []string{"SIGINT", "int", "2"} {
		t.Run(sig, func(t *testing.T) {
			task := withGrace(shTask("trap '' TERM; trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.05; done"), 30*time.Second)
			task.Spec.Process.StopSignal = sig
			c := start(t, e, task)
			waitLine(t, c, 5*time.Second, func(l string) bool { return l == "ready" })
			begin := time.Now()
			if err := c.Shutdown(ctxT(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("Shutdown with stop signal %s took %v (the grace period is 30s)", sig, d)
			}
			if st := waitExit(t, c, time.Second); st.ExitCode != 7 {
				t.Errorf("exit = %+v, want the INT trap's 7", st)
			}
		})
	}
}

func TestStopSignalMapping(t *testing.T) {
	for _, c := range []struct {
		in   string
		want syscall.Signal
	}{{"", syscall.SIGTERM}, {"SIGQUIT", syscall.SIGQUIT}, {"usr1", syscall.SIGUSR1}, {"9", syscall.SIGKILL}, {"bogus", syscall.SIGTERM}} {
		if got := stopSignal(api.TaskSpec{Process: &api.ProcessSpec{StopSignal: c.in}}); got != c.want {
			t.Errorf("stopSignal(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
