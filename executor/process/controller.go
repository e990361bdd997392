//go:build unix

package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// Timings, variables so tests can shorten them.
var (
	// adoptPoll is how often an adopted process (not our child, so not
	// waitable) is looked up in /proc.
	adoptPoll = 100 * time.Millisecond
	// drainTimeout bounds how long the end of a task waits for its output
	// to reach output.log (the pipe stays open while anything the task left
	// behind holds it).
	drainTimeout = time.Second
)

type state int

const (
	stateNew state = iota
	statePrepared
	stateRunning
	stateExited
	stateRemoved
)

// controller drives one task's process. It implements executor.Controller
// and executor.LogReader.
type controller struct {
	e    *Executor
	task *api.Task
	dir  string
	log  *slog.Logger

	loadOnce sync.Once

	mu        sync.Mutex
	state     state
	cleaned   bool // Remove deleted everything
	rec       *record
	prep      *prepared
	cg        *taskCgroup
	adopted   bool
	signalled string              // the last signal sent, for an adopted task's exit message
	done      chan struct{}       // closed once status is known; nil until started
	status    executor.ExitStatus // valid once done is closed
	fifo      *os.File            // our read end of output.fifo
	logw      *logWriter
	copyDone  chan struct{} // closed when the output copier stopped
	// deps are the task's secrets and configs (secrets.go), in memory
	// until Prepare writes them.
	deps executor.Dependencies
}

var (
	_ executor.Controller = (*controller)(nil)
	_ executor.LogReader  = (*controller)(nil)
)

// prepared is what Prepare worked out for Start.
type prepared struct {
	path string
	argv []string
	env  []string
	dir  string
	user taskUser
}

func newController(e *Executor, t *api.Task) *controller {
	return &controller{
		e:    e,
		task: t,
		dir:  filepath.Join(e.tasksDir, t.ID),
		log:  e.log.With("task", t.ID),
	}
}

func (c *controller) logPath() string { return filepath.Join(c.dir, logFile) }

// load reads what a previous agent left: a record of a started task is
// adopted (still running) or reported as exited.
func (c *controller) load() { c.loadOnce.Do(c.doLoad) }

func (c *controller) doLoad() {
	rec, err := readRecord(c.dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("task record unreadable: treating the task as new", "err", err)
		}
		return
	}
	if rec.PID == 0 {
		return // prepared only: Prepare again
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rec = rec
	c.done = make(chan struct{})
	if rec.Cgroup != "" {
		c.cg = adoptCgroup(rec.Cgroup)
	}
	if rec.Exit != nil {
		c.state, c.status = stateExited, *rec.Exit
		close(c.done)
		return
	}
	c.state, c.adopted = stateRunning, true
	c.log.Info("adopting task process", "pid", rec.PID)
	if err := c.adoptOutputLocked(); err != nil {
		c.log.Warn("output of the adopted task is not collected", "err", err)
	}
	go c.watch(rec.PID, rec.StartTicks)
}

// Prepare resolves the command, user and working directory and makes the
// task's directory.
func (c *controller) Prepare(ctx context.Context) error {
	c.load()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case stateRemoved:
		return fmt.Errorf("task %s: prepare: %w", c.task.ID, executor.ErrRemoved)
	case stateNew:
		return c.prepareLocked()
	}
	return nil
}

func (c *controller) prepareLocked() error {
	spec := c.task.Spec.Process
	id := c.task.ID
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return fmt.Errorf("task %s: process spec has no command", id)
	}
	u, err := resolveUser(spec.User, os.Geteuid())
	if err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	if err := os.MkdirAll(c.dir, 0o711); err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	dir := spec.Dir
	if dir == "" {
		dir = filepath.Join(c.dir, workDirName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("task %s: working directory: %w", id, err)
		}
		if u.cred != nil {
			if err := os.Chown(dir, u.uid, u.gid); err != nil {
				return fmt.Errorf("task %s: working directory: %w", id, err)
			}
		}
	} else if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("task %s: working directory: %w", id, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("task %s: working directory %s is not a directory", id, dir)
	}
	if err := checkReachable(dir, u); err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	env := c.environ(u)
	if len(c.task.Spec.Secrets)+len(c.task.Spec.Configs) > 0 {
		depsEnv, err := c.writeDepsLocked(u)
		if err != nil {
			return fmt.Errorf("task %s: %w", id, err)
		}
		env = append(env, depsEnv...)
	}
	path, err := lookPath(spec.Command[0], envValue(env, "PATH"), dir)
	if err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	argv := append(append([]string{}, spec.Command...), spec.Args...)
	rec := &record{Task: c.task}
	if err := writeRecord(c.dir, rec); err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	c.rec = rec
	c.prep = &prepared{path: path, argv: argv, env: env, dir: dir, user: u}
	c.state = statePrepared
	return nil
}

