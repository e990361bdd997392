// Package fake is an executor that runs nothing: tasks "run" in memory,
// start at once and end when their script, a test or the agent says so. It
// exists so orchestrator and agent tests are fast and deterministic, and so
// a simulation can put thousands of nodes with thousands of tasks in one
// process: a task costs a small struct and, only while it has a scripted
// exit pending, a runtime timer — no goroutine.
//
// A Script, chosen per task by Config.Behavior, makes a task fail to prepare
// or start, exit after a while with a code (or as OOM-killed), turn
// unhealthy, ignore SIGTERM or hang on stop. Kill ends a running task from a
// test. Every operation is recorded (Events) for assertions.
//
// The fake follows the executor contract as executortest checks it: a task
// stopped with Shutdown exits as a process killed by SIGTERM would (code 143),
// one killed by Terminate or after its grace period like SIGKILL (137).
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// Kind is the executor kind reported in the node description.
const Kind = "fake"

// Script is what a task does.
type Script struct {
	// FailPrepare, when set, is returned by every Prepare (and Start).
	FailPrepare error
	// FailStart, when set, is returned by every Start.
	FailStart error
	// ExitAfter, when positive, makes the task exit by itself that long
	// after Start, with ExitCode. Zero runs until stopped.
	ExitAfter time.Duration
	ExitCode  int
	// OOM makes the exit at ExitAfter an out-of-memory kill (code 137).
	OOM bool
	// Unhealthy makes Health report "unhealthy" from UnhealthyAfter after
	// Start on ("healthy" before).
	Unhealthy      bool
	UnhealthyAfter time.Duration
	// IgnoreStop makes the task ignore SIGTERM: Shutdown kills it only once
	// the task's stop grace period ran out.
	IgnoreStop bool
	// HangOnStop makes Shutdown (and Remove of a running task) block until
	// its ctx ends, leaving the task running, as a stuck runtime would.
	// Terminate and Kill still end it.
	HangOnStop bool
	// Output is what Logs returns, one line each, as written at Start.
	Output []string
}

// Config configures an Executor. Zero fields get defaults.
type Config struct {
	// Hostname defaults to "fake".
	Hostname string
	// Platform defaults to linux/amd64.
	Platform api.Platform
	// Resources default to 4 CPUs and 8 GiB.
	Resources api.Resources
	// Labels are the engine labels.
	Labels map[string]string
	// EngineVersion defaults to "fake".
	EngineVersion string
	// Behavior picks each task's script when its controller is made; nil
	// (or a zero Script) runs every task until it is stopped.
	Behavior func(*api.Task) Script
}

// Op names an operation in the event record.
type Op string

// Operations recorded.
const (
	OpPrepare   Op = "prepare"
	OpStart     Op = "start"
	OpShutdown  Op = "shutdown"
	OpTerminate Op = "terminate"
	OpRemove    Op = "remove"
	OpKill      Op = "kill" // Executor.Kill
	OpExit      Op = "exit" // the task ended, for whatever reason
	// OpDependencies: the agent handed the task its secrets and configs
	// (the detail lists their IDs, never their data).
	OpDependencies Op = "dependencies"
)

// Event is one thing that happened to a task.
type Event struct {
	Time   time.Time
	TaskID string
	Op     Op
	// Detail says more: the error of a failed operation, the exit status.
	Detail string
}

func (ev Event) String() string {
	if ev.Detail == "" {
		return string(ev.Op)
	}
	return string(ev.Op) + ": " + ev.Detail
}

// Executor is the fake executor. It implements executor.Executor and
// executor.TaskLister; its controllers implement executor.HealthChecker and
// executor.LogReader too.
type Executor struct {
	cfg Config

	mu      sync.Mutex
	ctrls   map[string]*controller
	events  map[string][]Event
	nextPID int
	// deps are what each task holds of secrets and configs, until it is
	// removed.
	deps map[string]executor.Dependencies
}

var (
	_ executor.Executor   = (*Executor)(nil)
	_ executor.TaskLister = (*Executor)(nil)
)

