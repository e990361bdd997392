//go:build unix

package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

func TestExitCodesAndSignals(t *testing.T) {
	e := newTestExecutor(t, Config{})
	for _, tc := range []struct {
		script string
		want   executor.ExitStatus
	}{
		{"exit 0", executor.ExitStatus{ExitCode: 0, Message: "exit status 0"}},
		{"exit 3", executor.ExitStatus{ExitCode: 3, Message: "exit status 3"}},
		{"exit 255", executor.ExitStatus{ExitCode: 255, Message: "exit status 255"}},
		{"kill -USR1 $$", executor.ExitStatus{ExitCode: 128 + 10, Signal: "SIGUSR1", Message: "killed by SIGUSR1"}},
		{"kill -KILL $$", executor.ExitStatus{ExitCode: 137, Signal: "SIGKILL", Message: "killed by SIGKILL"}},
	} {
		t.Run(tc.script, func(t *testing.T) {
			t.Parallel()
			want := tc.want
			if want.Signal == "SIGUSR1" && runtime.GOOS != "linux" {
				want.ExitCode = 128 + 30 // SIGUSR1 on the BSDs
			}
			c := start(t, e, shTask(tc.script))
			if got := waitExit(t, c, 5*time.Second); got != want {
				t.Errorf("exit = %+v, want %+v", got, want)
			}
			if cs, _ := c.Status(context.Background()); cs.ExitCode != want.ExitCode || cs.PID == 0 {
				t.Errorf("Status = %+v", cs)
			}
		})
	}
}

func TestStopGracePeriod(t *testing.T) {
	e := newTestExecutor(t, Config{})
	const grace = 500 * time.Millisecond
	c := start(t, e, withGrace(shTask("trap '' TERM; echo ready; sleep 60"), grace))
	waitLine(t, c, 5*time.Second, func(l string) bool { return l == "ready" })
	begin := time.Now()
	if err := c.Shutdown(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(begin)
	if elapsed < grace {
		t.Errorf("a task ignoring SIGTERM stopped after %v, before its grace period %v", elapsed, grace)
	}
	if elapsed > grace+3*time.Second {
		t.Errorf("Shutdown took %v with a grace period of %v", elapsed, grace)
	}
	if st := waitExit(t, c, time.Second); st.Signal != "SIGKILL" || st.ExitCode != 137 {
		t.Errorf("exit = %+v, want killed by SIGKILL", st)
	}
}

func TestSIGTERMHonoured(t *testing.T) {
	e := newTestExecutor(t, Config{})
	c := start(t, e, withGrace(shTask("exec sleep 60"), 30*time.Second))
	begin := time.Now()
	if err := c.Shutdown(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("Shutdown of a task that dies on SIGTERM took %v", d)
	}
	if st := waitExit(t, c, time.Second); st.Signal != "SIGTERM" || st.ExitCode != 143 {
		t.Errorf("exit = %+v, want killed by SIGTERM", st)
	}
}

// childPID starts a task that spawns a child and prints its PID.
func childPID(t *testing.T, c *controller) int {
	t.Helper()
	line := waitLine(t, c, 5*time.Second, func(l string) bool { return strings.HasPrefix(l, "child ") })
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "child "))
	if err != nil {
		t.Fatalf("bad line %q", line)
	}
	return pid
}