// Start starts the process, preparing first if needed. A task runs once:
// Start after it started (or exited) does nothing.
func (c *controller) Start(ctx context.Context) error {
	c.load()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case stateRemoved:
		return fmt.Errorf("task %s: start: %w", c.task.ID, executor.ErrRemoved)
	case stateRunning, stateExited:
		return nil
	case stateNew:
		if err := c.prepareLocked(); err != nil {
			return err
		}
	}
	return c.startLocked()
}

func (c *controller) startLocked() (err error) {
	id, p := c.task.ID, c.prep
	cg, err := c.e.cgroups.forTask(id, c.task.Spec.Resources)
	if err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	defer func() {
		if err != nil && cg != nil {
			cg.remove()
		}
	}()
	// The process's stdout and stderr are one read-write descriptor of a
	// FIFO: holding a reader itself, it never gets SIGPIPE when the agent
	// goes away. That end is blocking, as a program expects its output to
	// be; ours is opened first, without waiting for a writer, and read only
	// once the process holds its end.
	fifo := filepath.Join(c.dir, fifoFile)
	os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return fmt.Errorf("task %s: output: %w", id, &os.PathError{Op: "mkfifo", Path: fifo, Err: err})
	}
	r, err := openFifoReader(fifo)
	if err != nil {
		return fmt.Errorf("task %s: output: %w", id, err)
	}
	wfd, err := syscall.Open(fifo, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		r.Close()
		return fmt.Errorf("task %s: output: %w", id, &os.PathError{Op: "open", Path: fifo, Err: err})
	}
	w := os.NewFile(uintptr(wfd), fifo)
	defer w.Close() // the process has its own copy
	lw, err := openLogWriter(c.logPath(), c.e.cfg.LogMaxSize, c.e.cfg.LogMaxBackups)
	if err != nil {
		r.Close()
		return fmt.Errorf("task %s: output: %w", id, err)
	}

	command := func() *exec.Cmd {
		return &exec.Cmd{
			Path:   p.path,
			Args:   p.argv,
			Env:    p.env,
			Dir:    p.dir,
			Stdout: w,
			Stderr: w,
			SysProcAttr: &syscall.SysProcAttr{
				Setpgid:    true, // its own group: signals reach what it forks
				Credential: p.user.cred,
			},
		}
	}
	cmd := command()
	if cg != nil {
		cg.apply(cmd.SysProcAttr)
	}
	err = cmd.Start()
	if err != nil && cg != nil && cmd.SysProcAttr != nil && cgroupFDUsed(cmd.SysProcAttr) {
		// clone3 into a cgroup needs Linux 5.7: start, then move the process.
		cg.unapply(cmd.SysProcAttr)
		cmd = command()
		err = cmd.Start()
	}
	if err != nil {
		r.Close()
		lw.Close()
		return fmt.Errorf("task %s: start %s: %w", id, p.path, err)
	}
	c.fifo, c.logw, c.copyDone = r, lw, make(chan struct{})
	go c.copyOutput(r, lw, c.copyDone)
	pid := cmd.Process.Pid
	if cg != nil {
		if err := cg.afterStart(pid); err != nil {
			c.log.Warn("process not moved into its cgroup: limits are not enforced", "err", err)
		}
	}
	ticks, err := procStartTicks(pid)
	if err != nil {
		c.log.Warn("process start time unknown: PID reuse is not guarded against", "pid", pid, "err", err)
	}
	rec := *c.rec
	rec.PID, rec.StartTicks, rec.StartedAt, rec.Command = pid, ticks, time.Now().UTC(), p.argv
	if cg != nil {
		rec.Cgroup = cg.path
	}
	if err := writeRecord(c.dir, &rec); err != nil {
		c.log.Error("task record not written: the task cannot be adopted after an agent restart", "err", err)
	}
	c.rec, c.cg = &rec, cg
	c.state = stateRunning
	c.done = make(chan struct{})
	c.log.Info("task started", "pid", pid, "command", p.argv)
	go c.reap(cmd, pid, ticks)
	return nil
}

