//go:build linux

package swarmtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// BenchmarkControlAPIWrite's procs=separate: the cluster as apiaryd
// processes, one per member, the way a real cluster runs (and etcd's
// members in bench/etcd), the clients in this process. The in-process
// cluster shares one Go runtime between every manager, worker and client,
// whose scheduler then orders the pipeline's stages behind the others'
// goroutines; its fake workers also hold a few goroutines per task, so
// that store=100k measured the workers more than the managers.
//
// The daemons run with apiaryd's defaults (raft tick, heartbeat period),
// the fake executor and no routing mesh, each on its own 127.0.x.y; they
// are killed, their whole process group, when the sub-benchmark ends, and
// by the kernel if this process dies first (Pdeathsig).

func init() { separateProcs = benchSeparate }

func benchSeparate(b *testing.B) {
	bin := buildApiaryd(b)
	shapes(b, func(b *testing.B, managers, workers int) writeCluster {
		return startSeparate(b, bin, managers, workers)
	})
}

// buildApiaryd builds the daemon into a directory that lives as long as b,
// or returns APIARY_WRITEBENCH_BIN, an apiaryd built already (so that
// runs alternated with etcd's, bench/compare.sh, start in seconds).
func buildApiaryd(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("APIARY_WRITEBENCH_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			b.Fatalf("APIARY_WRITEBENCH_BIN: %v", err)
		}
		return bin
	}
	dir := b.TempDir()
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./examples/apiaryd")
	cmd.Dir = "../.." // the module's root, from this package's directory
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build apiaryd: %v\n%s", err, out)
	}
	b.Logf("apiaryd built in %v", time.Since(start).Round(time.Millisecond))
	return filepath.Join(dir, "apiaryd")
}

// startSeparate starts the cluster as daemons and finds its leader.
func startSeparate(b *testing.B, bin string, managers, workers int) writeCluster {
	c := startProcs(b, bin, managers, workers)
	leader := c.leader()
	// The leader's applied index through its control socket, whatever
	// the clients go through: NodeStatus.RaftApplied.
	status := c.client(leader)
	cpu := func() roleCPU {
		var r roleCPU
		for _, d := range c.members {
			t := d.cpu()
			switch {
			case d == leader:
				r.leader, r.leaderPeakRSS, r.leaderGC = t, d.peakRSS(), d.gcCPU()
			case strings.HasPrefix(d.name, "manager-"):
				r.followers += t
				r.followersGC += d.gcCPU()
				r.nFollowers++
			default:
				r.workers += t
			}
		}
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
			r.clients = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		return r
	}
	return writeCluster{
		cpu:    cpu,
		leader: &swarmtest.Member{Name: leader.name, Addr: leader.addr, DataDir: leader.dir, Manager: true},
		socket: func() *swarm.Client { return c.client(leader) },
		applied: func() uint64 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := status.NodeStatus(ctx)
			if err != nil {
				b.Fatalf("applied index of %s: %v", leader.name, err)
			}
			return st.RaftApplied
		},
	}
}

// daemon is one apiaryd process.
type daemon struct {
	name, dir, addr, logPath string
	cmd                      *exec.Cmd
	// ctl is a client of its control socket for the cluster's own
	// polls (the benchmark's clients have a connection each).
	ctl    *swarm.Client
	exited chan struct{} // closed once the process has exited
	err    error         // its exit status, once exited
	gc     gcTrace       // its log's collections, read by gcCPU
}

// procCluster is a cluster of apiaryd processes.
type procCluster struct {
	b       testing.TB
	bin     string
	root    string
	members []*daemon
	// timeout bounds each wait for the cluster (start, joins, readiness).
	timeout time.Duration
}

// procAddrs numbers the loopback addresses of the daemons: 127.0.x.y on
// x in [230, 250), apart from swarmtest's 127.0.10-209.x and the e2e
// tests' 127.0.3.x.
var procAddrs atomic.Uint32

func (c *procCluster) loopback() string {
	for range 100 {
		n := procAddrs.Add(1)
		addr, err := freePort(fmt.Sprintf("127.0.%d.%d", 230+n/250%20, 2+n%250))
		if err == nil {
			return addr
		}
	}
	c.b.Fatal("no free loopback address for a daemon")
	return ""
}