func TestProcessGroupKilled(t *testing.T) {
	e := newTestExecutor(t, Config{})
	t.Run("Shutdown", func(t *testing.T) {
		// Both ignore SIGTERM (an ignored signal stays ignored across
		// exec): only the SIGKILL to the whole group ends the child.
		c := start(t, e, withGrace(shTask("trap '' TERM; sleep 300 & echo child $!; wait"), 200*time.Millisecond))
		child := childPID(t, c)
		if err := c.Shutdown(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "the task's child dies with it", func() bool { return processGone(child, 0) })
	})
	t.Run("Terminate", func(t *testing.T) {
		c := start(t, e, shTask("sleep 300 & echo child $!; wait"))
		child := childPID(t, c)
		if err := c.Terminate(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "the task's child dies with it", func() bool { return processGone(child, 0) })
	})
	t.Run("MainExits", func(t *testing.T) {
		// What the main process leaves behind is cleaned up at its exit.
		c := start(t, e, shTask("sleep 300 & echo child $!; read x < /dev/null; sleep 0.2; exit 0"))
		child := childPID(t, c)
		if st := waitExit(t, c, 10*time.Second); st.ExitCode != 0 {
			t.Errorf("exit = %+v", st)
		}
		testutil.Eventually(t, 5*time.Second, "the child left behind dies", func() bool { return processGone(child, 0) })
	})
}