// adoptOutputLocked reopens the read end of an adopted task's output.fifo
// and copies it into output.log again.
func (c *controller) adoptOutputLocked() error {
	r, err := openFifoReader(filepath.Join(c.dir, fifoFile))
	if err != nil {
		return err
	}
	lw, err := openLogWriter(c.logPath(), c.e.cfg.LogMaxSize, c.e.cfg.LogMaxBackups)
	if err != nil {
		r.Close()
		return err
	}
	c.fifo, c.logw, c.copyDone = r, lw, make(chan struct{})
	go c.copyOutput(r, lw, c.copyDone)
	return nil
}

// copyOutput moves the task's output from the FIFO into output.log until
// every writer is gone or the reader is closed. It keeps draining when the
// log cannot be written, so the task never blocks on its output.
func (c *controller) copyOutput(r *os.File, w *logWriter, done chan struct{}) {
	defer close(done)
	defer w.Close()
	buf := make([]byte, 32<<10)
	warned := false
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil && !warned {
				c.log.Error("task output lost: cannot write the log", "err", werr)
				warned = true
			}
		}
		if err != nil {
			r.Close()
			return
		}
	}
}

// reap waits for our own child.
func (c *controller) reap(cmd *exec.Cmd, pid int, ticks uint64) {
	cmd.Wait()
	c.finish(pid, ticks, exitStatusOf(cmd.ProcessState))
}

// watch polls an adopted process, which is not our child, until it is gone.
func (c *controller) watch(pid int, ticks uint64) {
	t := time.NewTicker(adoptPoll)
	defer t.Stop()
	for {
		if processGone(pid, ticks) {
			c.mu.Lock()
			msg := "exited while adopted after an agent restart; exit status unknown"
			if c.signalled != "" {
				msg = "stopped with " + c.signalled + " after an agent restart; exit status unknown"
			}
			c.mu.Unlock()
			st := unknownExit(msg)
			// The agent that started it may have seen the end after all.
			if rec, err := readRecord(c.dir); err == nil && rec.PID == pid && rec.Exit != nil {
				st = *rec.Exit
			}
			c.finish(pid, ticks, st)
			return
		}
		select {
		case <-t.C:
		case <-c.e.closing:
			return
		}
	}
}

// finish records the end of the task: what the main process left in its
// group and cgroup is killed, the output drained and the exit recorded.
func (c *controller) finish(pid int, ticks uint64, st executor.ExitStatus) {
	if groupIsOurs(pid, ticks) {
		signalGroup(pid, syscall.SIGKILL)
	}
	c.mu.Lock()
	cg, copyDone := c.cg, c.copyDone
	c.mu.Unlock()
	if cg != nil {
		cg.kill()
		if cg.oomKilled() {
			st.OOMKilled = true
			st.Message = "killed by the kernel: out of memory (" + st.Message + ")"
		}
	}
	if copyDone != nil {
		t := time.NewTimer(drainTimeout)
		select {
		case <-copyDone:
		case <-t.C:
			c.log.Warn("task output still open after its exit: processes it left behind hold it")
		}
		t.Stop()
	}
	// The task runs once: what it was given of secrets goes now, not
	// when the task leaves the history.
	c.wipeDeps()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status = st
	if c.state == stateRunning {
		c.state = stateExited
	}
	if c.rec != nil && c.state != stateRemoved {
		rec := *c.rec
		rec.Exit, rec.ExitedAt = &st, time.Now().UTC()
		if err := writeRecord(c.dir, &rec); err != nil {
			c.log.Warn("exit not recorded", "err", err)
		}
		c.rec = &rec
	}
	close(c.done)
	c.log.Info("task exited", "pid", pid, "exit_code", st.ExitCode, "signal", st.Signal, "oom_killed", st.OOMKilled)
}

