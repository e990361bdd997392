package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// inspectTimeout bounds the inspection of a container that exited.
const inspectTimeout = 30 * time.Second

// oomGrace is how long the exit of a memory-limited container killed by
// SIGKILL waits for a late oom event (see exitOf).
var oomGrace = time.Second

// controller drives one task's container. It implements
// executor.Controller, executor.HealthChecker and executor.LogReader.
//
// The engine holds the truth: a controller made by a new Executor finds the
// task's container by its label and takes over from its state (created,
// running or exited).
type controller struct {
	e    *Executor
	task *api.Task
	name string
	log  *slog.Logger

	// opMu serialises the first look-up, Prepare, Start and Remove.
	opMu sync.Mutex

	mu      sync.Mutex
	loaded  bool   // the engine was asked for the task's container
	id      string // the container's ID; "" until one exists
	started bool   // the container was started (it may have exited since)
	removed bool
	done    chan struct{}       // made when started; closed once status is known
	status  executor.ExitStatus // valid once done is closed

	stopped atomic.Bool   // Shutdown or Terminate asked the engine to stop it
	oom     chan struct{} // closed when an oom event arrived for the container
	oomOnce sync.Once
	wake    chan struct{} // events wake a monitor waiting to retry
	// deps are the task's secrets and configs (secrets.go).
	deps executor.Dependencies
}

var (
	_ executor.Controller    = (*controller)(nil)
	_ executor.HealthChecker = (*controller)(nil)
	_ executor.LogReader     = (*controller)(nil)
)

func newController(e *Executor, t *api.Task) *controller {
	return &controller{
		e:    e,
		task: t,
		name: ContainerName(t),
		log:  e.log.With("task", t.ID),
		oom:  make(chan struct{}),
		wake: make(chan struct{}, 1),
	}
}

// sawOOM records an oom event of the container.
func (c *controller) sawOOM() { c.oomOnce.Do(func() { close(c.oom) }) }