// New makes a fake executor.
func New(cfg Config) *Executor {
	if cfg.Hostname == "" {
		cfg.Hostname = "fake"
	}
	if cfg.Platform == (api.Platform{}) {
		cfg.Platform = api.Platform{OS: "linux", Architecture: "amd64"}
	}
	if cfg.Resources.NanoCPUs == 0 {
		cfg.Resources.NanoCPUs = 4e9
	}
	if cfg.Resources.MemoryBytes == 0 {
		cfg.Resources.MemoryBytes = 8 << 30
	}
	if cfg.EngineVersion == "" {
		cfg.EngineVersion = Kind
	}
	cfg.Resources = cfg.Resources.Copy()
	cfg.Labels = maps.Clone(cfg.Labels)
	return &Executor{cfg: cfg, ctrls: map[string]*controller{}, events: map[string][]Event{}, nextPID: 1000, deps: map[string]executor.Dependencies{}}
}

// Describe reports the configured node.
func (e *Executor) Describe(ctx context.Context) (api.NodeDescription, error) {
	return api.NodeDescription{
		Hostname:  e.cfg.Hostname,
		Platform:  e.cfg.Platform,
		Resources: e.cfg.Resources.Copy(),
		Engine:    api.EngineDescription{EngineVersion: e.cfg.EngineVersion, Labels: maps.Clone(e.cfg.Labels)},
		Executor:  Kind,
	}, nil
}

// Controller returns the task's controller; the same one for the same task
// ID until it is removed. Any task with a runtime is accepted.
func (e *Executor) Controller(t *api.Task) (executor.Controller, error) {
	if t == nil {
		return nil, errors.New("fake executor: nil task")
	}
	if t.Spec.RuntimeKind() == "" {
		return nil, fmt.Errorf("task %s: no runtime in its spec: %w", t.ID, executor.ErrRuntimeMismatch)
	}
	if t.ID == "" {
		return nil, errors.New("fake executor: task without ID")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.ctrls[t.ID]; ok {
		return c, nil
	}
	var s Script
	if e.cfg.Behavior != nil {
		s = e.cfg.Behavior(t)
	}
	c := &controller{e: e, task: t.Copy(), script: s}
	e.ctrls[t.ID] = c
	return c, nil
}

// ListTasks returns the tasks with a controller that was not removed.
func (e *Executor) ListTasks(ctx context.Context) ([]*api.Task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*api.Task, 0, len(e.ctrls))
	for _, c := range e.ctrls {
		out = append(out, c.task.Copy())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Kill makes a running task exit now with exitCode, as if it crashed or
// finished by itself.
func (e *Executor) Kill(taskID string, exitCode int) error {
	e.mu.Lock()
	c := e.ctrls[taskID]
	e.mu.Unlock()
	if c == nil {
		return fmt.Errorf("fake executor: no task %s", taskID)
	}
	if c.running() == nil {
		return fmt.Errorf("fake executor: task %s is not running", taskID)
	}
	e.record(taskID, OpKill, fmt.Sprintf("exit code %d", exitCode))
	if !c.exit(executor.ExitStatus{ExitCode: exitCode, Message: fmt.Sprintf("exit status %d", exitCode)}) {
		return fmt.Errorf("fake executor: task %s is not running", taskID)
	}
	return nil
}

// Events returns what happened to a task, oldest first. Events stay after
// the task is removed.
func (e *Executor) Events(taskID string) []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.events[taskID]...)
}

// Ops returns the operations of Events, for short assertions.
func (e *Executor) Ops(taskID string) []Op {
	evs := e.Events(taskID)
	ops := make([]Op, len(evs))
	for i, ev := range evs {
		ops[i] = ev.Op
	}
	return ops
}

// Dependencies returns the secrets and configs a task was handed and
// still holds (until it is removed), as a process task would find them in
// its files.
func (e *Executor) Dependencies(taskID string) (executor.Dependencies, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, ok := e.deps[taskID]
	return d, ok
}

