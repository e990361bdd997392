//go:build unix

package process

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/internal/testutil"
)

// readCount reads the counter file a ticking task keeps in its work dir.
func readCount(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, workDirName, "count"))
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// TestAdoptAfterAgentDeath starts a task from an agent process that dies,
// then adopts it with a new executor on the same DataDir: the task kept
// running and writing output while no agent read it, the new executor
// collects that output and more, and can stop it.
func TestAdoptAfterAgentDeath(t *testing.T) {
	dataDir := t.TempDir()
	task := shTask(`i=0; while :; do i=$((i+1)); echo "tick $i"; echo $i > count.tmp; mv count.tmp count; sleep 0.02; done`)
	pid := startInOtherAgent(t, dataDir, task)
	taskDir := filepath.Join(dataDir, "tasks", task.ID)

	// With the agent gone, nothing reads the output: the task must go on
	// (no SIGPIPE) and its output wait in the pipe.
	testutil.Eventually(t, 5*time.Second, "the task ticks", func() bool { return readCount(taskDir) >= 1 })
	orphanTick := readCount(taskDir) + 3
	testutil.Eventually(t, 5*time.Second, "the task ticks with no agent", func() bool { return readCount(taskDir) >= orphanTick })
	if processGone(pid, 0) {
		t.Fatal("the task died with its agent")
	}

	e := newTestExecutor(t, Config{DataDir: dataDir})
	tasks, err := e.ListTasks(context.Background())
	if err != nil || len(tasks) != 1 || tasks[0].ID != task.ID {
		t.Fatalf("ListTasks = %v, %v; want the orphaned task", tasks, err)
	}
	c, err := e.Controller(tasks[0])
	if err != nil {
		t.Fatal(err)
	}
	if cs, _ := c.Status(context.Background()); cs.PID != pid {
		t.Fatalf("adopted Status = %+v, want PID %d", cs, pid)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("Start of an adopted task: %v", err)
	}
	if _, err := c.Wait(ctxT(t, 50*time.Millisecond)); err != context.DeadlineExceeded {
		t.Fatalf("Wait on a running adopted task = %v", err)
	}
	// Output written while no agent read it, and output written after.
	waitLine(t, c, 10*time.Second, func(l string) bool { return l == "tick "+strconv.Itoa(orphanTick) })
	later := readCount(taskDir) + 3
	waitLine(t, c, 10*time.Second, func(l string) bool { return l == "tick "+strconv.Itoa(later) })

	begin := time.Now()
	if err := c.Shutdown(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("Shutdown of the adopted task took %v", d)
	}
	st := waitExit(t, c, time.Second)
	if st.ExitCode != -1 || !st.Failed() || !strings.Contains(st.Message, "SIGTERM") || !strings.Contains(st.Message, "unknown") {
		t.Errorf("exit of an adopted task = %+v, want an unknown status after SIGTERM", st)
	}
	testutil.Eventually(t, 5*time.Second, "the adopted task is gone", func() bool { return processGone(pid, 0) })
	if again := waitExit(t, c, time.Second); again != st {
		t.Errorf("second Wait = %+v, want %+v", again, st)
	}
	// Following output ends now that the task is gone.
	if got := readLogs(t, c, executor.LogOptions{Follow: true, Tail: 1}); !strings.HasPrefix(got, "tick ") {
		t.Errorf("Logs(Follow, Tail 1) after the exit = %q", got)
	}
	if err := c.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(taskDir); !os.IsNotExist(err) {
		t.Errorf("task directory after Remove: %v", err)
	}
}

