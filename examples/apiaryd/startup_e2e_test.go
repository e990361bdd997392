//go:build linux

package main_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Daemon behaviour at start (issue 12, items 4 and 7 to 10), with the real
// binaries on 127.0.3.x.

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// TestMain removes the binaries the tests of this file share.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds apiaryd and apiaryctl once for every test of this file.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "apiaryd-bin-"); binErr != nil {
			return
		}
		for _, pkg := range []string{"./examples/apiaryd", "./examples/apiaryctl"} {
			cmd := exec.Command("go", "build", "-o", binDir+"/", pkg)
			cmd.Dir = "../.."
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

// startupE2E is an e2e of this file's tests: daemons started with exactly
// the arguments a test gives.
func startupE2E(t *testing.T) *e2e {
	if testing.Short() {
		t.Skip("runs the binaries")
	}
	e := &e2e{t: t, bin: binaries(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	return e
}

// addr3 returns a free address on 127.0.3.host.
func addr3(t *testing.T, host int) string {
	t.Helper()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.3.%d:0", host))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// launch starts apiaryd with args and --data-dir, under umask (a shell
// sets it: a Go program cannot for one child alone).
func (e *e2e) launch(name, addr string, umask string, args ...string) *proc {
	e.t.Helper()
	p := &proc{name: name, dir: filepath.Join(e.root, name), addr: addr, log: &syncBuffer{}}
	full := append([]string{"-c", "umask " + umask + " && exec \"$0\" \"$@\"", filepath.Join(e.bin, "apiaryd")}, args...)
	full = append(full, "--data-dir", p.dir)
	p.cmd = exec.Command("sh", full...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.procs[name] = p
	return p
}

// stop stops a daemon with SIGTERM and waits until it has exited.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.kill9()
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.name, p.log.String())
	}
}

// exited waits for a daemon that must exit by itself, and returns its
// output.
func (p *proc) exited(t *testing.T) string {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("%s exited with status 0:\n%s", p.name, p.log.String())
		}
	case <-time.After(60 * time.Second):
		p.kill9()
		t.Fatalf("%s is still running:\n%s", p.name, p.log.String())
	}
	return p.log.String()
}

// waitAnswers waits until a daemon's control socket answers `node ls`.
// Until then a call may only fail to reach the socket: a call that reaches
// a node must never see it half-started.
func (e *e2e) waitAnswers(name string) {
	e.t.Helper()
	e.waitFor(name+" to answer", 60*time.Second, func() (bool, string) {
		out, err := e.ctl(name, "node", "ls")
		if err != nil && strings.Contains(out, "does not exist") {
			e.t.Fatalf("%s answered before it had started: %s", name, out)
		}
		return err == nil, fmt.Sprint(err)
	})
}

type nodeInspect struct {
	ID          string
	Spec        struct{ Role string }
	Description struct {
		Hostname string
		Executor string
		Engine   struct{ Labels map[string]string }
	}
	Status        struct{ State string }
	ManagerStatus *struct {
		Leader       bool
		Reachability string
	}
}

func (e *e2e) node(via, ref string) nodeInspect {
	e.t.Helper()
	var ns []nodeInspect
	if err := e.ctlJSON(via, &ns, "node", "inspect", ref); err != nil || len(ns) != 1 {
		e.t.Fatalf("node inspect %s: %v (%d nodes)", ref, err, len(ns))
	}
	return ns[0]
}