// Wait waits for the exit.
func (c *controller) Wait(ctx context.Context) (executor.ExitStatus, error) {
	c.load()
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done == nil {
		return executor.ExitStatus{}, executor.ErrNotStarted
	}
	select {
	case <-done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.status, nil
	case <-ctx.Done():
		return executor.ExitStatus{}, ctx.Err()
	}
}

// signal sends sig to the task's process group while it runs; it reports
// the done channel, nil when the task does not run.
func (c *controller) signal(sig syscall.Signal) chan struct{} {
	c.mu.Lock()
	if c.state != stateRunning {
		c.mu.Unlock()
		return nil
	}
	pid, ticks, adopted, done, cg := c.rec.PID, c.rec.StartTicks, c.adopted, c.done, c.cg
	c.signalled = signalName(sig)
	c.mu.Unlock()
	if adopted && processGone(pid, ticks) {
		return done // the watcher reports it soon
	}
	if err := signalGroup(pid, sig); err != nil {
		c.log.Warn("signal not sent", "err", err)
	}
	if sig == syscall.SIGKILL && cg != nil {
		cg.kill()
	}
	return done
}

// Shutdown sends the task's stop signal (SIGTERM unless its spec names
// another) to the process group, then SIGKILL when the stop grace period
// ran out. When ctx ends first it returns ctx.Err() and leaves the task to
// its stop signal.
func (c *controller) Shutdown(ctx context.Context) error {
	c.load()
	done := c.signal(stopSignal(c.task.Spec))
	if done == nil {
		return nil
	}
	grace := c.task.Spec.StopGracePeriod()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	c.log.Info("stop grace period over: killing the task", "grace", grace)
	c.signal(syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Terminate sends SIGKILL to the process group and waits for the exit.
func (c *controller) Terminate(ctx context.Context) error {
	c.load()
	done := c.signal(syscall.SIGKILL)
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove stops the task like Shutdown if it runs, then deletes its cgroup
// and its directory, output included.
func (c *controller) Remove(ctx context.Context) error {
	c.load()
	for {
		c.mu.Lock()
		if c.state != stateRunning {
			break
		}
		c.mu.Unlock()
		if err := c.Shutdown(ctx); err != nil {
			return err
		}
	}
	defer c.mu.Unlock()
	if c.cleaned {
		return nil
	}
	c.state = stateRemoved // Start refuses from now on
	if c.fifo != nil {
		c.fifo.Close() // a copier held up by leftovers stops
		c.fifo = nil
	}
	if c.cg != nil {
		if err := c.cg.remove(); err != nil {
			c.log.Warn("cgroup not removed", "err", err)
		}
	}
	c.removeDeps()
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("task %s: remove: %w", c.task.ID, err)
	}
	c.cleaned = true
	c.e.forget(c.task.ID, c)
	return nil
}

// Status reports the PID and, once exited, the exit code.
func (c *controller) Status(ctx context.Context) (api.ContainerStatus, error) {
	c.load()
	c.mu.Lock()
	defer c.mu.Unlock()
	var cs api.ContainerStatus
	if c.rec != nil {
		cs.PID = c.rec.PID
	}
	if c.done != nil {
		select {
		case <-c.done:
			cs.ExitCode, cs.OOMKilled = c.status.ExitCode, c.status.OOMKilled
		default:
		}
	}
	return cs, nil
}

// outputState tells a log follower when new output may be there and whether
// the output is complete (nothing runs that could add to it).
func (c *controller) outputState() (changed <-chan struct{}, finished bool) {
	c.mu.Lock()
	lw, copyDone, st := c.logw, c.copyDone, c.state
	c.mu.Unlock()
	if lw != nil {
		changed = lw.changed()
	}
	if st == stateRunning {
		return changed, false
	}
	if copyDone == nil {
		return changed, true
	}
	select {
	case <-copyDone:
		return changed, true
	default:
		return changed, false
	}
}

// detach stops reading the task's output (Executor.Close): the task goes on
// and the next executor adopts it.
func (c *controller) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fifo != nil {
		c.fifo.Close()
		c.fifo = nil
	}
}