func (c *controller) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// load looks the task's container up in the engine, once.
func (c *controller) load(ctx context.Context) error {
	if c.e.isClosed() {
		return fmt.Errorf("task %s: %w", c.task.ID, errClosed)
	}
	c.mu.Lock()
	loaded := c.loaded
	c.mu.Unlock()
	if loaded {
		return nil
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	return c.loadLocked(ctx)
}

// loadLocked is load with opMu held.
func (c *controller) loadLocked(ctx context.Context) error {
	if c.e.isClosed() {
		return fmt.Errorf("task %s: %w", c.task.ID, errClosed)
	}
	c.mu.Lock()
	loaded := c.loaded
	c.mu.Unlock()
	if loaded {
		return nil
	}
	f := c.e.scope()
	f.Add("label", LabelTaskID+"="+c.task.ID)
	cs, err := c.e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("task %s: look up its container: %w", c.task.ID, err)
	}
	if len(cs) > 1 {
		c.log.Warn("several containers for one task: using the first", "containers", len(cs))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded = true
	if c.removed {
		return nil
	}
	if len(cs) == 0 {
		if !c.started {
			c.id = "" // removed behind our back: Prepare makes another
		}
		return nil
	}
	ct := cs[0]
	c.id = ct.ID
	if ct.State != container.StateCreated && !c.started {
		c.log.Info("adopting container", "container", shortID(ct.ID), "state", ct.State)
		c.startedLocked()
	}
	return nil
}

// startedLocked marks the container started and starts its monitor.
func (c *controller) startedLocked() {
	c.started = true
	id, done := c.id, make(chan struct{})
	c.done = done
	if !c.e.goBackground(func() { c.monitor(id, done) }) {
		c.log.Warn("executor closed: the container's exit is not watched")
	}
}

// goBackground runs fn in a goroutine that Close waits for, unless the
// executor is closed.
func (e *Executor) goBackground(fn func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
	return true
}

// Prepare makes sure the image is present (pulling it if not) and creates
// the container.
func (c *controller) Prepare(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if err := c.loadLocked(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	removed, id := c.removed, c.id
	c.mu.Unlock()
	switch {
	case removed:
		return fmt.Errorf("task %s: prepare: %w", c.task.ID, executor.ErrRemoved)
	case id != "":
		// Made earlier (by an earlier agent, perhaps before it copied
		// the task's secrets in): copy them again unless it started.
		return c.copyDeps(ctx)
	}
	return c.prepareLocked(ctx)
}

func (c *controller) prepareLocked(ctx context.Context) error {
	t := c.task
	cfg, host, err := c.e.containerConfig(t)
	if err != nil {
		return err
	}
	if err := c.ensureImage(ctx, cfg.Image); err != nil {
		return err
	}
	deps, err := c.hostDeps()
	if err != nil {
		c.removeHostDeps()
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	host.Mounts = append(host.Mounts, deps...)
	resp, err := c.e.cli.ContainerCreate(ctx, cfg, host, nil, nil, c.name)
	if cerrdefs.IsConflict(err) {
		// The name is taken: by this task's container, made meanwhile by
		// another controller (an earlier agent), or by a stranger.
		insp, ierr := c.e.cli.ContainerInspect(ctx, c.name)
		if ierr == nil && insp.Config != nil && insp.Config.Labels[LabelTaskID] == t.ID {
			c.mu.Lock()
			c.loaded = false
			c.mu.Unlock()
			if err := c.loadLocked(ctx); err != nil {
				return err
			}
			return c.copyDeps(ctx)
		}
	}
	if err != nil {
		c.removeHostDeps()
		return fmt.Errorf("task %s: create container %s: %w", t.ID, c.name, err)
	}
	for _, w := range resp.Warnings {
		c.log.Warn("engine warning on container create", "warning", w)
	}
	c.mu.Lock()
	c.id = resp.ID
	c.mu.Unlock()
	c.log.Debug("container created", "container", shortID(resp.ID), "name", c.name, "image", cfg.Image)
	if err := c.copyDeps(ctx); err != nil {
		// Never start it without them: the next Prepare makes another.
		if rerr := c.e.cli.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true}); rerr != nil {
			c.log.Warn("container without its secrets not removed", "container", shortID(resp.ID), "err", rerr)
		}
		c.mu.Lock()
		c.id = ""
		c.mu.Unlock()
		return err
	}
	return nil
}

// ensureImage pulls the image unless the engine has it.
func (c *controller) ensureImage(ctx context.Context, ref string) error {
	_, err := c.e.cli.ImageInspect(ctx, ref)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("task %s: image %q: %w", c.task.ID, ref, err)
	}
	c.log.Info("image not present: pulling", "image", ref)
	pctx, cancel := context.WithTimeout(ctx, c.e.cfg.PullTimeout)
	defer cancel()
	err = c.pull(pctx, ref)
	if err == nil {
		_, err = c.e.cli.ImageInspect(ctx, ref)
	}
	if err != nil {
		return fmt.Errorf("task %s: image %q not present on this node and pull failed: %w", c.task.ID, ref, err)
	}
	return nil
}

func (c *controller) pull(ctx context.Context, ref string) error {
	rc, err := c.e.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	return readJSONStream(rc)
}

// readJSONStream reads the engine's progress messages to the end and
// returns the first error among them (a pull or build reports its failure
// in the stream, after an HTTP 200).
func readJSONStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// Start starts the container, creating it first if needed. A task runs
// once: Start of a container that started before (in this or an earlier
// agent) does nothing.
func (c *controller) Start(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if err := c.loadLocked(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	removed, started, id := c.removed, c.started, c.id
	c.mu.Unlock()
	switch {
	case removed:
		return fmt.Errorf("task %s: start: %w", c.task.ID, executor.ErrRemoved)
	case started:
		return nil
	case id == "":
		if err := c.prepareLocked(ctx); err != nil {
			return err
		}
	}
	c.mu.Lock()
	id, started = c.id, c.started
	c.mu.Unlock()
	if started {
		return nil // Prepare found the container another agent started
	}
	if err := c.e.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		// It may have started all the same (ctx ended after the engine
		// acted): read its state again next time rather than guess.
		c.mu.Lock()
		c.loaded = false
		c.mu.Unlock()
		return fmt.Errorf("task %s: start container %s: %w", c.task.ID, c.name, err)
	}
	c.mu.Lock()
	if !c.started {
		c.startedLocked()
	}
	c.mu.Unlock()
	c.log.Info("container started", "container", shortID(id), "image", c.task.Spec.Container.Image)
	return nil
}