// Running returns the IDs of the tasks running now, sorted.
func (e *Executor) Running() []string {
	e.mu.Lock()
	ctrls := make([]*controller, 0, len(e.ctrls))
	for _, c := range e.ctrls {
		ctrls = append(ctrls, c)
	}
	e.mu.Unlock()
	var ids []string
	for _, c := range ctrls {
		c.mu.Lock()
		if c.state == stateRunning {
			ids = append(ids, c.task.ID)
		}
		c.mu.Unlock()
	}
	sort.Strings(ids)
	return ids
}

func (e *Executor) record(taskID string, op Op, detail string) {
	e.mu.Lock()
	e.events[taskID] = append(e.events[taskID], Event{Time: time.Now(), TaskID: taskID, Op: op, Detail: detail})
	e.mu.Unlock()
}

type state int

const (
	stateNew state = iota
	statePrepared
	stateRunning
	stateExited
	stateRemoved
)

type controller struct {
	e      *Executor
	task   *api.Task
	script Script

	mu       sync.Mutex
	state    state
	pid      int
	started  time.Time
	exited   time.Time
	timer    *time.Timer
	done     chan struct{}
	status   executor.ExitStatus
	removing bool
}

var (
	_ executor.Controller     = (*controller)(nil)
	_ executor.HealthChecker  = (*controller)(nil)
	_ executor.LogReader      = (*controller)(nil)
	_ executor.DependencyUser = (*controller)(nil)
)

// SetDependencies records what the task was handed (executor.DependencyUser).
func (c *controller) SetDependencies(d executor.Dependencies) {
	var ids []string
	for _, s := range d.Secrets {
		ids = append(ids, "secret "+s.ID)
	}
	for _, x := range d.Configs {
		ids = append(ids, "config "+x.ID)
	}
	c.e.mu.Lock()
	c.e.deps[c.id()] = d
	c.e.mu.Unlock()
	c.e.record(c.id(), OpDependencies, strings.Join(ids, ", "))
}

func (c *controller) id() string { return c.task.ID }

func (c *controller) Prepare(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prepareLocked()
}

func (c *controller) prepareLocked() error {
	switch c.state {
	case stateRemoved:
		return fmt.Errorf("task %s: prepare: %w", c.id(), executor.ErrRemoved)
	case stateNew:
		if err := c.script.FailPrepare; err != nil {
			c.e.record(c.id(), OpPrepare, "failed: "+err.Error())
			return fmt.Errorf("task %s: prepare: %w", c.id(), err)
		}
		c.state = statePrepared
		c.e.record(c.id(), OpPrepare, "")
	}
	return nil
}

func (c *controller) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case stateRemoved:
		return fmt.Errorf("task %s: start: %w", c.id(), executor.ErrRemoved)
	case stateRunning, stateExited:
		return nil
	}
	if err := c.prepareLocked(); err != nil {
		return err
	}
	if err := c.script.FailStart; err != nil {
		c.e.record(c.id(), OpStart, "failed: "+err.Error())
		return fmt.Errorf("task %s: start: %w", c.id(), err)
	}
	c.e.mu.Lock()
	c.e.nextPID++
	c.pid = c.e.nextPID
	c.e.mu.Unlock()
	c.state, c.started, c.done = stateRunning, time.Now(), make(chan struct{})
	c.e.record(c.id(), OpStart, fmt.Sprintf("pid %d", c.pid))
	if s := c.script; s.ExitAfter > 0 {
		st := executor.ExitStatus{ExitCode: s.ExitCode, Message: fmt.Sprintf("exit status %d", s.ExitCode)}
		if s.OOM {
			st = executor.ExitStatus{ExitCode: 137, Signal: "SIGKILL", OOMKilled: true, Message: "killed by the kernel: out of memory"}
		}
		c.timer = time.AfterFunc(s.ExitAfter, func() { c.exit(st) })
	}
	return nil
}

// exit ends a running task with st; false if it was not running.
func (c *controller) exit(st executor.ExitStatus) bool {
	c.mu.Lock()
	if c.state != stateRunning {
		c.mu.Unlock()
		return false
	}
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.state, c.status, c.exited = stateExited, st, time.Now()
	done := c.done
	c.mu.Unlock()
	// Recorded before a waiter is told: whoever Wait returns to finds
	// the exit among the operations.
	c.e.record(c.id(), OpExit, st.Message)
	close(done)
	return true
}