func TestOutputCaptured(t *testing.T) {
	e := newTestExecutor(t, Config{})
	c := start(t, e, shTask("echo to-stdout; echo to-stderr >&2; printf 'no newline'"))
	waitExit(t, c, 5*time.Second)
	b, err := os.ReadFile(filepath.Join(c.dir, logFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 3 {
		t.Fatalf("output.log = %q, want 3 lines", b)
	}
	for i, want := range []string{"to-stdout", "to-stderr", "no newline"} {
		stamp, text, _ := strings.Cut(lines[i], " ")
		if text != want {
			t.Errorf("line %d = %q, want %q", i, text, want)
		}
		ts, err := time.Parse(stampLayout, stamp)
		if err != nil || time.Since(ts) > time.Minute {
			t.Errorf("line %d: bad timestamp %q (%v)", i, stamp, err)
		}
	}
	if got := readLogs(t, c, executor.LogOptions{}); got != "to-stdout\nto-stderr\nno newline" {
		t.Errorf("Logs = %q", got)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("APIARY_AGENT_SECRET", "hush")
	e := newTestExecutor(t, Config{})
	task := shTask(`echo "id=$APIARY_TASK_ID slot=$APIARY_TASK_SLOT svc=$APIARY_SERVICE_ID name=$APIARY_SERVICE_NAME node=$APIARY_NODE_ID task=$APIARY_TASK_NAME foo=$FOO secret=$APIARY_AGENT_SECRET home=$HOME"; echo "path=$PATH"`)
	task.Spec.Process.Env = []string{"FOO=bar", "APIARY_TASK_ID=forged"}
	c := start(t, e, task)
	waitExit(t, c, 5*time.Second)
	got := readLogs(t, c, executor.LogOptions{})
	want := "id=" + task.ID + " slot=2 svc=svc1 name=web node=node1 task=web.2 foo=bar secret= home="
	if !strings.HasPrefix(got, want) {
		t.Errorf("environment:\n got %q\nwant %q...", got, want)
	}
	if !strings.Contains(got, "path="+os.Getenv("PATH")+"\n") {
		t.Errorf("PATH not the agent's: %q", got)
	}
}

func TestWorkingDirectory(t *testing.T) {
	e := newTestExecutor(t, Config{})
	c := start(t, e, shTask("pwd; echo hi > file"))
	waitExit(t, c, 5*time.Second)
	work := filepath.Join(c.dir, workDirName)
	if got := strings.TrimSpace(readLogs(t, c, executor.LogOptions{})); got != work {
		t.Errorf("default working directory = %q, want %q", got, work)
	}
	if _, err := os.Stat(filepath.Join(work, "file")); err != nil {
		t.Errorf("file written in the working directory: %v", err)
	}

	dir := t.TempDir()
	task := shTask("pwd")
	task.Spec.Process.Dir = dir
	c = start(t, e, task)
	waitExit(t, c, 5*time.Second)
	if got := strings.TrimSpace(readLogs(t, c, executor.LogOptions{})); got != dir {
		t.Errorf("working directory = %q, want %q", got, dir)
	}

	task = shTask("pwd")
	task.Spec.Process.Dir = filepath.Join(dir, "missing")
	ctrl, _ := e.Controller(task)
	if err := ctrl.Prepare(context.Background()); err == nil || !strings.Contains(err.Error(), "working directory") {
		t.Errorf("Prepare with a missing directory = %v", err)
	}
}

func TestCommandLookup(t *testing.T) {
	e := newTestExecutor(t, Config{})
	task := shTask("")
	task.Spec.Process.Command = []string{"echo", "via", "PATH"}
	task.Spec.Process.Args = []string{"and", "args"}
	c := start(t, e, task)
	waitExit(t, c, 5*time.Second)
	if got := readLogs(t, c, executor.LogOptions{}); got != "via PATH and args\n" {
		t.Errorf("output = %q", got)
	}

	task = shTask("")
	task.Spec.Process.Command = []string{"no-such-program-apiary"}
	ctrl, _ := e.Controller(task)
	err := ctrl.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), task.ID) {
		t.Errorf("Start of a missing program = %v", err)
	}
	task = shTask("")
	task.Spec.Process.Command = nil
	ctrl, _ = e.Controller(task)
	if err := ctrl.Prepare(context.Background()); err == nil {
		t.Error("Prepare without a command = nil")
	}
}

func TestUser(t *testing.T) {
	if os.Geteuid() != 0 {
		// The refusal is what a non-root agent can check.
		_, err := resolveUser("0", os.Geteuid())
		if err == nil || !strings.Contains(err.Error(), "needs root") {
			t.Fatalf("user 0 as non-root = %v, want a needs-root error", err)
		}
		t.Skip("running a task as another user needs root")
	}
	// The default working directory must be reachable for that user: the
	// whole path to DataDir must be traversable, which t.TempDir's is not.
	dir, err := os.MkdirTemp("", "apiary-user-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	e := newTestExecutor(t, Config{DataDir: filepath.Join(dir, "data")})
	task := shTask("id -u; id -g; pwd; touch ok")
	task.Spec.Process.User = "65534:65534"
	c := start(t, e, task)
	if st := waitExit(t, c, 5*time.Second); st.ExitCode != 0 {
		t.Fatalf("exit = %+v, output %q", st, readLogs(t, c, executor.LogOptions{}))
	}
	want := "65534\n65534\n" + filepath.Join(c.dir, workDirName) + "\n"
	if got := readLogs(t, c, executor.LogOptions{}); got != want {
		t.Errorf("output = %q, want %q", got, want)
	}

	// A DataDir that user cannot reach is a clear error, not EACCES.
	e2 := newTestExecutor(t, Config{}) // t.TempDir: mode 0700
	task = shTask("true")
	task.Spec.Process.User = "nobody"
	c2, _ := e2.Controller(task)
	if err := c2.Prepare(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Errorf("Prepare with an unreachable working directory = %v", err)
	}
}

func TestResolveUser(t *testing.T) {
	for _, tc := range []struct {
		spec     string
		euid     int
		uid, gid int
		cred     bool
		err      string
	}{
		{spec: "", euid: 0, uid: 0, cred: false},
		{spec: "root", euid: 0, uid: 0, gid: 0, cred: true},
		{spec: "0", euid: 0, uid: 0, gid: 0, cred: true},
		{spec: "4242", euid: 0, uid: 4242, gid: 0, cred: true}, // not in the user database
		{spec: "4242:77", euid: 0, uid: 4242, gid: 77, cred: true},
		{spec: "root", euid: 1000, err: "needs root"},
		{spec: "no-such-user-apiary", euid: 0, err: "unknown user"},
		{spec: "root:no-such-group-apiary", euid: 0, err: "unknown group"},
		{spec: ":5", euid: 0, err: "want name"},
	} {
		u, err := resolveUser(tc.spec, tc.euid)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("resolveUser(%q, %d) = %v, want error %q", tc.spec, tc.euid, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("resolveUser(%q, %d): %v", tc.spec, tc.euid, err)
			continue
		}
		if tc.spec == "" {
			if u.cred != nil {
				t.Errorf("no user: credential %+v", u.cred)
			}
			continue
		}
		if (u.cred != nil) != tc.cred || u.cred != nil && (int(u.cred.Uid) != tc.uid || int(u.cred.Gid) != tc.gid) {
			t.Errorf("resolveUser(%q) = %+v, want uid %d gid %d", tc.spec, u.cred, tc.uid, tc.gid)
		}
	}
}

func TestDescribe(t *testing.T) {
	e := newTestExecutor(t, Config{Hostname: "h1", Labels: map[string]string{"zone": "a"}})
	d, err := e.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "h1" || d.Executor != "process" || d.Platform.OS != runtime.GOOS || d.Platform.Architecture != runtime.GOARCH {
		t.Errorf("description = %+v", d)
	}
	if d.Resources.NanoCPUs != int64(runtime.NumCPU())*1e9 {
		t.Errorf("NanoCPUs = %d", d.Resources.NanoCPUs)
	}
	if runtime.GOOS == "linux" && d.Resources.MemoryBytes < 64<<20 {
		t.Errorf("MemoryBytes = %d", d.Resources.MemoryBytes)
	}
	if d.Engine.Labels["zone"] != "a" {
		t.Errorf("labels = %v", d.Engine.Labels)
	}
	e2 := newTestExecutor(t, Config{Resources: api.Resources{NanoCPUs: 5e8, MemoryBytes: 1 << 30}})
	d, _ = e2.Describe(context.Background())
	if d.Resources.NanoCPUs != 5e8 || d.Resources.MemoryBytes != 1<<30 {
		t.Errorf("overridden resources = %+v", d.Resources)
	}
	if host, _ := os.Hostname(); d.Hostname != host {
		t.Errorf("default hostname = %q, want %q", d.Hostname, host)
	}
}

func TestControllerRefuses(t *testing.T) {
	e := newTestExecutor(t, Config{})
	for _, id := range []string{"", "..", "a/b", "x y"} {
		task := shTask("true")
		task.ID = id
		if _, err := e.Controller(task); err == nil {
			t.Errorf("Controller accepted task ID %q", id)
		}
	}
	task := shTask("true")
	task.Spec.Process = nil
	_, err := e.Controller(task)
	if !errors.Is(err, executor.ErrRuntimeMismatch) || !strings.Contains(err.Error(), task.ID) {
		t.Errorf("Controller of a task without runtime = %v", err)
	}
}

func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	e := newTestExecutor(t, Config{DataDir: dir})
	if _, err := New(Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second executor on one DataDir = %v, want in-use error", err)
	}
	e.Close()
	e2, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	e2.Close()
	if _, err := New(Config{}); err == nil {
		t.Error("New without DataDir = nil error")
	}
}

func TestListTasksAndRemove(t *testing.T) {
	e := newTestExecutor(t, Config{})
	prepared, running, removed := shTask("true"), shTask("exec sleep 60"), shTask("true")
	for _, task := range []*api.Task{prepared, removed} {
		c, _ := e.Controller(task)
		if err := c.Prepare(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	rc := start(t, e, running)
	c, _ := e.Controller(removed)
	if err := c.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	tasks, err := e.ListTasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, task := range tasks {
		got[task.ID] = true
	}
	if len(got) != 2 || !got[prepared.ID] || !got[running.ID] {
		t.Errorf("ListTasks = %v, want the prepared and the running task", got)
	}
	if err := rc.Remove(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rc.dir); !os.IsNotExist(err) {
		t.Errorf("task directory after Remove: %v", err)
	}
	if _, err := rc.Logs(context.Background(), executor.LogOptions{}); !errors.Is(err, executor.ErrRemoved) {
		t.Errorf("Logs after Remove = %v, want ErrRemoved", err)
	}
	if err := rc.Start(context.Background()); !errors.Is(err, executor.ErrRemoved) {
		t.Errorf("Start after Remove = %v, want ErrRemoved", err)
	}
}
