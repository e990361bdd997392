//go:build linux

package process

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

func TestFindCgroup2Mount(t *testing.T) {
	for _, tc := range []struct{ name, info, want string }{
		{"unified", "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup"},
		{"hybrid", "30 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
			"36 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified"},
		{"escaped", "40 1 0:40 / /mnt/my\\040cgroups rw - cgroup2 none rw\n", "/mnt/my cgroups"},
		{"optional fields", "41 1 0:41 / /cg rw shared:1 master:2 - cgroup2 cgroup2 rw\n", "/cg"},
	} {
		p := filepath.Join(t.TempDir(), "mountinfo")
		os.WriteFile(p, []byte(tc.info), 0o644)
		got, err := findCgroup2Mount(p)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	p := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(p, []byte("30 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"), 0o644)
	if _, err := findCgroup2Mount(p); err == nil {
		t.Error("no cgroup2 mount: no error")
	}
}

func TestCPUMax(t *testing.T) {
	for nano, want := range map[int64]string{1e9: "100000 100000", 5e8: "50000 100000", 25e8: "250000 100000", 1: "1000 100000"} {
		if got := cpuMax(nano); got != want {
			t.Errorf("cpuMax(%d) = %q, want %q", nano, got, want)
		}
	}
}

// logBuffer collects log output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func limited(task *api.Task, mem, nano int64) *api.Task {
	task.Spec.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: mem, NanoCPUs: nano}}
	return task
}

// fakeCgroupRoot makes a directory that looks like a cgroup2 mount with the
// given controllers, and an executor whose cgroups go there.
func fakeCgroupRoot(t *testing.T, controllers string, log *slog.Logger) (*Executor, string) {
	t.Helper()
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte(controllers+"\n"), 0o644)
	e := newTestExecutor(t, Config{Logger: log})
	e.cgroups = newCgroupManager("", e.log)
	e.cgroups.mount = root
	return e, root
}

// TestCgroupFiles checks what the executor writes into a task's cgroup, on
// a directory tree standing in for cgroupfs (it enforces nothing).
func TestCgroupFiles(t *testing.T) {
	e, root := fakeCgroupRoot(t, "cpuset cpu io memory pids", nil)
	task := limited(shTask("exec sleep 300"), 32<<20, 5e8)
	c := start(t, e, task)
	cg := filepath.Join(root, "apiary", task.ID)
	for file, want := range map[string]string{
		"memory.max":      "33554432",
		"memory.swap.max": "0",
		"cpu.max":         "50000 100000",
		"cgroup.procs":    strconv.Itoa(c.rec.PID),
	} {
		b, err := os.ReadFile(filepath.Join(cg, file))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	for _, dir := range []string{root, filepath.Join(root, "apiary")} {
		if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control")); len(b) == 0 {
			t.Errorf("controllers not enabled in %s", dir)
		}
	}
	rec, err := readRecord(c.dir)
	if err != nil || rec.Cgroup != cg {
		t.Errorf("record cgroup = %q, %v; want %q", rec.Cgroup, err, cg)
	}
	// No limits, no cgroup.
	plain := start(t, e, shTask("true"))
	waitExit(t, plain, 5*time.Second)
	if _, err := os.Stat(filepath.Join(root, "apiary", plain.task.ID)); !os.IsNotExist(err) {
		t.Errorf("a task without limits got a cgroup: %v", err)
	}
	if err := c.Remove(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("cgroup after Remove: %v", err)
	}
}

// TestCgroupUnavailableWarnsOnce: without the controllers, tasks with limits
// run anyway and the log says once that limits are not enforced.
func TestCgroupUnavailableWarnsOnce(t *testing.T) {
	var buf logBuffer
	e, _ := fakeCgroupRoot(t, "hugetlb", slog.New(slog.NewTextHandler(&buf, nil)))
	for range 3 {
		c := start(t, e, limited(shTask("exit 0"), 64<<20, 1e9))
		if st := waitExit(t, c, 5*time.Second); st.ExitCode != 0 {
			t.Errorf("exit = %+v", st)
		}
	}
	out := buf.String()
	if n := strings.Count(out, "resource limits are not enforced"); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "neither the memory nor the cpu controller") {
		t.Errorf("warning does not say why:\n%s", out)
	}
}