// TestAdoptTerminate kills an adopted task, and its process group.
func TestAdoptTerminate(t *testing.T) {
	dataDir := t.TempDir()
	task := shTask("trap '' TERM; sleep 300 & echo $! > child; wait")
	pid := startInOtherAgent(t, dataDir, task)
	taskDir := filepath.Join(dataDir, "tasks", task.ID)
	var child int
	testutil.Eventually(t, 5*time.Second, "the task forks", func() bool {
		b, _ := os.ReadFile(filepath.Join(taskDir, workDirName, "child"))
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return child > 0
	})
	e := newTestExecutor(t, Config{DataDir: dataDir})
	c, _ := e.Controller(task)
	if err := c.Terminate(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the task and its child die", func() bool { return processGone(pid, 0) && processGone(child, 0) })
}

// TestAdoptGone: the task ended while no agent ran; the next one reports an
// unknown exit instead of waiting forever.
func TestAdoptGone(t *testing.T) {
	dataDir := t.TempDir()
	task := shTask("exec sleep 300")
	pid := startInOtherAgent(t, dataDir, task)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the task dies", func() bool { return processGone(pid, 0) })

	e := newTestExecutor(t, Config{DataDir: dataDir})
	c, _ := e.Controller(task)
	st := waitExit(t, c, 5*time.Second)
	if st.ExitCode != -1 || !st.Failed() || !strings.Contains(st.Message, "unknown") {
		t.Errorf("exit of a task that ended unseen = %+v", st)
	}
	// The record now holds the exit: a third executor reports the same.
	e.Close()
	e3 := newTestExecutor(t, Config{DataDir: dataDir})
	c3, _ := e3.Controller(task)
	if got := waitExit(t, c3, time.Second); got != st {
		t.Errorf("exit after another restart = %+v, want %+v", got, st)
	}
}

// TestAdoptRecordedExit: an agent saw the exit before it went away; the next
// one reports it exactly, and the output is still there.
func TestAdoptRecordedExit(t *testing.T) {
	dataDir := t.TempDir()
	e := newTestExecutor(t, Config{DataDir: dataDir})
	task := shTask("echo bye; exit 3")
	c := start(t, e, task)
	want := waitExit(t, c, 5*time.Second)
	e.Close()

	e2 := newTestExecutor(t, Config{DataDir: dataDir})
	c2, _ := e2.Controller(task)
	if got := waitExit(t, c2, time.Second); got != want || got.ExitCode != 3 {
		t.Errorf("exit after restart = %+v, want %+v", got, want)
	}
	if cs, _ := c2.Status(context.Background()); cs.ExitCode != 3 || cs.PID == 0 {
		t.Errorf("Status after restart = %+v", cs)
	}
	if got := readLogs(t, c2, executor.LogOptions{}); got != "bye\n" {
		t.Errorf("Logs after restart = %q", got)
	}
	if err := c2.Start(context.Background()); err != nil {
		t.Errorf("Start of an exited task = %v", err)
	}
}

// TestAdoptInProcess: Close leaves the task running; an executor on the same
// DataDir in the same process adopts it.
func TestAdoptInProcess(t *testing.T) {
	dataDir := t.TempDir()
	e := newTestExecutor(t, Config{DataDir: dataDir})
	task := shTask("echo started; exec sleep 300")
	c := start(t, e, task)
	waitLine(t, c, 5*time.Second, func(l string) bool { return l == "started" })
	pid := c.rec.PID
	e.Close()
	if processGone(pid, 0) {
		t.Fatal("Close stopped the task")
	}
	e2 := newTestExecutor(t, Config{DataDir: dataDir})
	c2, _ := e2.Controller(task)
	if cs, _ := c2.Status(context.Background()); cs.PID != pid {
		t.Errorf("Status = %+v, want PID %d", cs, pid)
	}
	if err := c2.Shutdown(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	st := waitExit(t, c2, 5*time.Second)
	if !st.Failed() {
		t.Errorf("exit = %+v", st)
	}
}

func TestPIDReuseGuard(t *testing.T) {
	self := os.Getpid()
	ticks, err := procStartTicks(self)
	if err != nil {
		t.Fatal(err)
	}
	if processGone(self, ticks) {
		t.Error("this process looks gone")
	}
	if ticks != 0 && !processGone(self, ticks+1) {
		t.Error("a process with another start time looks like ours")
	}
	if groupIsOurs(self, ticks) {
		t.Error("a live process's group taken for a dead task's")
	}
}