var (
	termStatus = executor.ExitStatus{ExitCode: 143, Signal: "SIGTERM", Message: "killed by SIGTERM"}
	killStatus = executor.ExitStatus{ExitCode: 137, Signal: "SIGKILL", Message: "killed by SIGKILL"}
)

func (c *controller) Wait(ctx context.Context) (executor.ExitStatus, error) {
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

// running returns the done channel of a running task, or nil.
func (c *controller) running() chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateRunning {
		return nil
	}
	return c.done
}

func (c *controller) Shutdown(ctx context.Context) error {
	done := c.running()
	if done == nil {
		return nil
	}
	c.e.record(c.id(), OpShutdown, "")
	switch {
	case c.script.HangOnStop:
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case c.script.IgnoreStop:
		t := time.NewTimer(c.task.Spec.StopGracePeriod())
		defer t.Stop()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			c.exit(killStatus)
		}
		return nil
	}
	c.exit(termStatus)
	return nil
}

func (c *controller) Terminate(ctx context.Context) error {
	if c.running() == nil {
		return nil
	}
	c.e.record(c.id(), OpTerminate, "")
	c.exit(killStatus)
	return nil
}

func (c *controller) Remove(ctx context.Context) error {
	if err := c.Shutdown(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	if c.state == stateRemoved {
		c.mu.Unlock()
		return nil
	}
	if c.state == stateRunning { // started again meanwhile: stop that too
		c.mu.Unlock()
		return c.Remove(ctx)
	}
	c.state = stateRemoved
	c.mu.Unlock()
	c.e.mu.Lock()
	if c.e.ctrls[c.id()] == c {
		delete(c.e.ctrls, c.id())
		delete(c.e.deps, c.id())
	}
	c.e.mu.Unlock()
	c.e.record(c.id(), OpRemove, "")
	return nil
}

func (c *controller) Status(ctx context.Context) (api.ContainerStatus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := api.ContainerStatus{PID: c.pid}
	if c.state == stateExited || c.state == stateRemoved && c.done != nil {
		cs.ExitCode, cs.OOMKilled = c.status.ExitCode, c.status.OOMKilled
	}
	return cs, nil
}

// Health reports "starting" before Start, then "healthy" or, per the
// script, "unhealthy"; after the exit, what it was at the exit.
func (c *controller) Health(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started.IsZero() {
		return api.HealthStarting, nil
	}
	now := time.Now()
	if !c.exited.IsZero() {
		now = c.exited
	}
	if c.script.Unhealthy && now.Sub(c.started) >= c.script.UnhealthyAfter {
		return api.HealthUnhealthy, nil
	}
	return api.HealthHealthy, nil
}

// Logs returns the script's Output once the task started (nothing before).
// Since drops it all when after the start; Follow waits for the exit.
func (c *controller) Logs(ctx context.Context, opts executor.LogOptions) (io.ReadCloser, error) {
	c.mu.Lock()
	st, started, done := c.state, c.started, c.done
	c.mu.Unlock()
	if st == stateRemoved {
		return nil, fmt.Errorf("task %s: logs: %w", c.id(), executor.ErrRemoved)
	}
	var lines []string
	if !started.IsZero() && (opts.Since.IsZero() || !started.Before(opts.Since)) {
		lines = c.script.Output
		if opts.Tail > 0 && len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	r := &logReader{r: strings.NewReader(b.String()), closed: make(chan struct{})}
	if opts.Follow && st == stateRunning {
		r.ctx, r.done = ctx, done
	}
	return r, nil
}

// logReader returns the output, then (when following) waits for the exit.
type logReader struct {
	r      *strings.Reader
	ctx    context.Context
	done   chan struct{}
	once   sync.Once
	closed chan struct{}
}

func (r *logReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != io.EOF || r.done == nil {
		return n, err
	}
	select {
	case <-r.done:
		return n, io.EOF
	case <-r.ctx.Done():
		return n, r.ctx.Err()
	case <-r.closed:
		return n, io.ErrClosedPipe
	}
}

func (r *logReader) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}