// `apiaryd run` keeps every node option init was given, whatever flag
// they are: the test sets every flag `run --help` lists (a new one fails
// it until given a value here); a flag given to run overrides its saved
// value, for later runs too, and the log says so.
func TestBinariesRunKeepsNodeOptions(t *testing.T) {
	e := startupE2E(t)
	addr := addr3(t, 1)
	host, _, _ := net.SplitHostPort(addr)
	values := map[string][]string{
		"listen-addr":     {addr},
		"advertise-addr":  {addr},
		"executor":        {"fake"},
		"hostname":        {"kept-host"},
		"label":           {"zone=blue", "disk=ssd"},
		"log-level":       {"debug"},
		"log-format":      {"text"},
		"data-path":       {"host"},
		"gossip-addr":     {host + ":0"},
		"dns-addr":        {host + ":0"},
		"ingress-addr":    {host},
		"mesh-vips":       {"range"},
		"docker-api":      {"true"},
		"docker-api-addr": {""},
		"debug-addr":      {host + ":0"},
	}
	help, err := exec.Command(filepath.Join(e.bin, "apiaryd"), "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("run --help: %v\n%s", err, help)
	}
	var args []string
	for _, line := range strings.Split(string(help), "\n") {
		name := ""
		for _, w := range strings.Fields(line) {
			if strings.HasPrefix(w, "--") {
				name = strings.TrimPrefix(w, "--")
				break
			}
		}
		if name == "" || name == "data-dir" || name == "force-new-cluster" || name == "help" {
			continue
		}
		vs, ok := values[name]
		if !ok {
			t.Fatalf("run has flag --%s, which init saves: give it a value in this test", name)
		}
		for _, v := range vs {
			args = append(args, "--"+name+"="+v)
		}
		delete(values, name)
	}
	if len(values) != 0 {
		t.Fatalf("run --help does not list %v", values)
	}
	p := e.launch("n1", addr, "077", append([]string{"init"}, args...)...)
	e.waitAnswers("n1")
	p.stop(t)

	// A plain run: everything as init was told.
	p = e.launch("n1", addr, "077", "run")
	e.waitAnswers("n1")
	n := e.node("n1", "kept-host")
	if n.Description.Hostname != "kept-host" || n.Description.Executor != "fake" || !maps(n.Description.Engine.Labels, map[string]string{"zone": "blue", "disk": "ssd"}) {
		t.Errorf("after a plain run the node is %+v", n.Description)
	}
	e.waitFor("the options in the log", 10*time.Second, func() (bool, string) {
		line := logLine(p.log.String(), `msg="node options"`)
		for _, want := range []string{"listen-addr=" + addr, "advertise-addr=" + addr, "executor=fake", "hostname=kept-host", `label="[zone=blue disk=ssd]"`, "log-level=debug",
			"data-path=host", "gossip-addr=" + host + ":0", "dns-addr=" + host + ":0", "ingress-addr=" + host, "mesh-vips=range", "docker-api=true", "debug-addr=" + host + ":0"} {
			if !strings.Contains(line, want) {
				return false, fmt.Sprintf("%q lacks %s", line, want)
			}
		}
		if logLine(p.log.String(), "debug listener") == "" {
			return false, "the saved --debug-addr started no profiler"
		}
		return true, ""
	})
	p.stop(t)

	// An override: said in the log, and kept by the next plain run.
	p = e.launch("n1", addr, "077", "run", "--label", "zone=green")
	e.waitAnswers("n1")
	if line := logLine(p.log.String(), "overrides the saved option"); !strings.Contains(line, "flag=label") || !strings.Contains(line, "zone=blue") || !strings.Contains(line, "zone=green") {
		t.Errorf("the log does not say --label overrides the saved labels: %q", line)
	}
	p.stop(t)
	e.launch("n1", addr, "077", "run")
	e.waitAnswers("n1")
	if n := e.node("n1", "kept-host"); !maps(n.Description.Engine.Labels, map[string]string{"zone": "green"}) || n.Description.Executor != "fake" || n.Description.Hostname != "kept-host" {
		t.Errorf("after the override and a plain run the node is %+v", n.Description)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// logLine returns the first line of log holding s.
func logLine(log, s string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// Fifty times in a row, a fresh init is asked for its manager join token
// as soon as its control socket answers: it always has one.
func TestBinariesJoinTokenRightAfterInit(t *testing.T) {
	e := startupE2E(t)
	for i := range 50 {
		name := fmt.Sprintf("init-%02d", i)
		addr := addr3(t, 2)
		p := e.launch(name, addr, "077", "init", "--listen-addr", addr, "--executor", "fake", "--log-level", "warn")
		e.waitAnswers(name)
		out, err := e.ctl(name, "swarm", "join-token", "manager", "-q")
		if tok := strings.TrimSpace(out); err != nil || tok == "" || strings.ContainsAny(tok, " \n") {
			t.Fatalf("start %d: join-token right after init: %q %v\n%s", i+1, out, err, p.log.String())
		}
		p.stop(t)
		delete(e.procs, name)
		if err := os.RemoveAll(p.dir); err != nil {
			t.Fatal(err)
		}
	}
}

// inotify events on one directory, decoded.
type dirEvent struct {
	name string
	mask uint32
}

// watchDir records every inotify event on dir until stop is called.
func watchDir(t *testing.T, dir string) (stop func() []dirEvent) {
	t.Helper()
	// Non-blocking, so that the runtime's poller reads it and Close
	// ends a pending Read.
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_ATTRIB|syscall.IN_MOVED_FROM|syscall.IN_DELETE); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	var (
		mu     sync.Mutex
		events []dirEvent
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil || n <= 0 {
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)], "\x00"))
				mu.Lock()
				events = append(events, dirEvent{name, ev.Mask})
				mu.Unlock()
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	return func() []dirEvent {
		f.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}
}