// monitor waits for the container to stop and records how it ended.
func (c *controller) monitor(id string, done chan struct{}) {
	ctx := c.e.ctx
	retry := newRetry()
	for {
		respC, errC := c.e.cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
		var err error
		select {
		case r := <-respC:
			c.finish(done, c.exitOf(id, r))
			return
		case err = <-errC:
		}
		if ctx.Err() != nil {
			return // the executor closed; the next one watches
		}
		if cerrdefs.IsNotFound(err) {
			c.finish(done, executor.ExitStatus{ExitCode: -1, Message: "container removed outside the executor; exit status unknown"})
			return
		}
		wait := retry.Next()
		c.log.Warn("waiting on the container failed; trying again", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// exitOf inspects a stopped container for its exit; when it is gone
// already, the wait's answer is all there is.
//
// An engine may report an OOM kill late: it learns of the exit and of the
// OOM from containerd as two events, which containerd can deliver exit
// first (containerd issues 8180 and 12260); the engine then records
// OOMKilled false and sends its oom event after the die. So a SIGKILL of a
// container with a memory limit, unless the executor sent it, waits up to
// oomGrace for that event before its exit is taken as a plain kill.
func (c *controller) exitOf(id string, r container.WaitResponse) executor.ExitStatus {
	ctx, cancel := context.WithTimeout(c.e.ctx, inspectTimeout)
	defer cancel()
	code, oom, msg := int(r.StatusCode), false, ""
	if r.Error != nil {
		msg = r.Error.Message
	}
	memLimited := c.task.Spec.Resources != nil && c.task.Spec.Resources.Limits != nil && c.task.Spec.Resources.Limits.MemoryBytes > 0
	insp, err := c.e.cli.ContainerInspect(ctx, id)
	if err == nil && insp.ContainerJSONBase != nil && insp.State != nil && !insp.State.Running {
		code, oom, msg = insp.State.ExitCode, insp.State.OOMKilled, insp.State.Error
		if insp.HostConfig != nil {
			memLimited = insp.HostConfig.Memory > 0
		}
	}
	if !oom && code == 137 && memLimited && !c.stopped.Load() {
		t := time.NewTimer(oomGrace)
		select {
		case <-c.oom:
			c.log.Debug("the engine reported the exit before the OOM kill")
		case <-t.C:
		case <-c.e.ctx.Done():
		}
		t.Stop()
	}
	select {
	case <-c.oom:
		oom = true
	default:
	}
	return exitStatus(code, oom, msg)
}

func (c *controller) finish(done chan struct{}, st executor.ExitStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	c.status = st
	// A task runs once: what it was given of secrets goes now.
	c.removeHostDeps()
	close(done)
	c.log.Info("container exited", "exit_code", st.ExitCode, "signal", st.Signal, "oom_killed", st.OOMKilled, "message", st.Message)
}

// state returns what the controller knows, after looking the container up.
func (c *controller) state(ctx context.Context) (id string, started, removed bool, done chan struct{}, err error) {
	if err := c.load(ctx); err != nil {
		return "", false, false, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id, c.started, c.removed, c.done, nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Wait waits for the container to exit.
func (c *controller) Wait(ctx context.Context) (executor.ExitStatus, error) {
	_, started, _, done, err := c.state(ctx)
	if err != nil {
		return executor.ExitStatus{}, err
	}
	if !started {
		return executor.ExitStatus{}, executor.ErrNotStarted
	}
	if !isClosed(done) {
		select {
		case <-done:
		case <-ctx.Done():
			return executor.ExitStatus{}, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, nil
}

// running reports the container to signal, or "" when there is none
// running.
func (c *controller) running(ctx context.Context) (string, chan struct{}, error) {
	id, started, removed, done, err := c.state(ctx)
	if err != nil || removed || !started || isClosed(done) {
		return "", nil, err
	}
	return id, done, nil
}

// waitDone waits for the monitor to see the exit.
func waitDone(ctx context.Context, done chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops the container with the task's stop grace period: its stop
// signal, then SIGKILL when the period ran out. When ctx ends first it
// returns ctx.Err(); the engine carries on with the stop.
func (c *controller) Shutdown(ctx context.Context) error {
	id, done, err := c.running(ctx)
	if err != nil || id == "" {
		return err
	}
	timeout := stopTimeout(c.task.Spec.StopGracePeriod())
	c.stopped.Store(true)
	if err := c.e.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("task %s: stop container %s: %w", c.task.ID, c.name, err)
		}
	}
	return waitDone(ctx, done)
}

// Terminate kills the container with SIGKILL and waits for its exit.
func (c *controller) Terminate(ctx context.Context) error {
	id, done, err := c.running(ctx)
	if err != nil || id == "" {
		return err
	}
	c.stopped.Store(true)
	if err := c.e.cli.ContainerKill(ctx, id, "SIGKILL"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Conflict: it is not running any more; the monitor reports it.
		if !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("task %s: kill container %s: %w", c.task.ID, c.name, err)
		}
	}
	return waitDone(ctx, done)
}

// Remove stops a running container like Shutdown, then removes it with its
// anonymous volumes.
func (c *controller) Remove(ctx context.Context) error {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	if err := c.loadLocked(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	removed, id := c.removed, c.id
	c.mu.Unlock()
	if removed {
		return nil
	}
	if id != "" {
		if err := c.Shutdown(ctx); err != nil {
			return err
		}
		err := c.e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("task %s: remove container %s: %w", c.task.ID, c.name, err)
		}
		c.log.Debug("container removed", "container", shortID(id))
	}
	c.removeHostDeps()
	c.mu.Lock()
	c.removed = true
	c.mu.Unlock()
	c.e.forget(c.task.ID, c)
	return nil
}

// Status reports the container ID and, while it runs, its main process's
// PID (in the engine's PID namespace); once it exited, the exit code.
// Before Start it reports nothing, although Prepare created the container.
func (c *controller) Status(ctx context.Context) (api.ContainerStatus, error) {
	id, started, _, done, err := c.state(ctx)
	if err != nil || !started {
		return api.ContainerStatus{}, err
	}
	cs := api.ContainerStatus{ContainerID: id}
	if isClosed(done) {
		c.mu.Lock()
		cs.ExitCode, cs.OOMKilled = c.status.ExitCode, c.status.OOMKilled
		c.mu.Unlock()
		return cs, nil
	}
	insp, err := c.e.cli.ContainerInspect(ctx, id)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return cs, nil
		}
		return cs, fmt.Errorf("task %s: inspect container %s: %w", c.task.ID, c.name, err)
	}
	if insp.ContainerJSONBase != nil && insp.State != nil && insp.State.Running {
		cs.PID = insp.State.Pid
	}
	return cs, nil
}

// Health reads the engine's verdict on the container's health check:
// "starting", "healthy" or "unhealthy", or "" when it has none (or has not
// started).
func (c *controller) Health(ctx context.Context) (string, error) {
	id, started, removed, _, err := c.state(ctx)
	if err != nil || !started || removed {
		return "", err
	}
	insp, err := c.e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", fmt.Errorf("task %s: inspect container %s: %w", c.task.ID, c.name, err)
	}
	if insp.ContainerJSONBase == nil || insp.State == nil || insp.State.Health == nil {
		return "", nil
	}
	switch s := insp.State.Health.Status; s {
	case container.Starting:
		return api.HealthStarting, nil
	case container.Healthy:
		return api.HealthHealthy, nil
	case container.Unhealthy:
		return api.HealthUnhealthy, nil
	case container.NoHealthcheck, "":
		return "", nil
	default:
		return strings.ToLower(string(s)), nil
	}
}