// TestCgroupLimitsEnforced runs tasks under real cgroup v2 limits where this
// machine has them. It is skipped, saying why, where it has not (cgroup v1
// or hybrid hosts, no root); APIARY_REQUIRE_CGROUPS=1 makes that a failure.
func TestCgroupLimitsEnforced(t *testing.T) {
	m := newCgroupManager("", testutil.DiscardLogger())
	mount, err := findCgroup2Mount(m.mountinfo)
	if err == nil {
		m.parentCfg = filepath.Join(mount, "apiary-test-"+strconv.Itoa(os.Getpid()))
		m.once.Do(m.detect)
		err = m.err
		if err == nil && !(m.mem && m.cpu) {
			err = errMissingController
		}
		t.Cleanup(func() { os.Remove(m.parentCfg) })
	}
	if err != nil {
		if os.Getenv("APIARY_REQUIRE_CGROUPS") != "" {
			t.Fatalf("APIARY_REQUIRE_CGROUPS is set but cgroup v2 limits are not available: %v", err)
		}
		t.Skipf("cgroup v2 limits are not available on this machine: %v", err)
	}
	e := newTestExecutor(t, Config{})
	e.cgroups = m

	c := start(t, e, limited(shTask("exec sleep 300"), 64<<20, 5e8))
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(c.rec.PID) + "/cgroup")
	rel, _ := filepath.Rel(mount, c.rec.Cgroup)
	if !strings.Contains(string(b), "0::/"+rel+"\n") {
		t.Errorf("/proc/%d/cgroup = %q, want it in %s", c.rec.PID, b, rel)
	}
	for file, want := range map[string]string{"memory.max": "67108864\n", "cpu.max": "50000 100000\n"} {
		if got, _ := os.ReadFile(filepath.Join(c.rec.Cgroup, file)); string(got) != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if err := c.Remove(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.rec.Cgroup); !os.IsNotExist(err) {
		t.Errorf("cgroup after Remove: %v", err)
	}

	// Past its memory limit the task is OOM-killed, and says so.
	oom := start(t, e, limited(shTask("head -c 200000000 /dev/zero | tail"), 32<<20, 0))
	st := waitExit(t, oom, 30*time.Second)
	if !st.OOMKilled || !st.Failed() {
		t.Errorf("exit past the memory limit = %+v, want OOMKilled", st)
	}
	if cs, _ := oom.Status(context.Background()); !cs.OOMKilled {
		t.Errorf("Status = %+v, want OOMKilled", cs)
	}
	oom.Remove(context.Background())
}

var errMissingController = errors.New("the memory or cpu controller is missing from cgroup v2")

// TestCgroupPlacement uses the machine's real cgroup2 hierarchy, with or
// without controllers: the task starts inside its own cgroup (clone3 with
// CLONE_INTO_CGROUP), and killing the task kills what escaped its process
// group but not its cgroup. Skipped, saying why, where the hierarchy is
// missing or not writable; APIARY_REQUIRE_CGROUPS=1 makes that a failure.
func TestCgroupPlacement(t *testing.T) {
	mount, err := findCgroup2Mount("/proc/self/mountinfo")
	parent := filepath.Join(mount, "apiary-test-"+strconv.Itoa(os.Getpid()))
	if err == nil {
		err = os.Mkdir(parent, 0o755)
	}
	if err != nil {
		if os.Getenv("APIARY_REQUIRE_CGROUPS") != "" {
			t.Fatalf("APIARY_REQUIRE_CGROUPS is set but no writable cgroup v2 hierarchy: %v", err)
		}
		t.Skipf("no writable cgroup v2 hierarchy: %v", err)
	}
	t.Cleanup(func() { os.Remove(parent) })

	e := newTestExecutor(t, Config{})
	m := newCgroupManager("", e.log)
	m.once.Do(func() {}) // placed by hand: the controllers may be missing
	m.parent, m.fs = parent, true
	e.cgroups = m

	// setsid leaves the process group; only the cgroup still holds it.
	task := limited(shTask("setsid sleep 300 & echo child $!; wait"), 64<<20, 1e9)
	c := start(t, e, task)
	child := childPID(t, c)
	cg := filepath.Join(parent, task.ID)
	if !c.cg.viaFD {
		t.Errorf("the task was moved into its cgroup after it started, not started inside")
	}
	for _, pid := range []int{c.rec.PID, child} {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		want := "0::/" + filepath.Base(parent) + "/" + task.ID + "\n"
		if !strings.Contains(string(b), want) {
			t.Errorf("/proc/%d/cgroup = %q, want %q", pid, b, want)
		}
	}
	if err := c.Terminate(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the escaped child dies with the task", func() bool { return processGone(child, 0) })
	if err := c.Remove(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("cgroup after Remove: %v", err)
	}
}