// freePort returns ip:port with a port free on ip now.
func freePort(ip string) (string, error) {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startProcs starts managers managers (the first initialises the
// cluster, the others join one at a time, keeping a quorum) and workers
// workers, and waits until every node is ready.
func startProcs(b testing.TB, bin string, managers, workers int) *procCluster {
	b.Helper()
	c := &procCluster{b: b, bin: bin, root: b.TempDir(), timeout: 2 * time.Minute}
	// Registered after TempDir: the daemons are killed before their data
	// dirs are removed.
	b.Cleanup(c.kill)
	first := c.start("manager-1", "init")
	var tokens api.JoinTokens
	c.waitFor("manager-1 to lead", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl, err := first.ctl.GetCluster(ctx)
		if err != nil {
			return false, err.Error()
		}
		tokens = cl.JoinTokens
		return true, ""
	})
	for i := 2; i <= managers; i++ {
		c.start(fmt.Sprintf("manager-%d", i), "join", "--token", tokens.Manager, first.addr)
		c.waitReady()
	}
	for i := 1; i <= workers; i++ {
		c.start(fmt.Sprintf("worker-%d", i), "join", "--token", tokens.Worker, first.addr)
	}
	c.waitReady()
	return c
}

// start starts a daemon named name with args (init, or join and its
// token and manager address) and the node options every member has.
func (c *procCluster) start(name string, args ...string) *daemon {
	c.b.Helper()
	d := &daemon{name: name, dir: filepath.Join(c.root, name), addr: c.loopback(), logPath: filepath.Join(c.root, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(d.logPath)
	if err != nil {
		c.b.Fatal(err)
	}
	defer logf.Close() // the daemon has its own descriptor
	args = append(args, "--data-dir", d.dir, "--listen-addr", d.addr, "--hostname", name,
		"--executor", "fake", "--data-path", "none", "--log-level", "warn")
	if os.Getenv("APIARY_WRITEBENCH_DEBUG") != "" {
		// Go's profiler of each daemon at its own loopback address.
		host, _, _ := net.SplitHostPort(d.addr)
		args = append(args, "--debug-addr", net.JoinHostPort(host, "6060"))
		c.b.Logf("%s: profiler at http://%s:6060/debug/pprof/", name, host)
	}
	d.cmd = exec.Command(c.bin, args...)
	// The daemons' runtime settings alone (GOGC=400, say), not the
	// clients'; and the collector's trace, for gcCPU.
	d.cmd.Env = gcEnv(append(os.Environ(), strings.Fields(os.Getenv("APIARY_WRITEBENCH_DAEMON_ENV"))...))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own process group, killed as one; and killed by the kernel
	// should this process die without its cleanups (a -timeout panic).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		c.b.Fatalf("start %s: %v", name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	d.ctl = c.client(d)
	c.members = append(c.members, d)
	return d
}

// cpu returns the CPU time (user and system) the daemon has used so far,
// from /proc/PID/stat (fields 14 and 15, in clock ticks of 100 Hz, as
// Linux exports them whatever its internal tick); 0 once it has exited.
func (d *daemon) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// the fields are counted after its closing one.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * (time.Second / 100)
}

// peakRSS returns the most memory the daemon has held at once (VmHWM in
// /proc/PID/status), in bytes; 0 if it cannot be read.
func (d *daemon) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(v, &kb)
			return kb << 10
		}
	}
	return 0
}

// kill kills every daemon's process group and waits until each has
// exited.
func (c *procCluster) kill() {
	for _, d := range c.members {
		select {
		case <-d.exited:
			// A figure measured while a member was gone is not the
			// cluster's.
			c.b.Errorf("%s exited before the end: %v\n%s", d.name, d.err, tail(d.logPath))
		default:
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, d := range c.members {
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			c.b.Errorf("%s (pid %d) still runs 30 s after SIGKILL", d.name, d.cmd.Process.Pid)
		}
	}
}

// checkAlive fails if a daemon has exited.
func (c *procCluster) checkAlive() {
	c.b.Helper()
	for _, d := range c.members {
		select {
		case <-d.exited:
			c.b.Fatalf("%s exited: %v\n%s", d.name, d.err, tail(d.logPath))
		default:
		}
	}
}

// client returns a client of d's control socket, closed when the
// benchmark ends.
func (c *procCluster) client(d *daemon) *swarm.Client {
	c.b.Helper()
	cl, closeFn, err := swarm.DialClient("unix://" + swarm.ControlSocket(d.dir))
	if err != nil {
		c.b.Fatal(err)
	}
	c.b.Cleanup(func() { closeFn() })
	return cl
}

// waitFor polls cond until it holds, failing with the daemons' logs when
// one exits or the cluster's timeout passes.
func (c *procCluster) waitFor(what string, cond func() (bool, string)) {
	c.b.Helper()
	deadline := time.Now().Add(c.timeout)
	for {
		c.checkAlive()
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, d := range c.members {
				fmt.Fprintf(&logs, "--- %s:\n%s\n", d.name, tail(d.logPath))
			}
			c.b.Fatalf("timed out after %v waiting for %s: %s\n%s", c.timeout, what, why, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until the first manager lists every daemon started,
// each ready.
func (c *procCluster) waitReady() {
	c.b.Helper()
	c.waitFor(fmt.Sprintf("%d ready nodes", len(c.members)), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		nodes, err := c.members[0].ctl.ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, n := range nodes {
			if n.Status.State == api.NodeStateReady {
				ready++
			}
		}
		return ready == len(c.members) && len(nodes) == len(c.members), fmt.Sprintf("%d of %d nodes ready", ready, len(nodes))
	})
}

// leader finds the leading manager through the API: the node the
// cluster lists as leader, and the daemon that says it is that node.
func (c *procCluster) leader() *daemon {
	c.b.Helper()
	var lead *daemon
	c.waitFor("a leader", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		nodes, err := c.members[0].ctl.ListNodes(ctx)
		if err != nil {
			return false, err.Error()
		}
		id := ""
		for _, n := range nodes {
			if n.ManagerStatus != nil && n.ManagerStatus.Leader {
				id = n.ID
			}
		}
		if id == "" {
			return false, "no node is listed as leader"
		}
		for _, d := range c.members {
			st, err := d.ctl.NodeStatus(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", d.name, err)
			}
			if st.NodeID == id {
				lead = d
				return true, ""
			}
		}
		return false, "the leader " + id + " is none of the daemons"
	})
	return lead
}

// tail is the end of a daemon's log, for a failure's message.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	// The last 8 KiB of what the daemon said, its collections' trace
	// lines left out.
	const keep, read = 8 << 10, 256 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > read {
		_, _ = f.Seek(-read, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	s := withoutGCTrace(string(b))
	return s[max(0, len(s)-keep):]
}