// pollMode stats path as fast as it can until stop is called, and returns
// every mode it saw (the path missing is not a mode).
func pollMode(path string) (stop func() (map[fs.FileMode]int, int)) {
	var halt atomic.Bool
	seen := map[fs.FileMode]int{}
	polls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !halt.Load() {
			polls++
			if fi, err := os.Lstat(path); err == nil {
				seen[fi.Mode()]++
			}
		}
	}()
	return func() (map[fs.FileMode]int, int) {
		halt.Store(true)
		<-done
		return seen, polls
	}
}

// The control socket has mode 0600 from the first moment it exists, even
// under a umask of 000: it appears by a rename (never created in place,
// never chmod'ed there), and every stat of it, polled from before the
// daemon starts, sees 0600. A data dir open to group and others is
// tightened to 0700, at init and at run.
func TestBinariesControlSocketModeFromFirstMoment(t *testing.T) {
	e := startupE2E(t)
	addr := addr3(t, 3)
	dir := filepath.Join(e.root, "n1")
	sock := filepath.Join(dir, "control.sock")
	for i, args := range [][]string{{"init", "--listen-addr", addr, "--executor", "fake"}, {"run"}} {
		if i == 0 {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stopWatch := watchDir(t, dir)
		stopPoll := pollMode(sock)
		p := e.launch("n1", addr, "000", args...)
		e.waitAnswers("n1")
		modes, polls := stopPoll()
		events := stopWatch()

		appeared := false
		for _, ev := range events {
			if ev.name != "control.sock" {
				continue
			}
			switch {
			case ev.mask&syscall.IN_MOVED_TO != 0:
				appeared = true
			case ev.mask&syscall.IN_CREATE != 0:
				t.Errorf("%s: the socket was created in place (mode from the umask until a chmod)", args[0])
			case ev.mask&syscall.IN_ATTRIB != 0:
				t.Errorf("%s: the socket's mode changed after it appeared", args[0])
			}
		}
		if !appeared {
			t.Errorf("%s: no rename of the socket into place among %d events", args[0], len(events))
		}
		if len(modes) == 0 {
			t.Errorf("%s: %d polls never saw the socket", args[0], polls)
		}
		for m, n := range modes {
			if m != fs.ModeSocket|0o600 {
				t.Errorf("%s: the socket was seen %d times with mode %v", args[0], n, m)
			}
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: data dir mode %v, want 0700", args[0], fi.Mode().Perm())
		}
		if !strings.Contains(p.log.String(), "data dir was open to group or others: tightened") {
			t.Errorf("%s: the log does not say the data dir was tightened", args[0])
		}
		t.Logf("%s: %d polls, socket modes seen %v, %d events in the data dir", args[0], polls, modes, len(events))
		p.stop(t)
	}
}

// A manager whose raft state went missing is refused by `apiaryd run`,
// which says how to recover.
func TestBinariesLostRaftStateRefused(t *testing.T) {
	e := startupE2E(t)
	addr := addr3(t, 4)
	p := e.launch("n1", addr, "077", "init", "--listen-addr", addr, "--executor", "fake")
	e.waitAnswers("n1")
	p.stop(t)
	if err := os.RemoveAll(filepath.Join(p.dir, "raft")); err != nil {
		t.Fatal(err)
	}
	out := e.launch("n1", addr, "077", "run").exited(t)
	for _, want := range []string{"was admitted to the raft group", "missing or empty", "To recover", "--force-new-cluster"} {
		if !strings.Contains(out, want) {
			t.Errorf("run without raft state says\n%s\nwant %q", out, want)
		}
	}
}

type serviceJSON struct {
	ID   string
	Spec struct {
		Annotations struct{ Name string }
		Mode        struct{ Replicated struct{ Replicas int } }
	}
}

// A cluster of three managers and a worker loses two managers (kill -9);
// the third, killed too, restarts with --force-new-cluster: every service
// is there and runs its replicas, the lost managers are workers, a new
// manager joins with the manager token of before, the two managers take
// writes, and a lost manager that comes back with its old data runs as a
// worker.
func TestBinariesForceNewCluster(t *testing.T) {
	e := startupE2E(t)
	addrs := map[string]string{}
	for i, name := range []string{"m1", "m2", "m3", "w1", "m4"} {
		addrs[name] = addr3(t, 10+i)
	}
	start := func(name string, args ...string) *proc {
		return e.launch(name, addrs[name], "077", append(args, "--listen-addr", addrs[name], "--hostname", name, "--executor", "fake", "--heartbeat-period", "300ms", "--log-level", "warn")...)
	}
	start("m1", "init")
	e.waitAnswers("m1")
	mt, err := e.ctl("m1", "swarm", "join-token", "manager", "-q")
	if err != nil {
		t.Fatal(err)
	}
	wt, err := e.ctl("m1", "swarm", "join-token", "worker", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"m2", "m3"} {
		start(name, "join", "--token", strings.TrimSpace(mt), addrs["m1"])
		e.waitAnswers(name)
	}
	start("w1", "join", "--token", strings.TrimSpace(wt), addrs["m1"])
	e.waitFor("4 ready nodes, 3 reachable managers", 60*time.Second, func() (bool, string) {
		return clusterIs(e, "m1", 4, 3)
	})
	want := map[string]int{"web": 4, "api": 2}
	for name, n := range want {
		if _, err := e.ctl("m1", "service", "create", "--name", name, "--replicas", fmt.Sprint(n), "--", "app"); err != nil {
			t.Fatal(err)
		}
	}
	servicesRun(e, "m1", want)
	var before []serviceJSON
	if err := e.ctlJSON("m1", &before, "service", "ls"); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"m2", "m3", "m1"} {
		e.procs[name].kill9()
	}
	start("m1", "run", "--force-new-cluster")
	e.waitAnswers("m1")
	var after []serviceJSON
	if err := e.ctlJSON("m1", &after, "service", "ls"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("services after the recovery:\n%+v\nbefore:\n%+v", after, before)
	}
	servicesRun(e, "m1", want)
	e.waitFor("the lost managers recorded as workers", 60*time.Second, func() (bool, string) {
		for _, name := range []string{"m2", "m3"} {
			n := e.node("m1", name)
			if n.Spec.Role != "worker" || n.ManagerStatus != nil {
				return false, fmt.Sprintf("%s: %+v", name, n)
			}
		}
		return true, ""
	})

	start("m4", "join", "--token", strings.TrimSpace(mt), addrs["m1"])
	e.waitAnswers("m4")
	e.waitFor("m1, m4 and w1 ready, 2 reachable managers", 60*time.Second, func() (bool, string) {
		return clusterIs(e, "m4", 3, 2)
	})
	if _, err := e.ctl("m4", "service", "scale", "web=5"); err != nil {
		t.Fatal(err)
	}
	want["web"] = 5
	servicesRun(e, "m4", want)

	start("m2", "run")
	e.waitFor("m2 back as a worker", 60*time.Second, func() (bool, string) {
		n := e.node("m1", "m2")
		return n.Spec.Role == "worker" && n.ManagerStatus == nil && n.Status.State == "ready", fmt.Sprintf("%+v", n)
	})
	servicesRun(e, "m1", want)
}

// clusterIs says whether the cluster seen through via has ready nodes
// ready and managers reachable managers, one of them leading.
func clusterIs(e *e2e, via string, ready, managers int) (bool, string) {
	var ns []nodeInspect
	if err := e.ctlJSON(via, &ns, "node", "ls"); err != nil {
		return false, err.Error()
	}
	r, m, l := 0, 0, 0
	for _, n := range ns {
		if n.Status.State == "ready" {
			r++
		}
		if n.ManagerStatus != nil && n.ManagerStatus.Reachability == "reachable" {
			m++
			if n.ManagerStatus.Leader {
				l++
			}
		}
	}
	return r == ready && m == managers && l == 1, fmt.Sprintf("%d ready, %d reachable managers, %d leaders", r, m, l)
}

// servicesRun waits until every service of want runs its replicas.
func servicesRun(e *e2e, via string, want map[string]int) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("services %v running", want), 90*time.Second, func() (bool, string) {
		for name, n := range want {
			got, err := e.running(via, name)
			if err != nil || got != n {
				return false, fmt.Sprintf("%s: %d running (%v)", name, got, err)
			}
		}
		return true, ""
	})
}
