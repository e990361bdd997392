package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// runner drives one task through the executor, following the task's desired
// state, and reports each observed state. The state it reports only ever
// moves forward (api.CheckTransition); the manager refuses anything else.
type runner struct {
	a  *Agent
	id string

	mu      sync.Mutex
	task    *api.Task // latest assignment
	removed bool
	ctrl    executor.Controller
	wake    chan struct{}

	state  api.TaskState // last reported
	exitCh chan executor.ExitStatus
	// stopped is set once Shutdown succeeded for an unwanted task.
	stopped bool

	// Health (health.go): the task's last health, the time it started
	// running (carried in every report from then on), the watcher's
	// changes and how to stop the watcher.
	health     string
	startedAt  time.Time
	healthCh   chan healthResult
	stopHealth context.CancelFunc
	lastReport time.Time

	// ports are the task's host ports (hostports.go), reported in every
	// status from the first on as its PortStatus.
	ports []api.PortConfig
}

func newRunner(a *Agent, t *api.Task) *runner {
	r := &runner{a: a, id: t.ID, task: t, state: t.Status.State, wake: make(chan struct{}, 1), exitCh: make(chan executor.ExitStatus, 1), healthCh: make(chan healthResult)}
	r.health = t.Status.Health
	if cs := t.Status.ContainerStatus; cs != nil {
		r.startedAt = cs.StartedAt
	}
	if s := t.Status.State; s > api.TaskStateAssigned && !s.Terminal() {
		// Started by a previous agent: the ports are the task's already.
		a.ports.adopt(t, t.Status.PortStatus)
	}
	return r
}

func (r *runner) update(t *api.Task) {
	r.mu.Lock()
	r.task = t
	r.mu.Unlock()
	r.poke()
}

func (r *runner) remove() {
	r.mu.Lock()
	r.removed = true
	r.mu.Unlock()
	r.poke()
}

func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *runner) latest() (*api.Task, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.task, r.removed
}

// set records and reports a new observed state.
func (r *runner) set(s api.TaskState, msg string, err error, cs *api.ContainerStatus) {
	if s < r.state || (s == r.state && err == nil) {
		return
	}
	r.state = s
	r.send(msg, err, cs)
	if s.Terminal() {
		r.a.ports.release(r.id)
	}
}

// send reports the current state with the task's health and start time.
// Timestamps strictly increase, so each report is told from the one before.
func (r *runner) send(msg string, err error, cs *api.ContainerStatus) {
	now := time.Now().UTC()
	if !now.After(r.lastReport) {
		now = r.lastReport.Add(time.Nanosecond)
	}
	r.lastReport = now
	if cs != nil && !r.startedAt.IsZero() {
		cs.StartedAt = r.startedAt
	}
	st := api.TaskStatus{Timestamp: now, State: r.state, Message: msg, ContainerStatus: cs, Health: r.health, PortStatus: append([]api.PortConfig(nil), r.ports...)}
	if err != nil {
		st.Err = err.Error()
	}
	r.a.report(r.id, st)
	if t, _ := r.latest(); t != nil {
		r.a.noteStatus(t, st)
	}
}

// waitChange blocks until the assignment changes or the agent stops; it
// reports false when the agent stops.
func (r *runner) waitChange(ctx context.Context) bool {
	select {
	case <-r.wake:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *runner) run(ctx context.Context) {
	t, _ := r.latest()
	ctrl, msg, err := r.controller(t)
	if err != nil {
		r.set(api.TaskStateRejected, msg, err, nil)
	} else {
		r.mu.Lock()
		r.ctrl = ctrl
		r.mu.Unlock()
		if r.state > api.TaskStateAssigned && !r.state.Terminal() {
			r.adopt(ctx, ctrl)
		}
	}
	for {
		t, removed := r.latest()
		if removed || t.DesiredState > api.TaskStateRunning || ctrl == nil {
			if ctrl != nil {
				r.stop(ctx, ctrl)
			}
			if removed {
				r.a.ports.release(r.id)
				if ctrl != nil {
					if err := ctrl.Remove(ctx); err != nil {
						r.a.log.Warn("remove task", "task", r.id, "err", err)
					}
				}
				r.a.forget(r.id, r)
				return
			}
			if !r.waitChange(ctx) {
				return
			}
			continue
		}
		switch {
		case r.state == api.TaskStateAssigned:
			r.set(api.TaskStateAccepted, "accepted", nil, nil)
		case r.state < api.TaskStateReady:
			r.set(api.TaskStatePreparing, "preparing", nil, nil)
			if err := ctrl.Prepare(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.set(api.TaskStateRejected, "prepare failed", err, nil)
				continue
			}
			r.set(api.TaskStateReady, "prepared", nil, nil)
		case r.state == api.TaskStateReady:
			if t.DesiredState < api.TaskStateRunning {
				// Held back: a restart delay, or a predecessor
				// still stopping.
				if !r.waitChange(ctx) {
					return
				}
				continue
			}
			fallthrough
		case r.state == api.TaskStateStarting:
			r.set(api.TaskStateStarting, "starting", nil, nil)
			if err := ctrl.Start(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.set(api.TaskStateFailed, "start failed", err, nil)
				continue
			}
			cs, _ := ctrl.Status(ctx)
			r.startedAt = time.Now().UTC()
			if t.Spec.HasHealthCheck() {
				r.health = api.HealthStarting
			}
			r.set(api.TaskStateRunning, "started", nil, &cs)
			go r.waitExit(ctx, ctrl)
			r.watchHealth(ctx, ctrl, t)
		case r.state == api.TaskStateRunning:
			select {
			case ex := <-r.exitCh:
				r.endHealth()
				r.exited(ex)
			case h := <-r.healthCh:
				r.healthChanged(ctx, ctrl, h)
			case <-r.wake:
			case <-ctx.Done():
				return
			}
		default: // terminal: nothing to do until removal
			if !r.waitChange(ctx) {
				return
			}
		}
	}
}

// controller returns the executor's controller of t, which it is given
// with the host data path's environment (taskenv.go) and its host ports:
// those it held already (adopted, or allocated by this runner), or new
// ones for a task that has not started yet.
// On error it says what failed, for the report's message.
func (r *runner) controller(t *api.Task) (ctrl executor.Controller, msg string, err error) {
	ports, ok := r.a.ports.held(t.ID)
	if !ok && r.state < api.TaskStateStarting {
		if ports, err = r.a.ports.allocate(t); err != nil {
			return nil, "no host ports for the task", fmt.Errorf("host ports: %w", err)
		}
	}
	r.ports = ports
	ctrl, err = r.a.cfg.Executor.Controller(withHostEnv(t, r.a.cfg.HostAddr, r.a.cfg.DNSAddr, ports))
	msg = "executor refused the task"
	// A task that ended needs nothing: its node is not sent what it
	// referenced any more.
	if err == nil && !r.state.Terminal() {
		msg = "no secrets or configs for the task"
		err = r.a.dependencies(t, ctrl)
	}
	if err != nil {
		r.a.ports.release(t.ID)
		r.ports = nil
		return nil, msg, err
	}
	return ctrl, "", nil
}

// adopt picks up a task that a previous agent on this node had started.
func (r *runner) adopt(ctx context.Context, ctrl executor.Controller) {
	if r.state < api.TaskStateStarting {
		return // Prepare is idempotent: go through it again
	}
	cs, err := ctrl.Status(ctx)
	if err != nil || (cs.PID == 0 && cs.ContainerID == "") {
		r.set(api.TaskStateFailed, "task lost while the agent was away", err, nil)
		return
	}
	// Report RUNNING when the managers last heard STARTING (the report was
	// lost with the previous agent or manager); set does nothing when they
	// already know.
	r.set(api.TaskStateRunning, "adopted after an agent restart", nil, &cs)
	go r.waitExit(ctx, ctrl)
	t, _ := r.latest()
	r.watchHealth(ctx, ctrl, t)
}

// watchHealth starts watching a running task's health (health.go).
func (r *runner) watchHealth(ctx context.Context, ctrl executor.Controller, t *api.Task) {
	hctx, cancel := context.WithCancel(ctx)
	r.stopHealth = cancel
	started := r.startedAt
	if started.IsZero() {
		started = time.Now()
	}
	go watchHealth(hctx, t, ctrl, started, r.health, r.healthCh)
}

// endHealth stops the health watcher, if one runs.
func (r *runner) endHealth() {
	if r.stopHealth != nil {
		r.stopHealth()
		r.stopHealth = nil
	}
}

// healthChanged reports a new health; an unhealthy task is stopped and
// reported FAILED, for its restart policy to replace it.
func (r *runner) healthChanged(ctx context.Context, ctrl executor.Controller, h healthResult) {
	r.health = h.status
	if h.status != api.HealthUnhealthy {
		r.send("health: "+h.status, nil, r.runningStatus(ctx, ctrl))
		return
	}
	r.endHealth()
	if err := ctrl.Shutdown(ctx); err != nil {
		if ctx.Err() != nil {
			return
		}
		r.a.log.Warn("shutdown unhealthy task", "task", r.id, "err", err)
	}
	r.stopped = true
	cs := &api.ContainerStatus{}
	select {
	case ex := <-r.exitCh:
		cs.ExitCode, cs.OOMKilled = ex.ExitCode, ex.OOMKilled
	case <-time.After(time.Second):
	}
	r.set(api.TaskStateFailed, "unhealthy", fmt.Errorf("task unhealthy: %s", h.detail), cs)
}

// runningStatus is the container status of a running task.
func (r *runner) runningStatus(ctx context.Context, ctrl executor.Controller) *api.ContainerStatus {
	cs, err := ctrl.Status(ctx)
	if err != nil {
		return &api.ContainerStatus{}
	}
	return &cs
}

func (r *runner) waitExit(ctx context.Context, ctrl executor.Controller) {
	ex, err := ctrl.Wait(ctx)
	if err != nil {
		return // the agent stops; the task keeps running
	}
	r.exitCh <- ex
}

// exited reports how a running task ended on its own.
func (r *runner) exited(ex executor.ExitStatus) {
	r.endHealth()
	cs := &api.ContainerStatus{ExitCode: ex.ExitCode, OOMKilled: ex.OOMKilled}
	if !ex.Failed() {
		r.set(api.TaskStateComplete, "finished", nil, cs)
		return
	}
	msg := ex.Message
	if msg == "" {
		msg = fmt.Sprintf("exit code %d", ex.ExitCode)
	}
	r.set(api.TaskStateFailed, "task failed", fmt.Errorf("%s", msg), cs)
}

// stop shuts the task down because the managers no longer want it.
func (r *runner) stop(ctx context.Context, ctrl executor.Controller) {
	if r.state.Terminal() {
		// The managers may have ended the task without this node (it was
		// ORPHANED while the node was away): make sure it is not still
		// running here. Shutdown of a stopped task does nothing.
		if !r.stopped {
			if err := ctrl.Shutdown(ctx); err == nil {
				r.stopped = true
			} else if ctx.Err() == nil {
				r.a.log.Warn("shutdown ended task", "task", r.id, "err", err)
			}
		}
		return
	}
	if r.state < api.TaskStateStarting {
		r.set(api.TaskStateShutdown, "shut down before it started", nil, nil)
		return
	}
	r.endHealth()
	if err := ctrl.Shutdown(ctx); err != nil {
		if ctx.Err() != nil {
			return
		}
		r.a.log.Warn("shutdown task", "task", r.id, "err", err)
	}
	r.stopped = true
	cs := &api.ContainerStatus{}
	select {
	case ex := <-r.exitCh:
		cs.ExitCode = ex.ExitCode
	case <-time.After(time.Second):
		// The waiter may not be running (the task never started
		// properly); Shutdown returned, so the task is down.
	}
	r.set(api.TaskStateShutdown, "shut down", nil, cs)
}

// kill terminates the task at once, without reporting: the node is going
// away as if its machine died.
func (r *runner) kill(ctx context.Context) error {
	r.mu.Lock()
	ctrl := r.ctrl
	r.mu.Unlock()
	if ctrl == nil {
		return nil
	}
	if err := ctrl.Terminate(ctx); err != nil {
		return fmt.Errorf("terminate task %s: %w", r.id, err)
	}
	// Wait until the executor has recorded the end, so that nothing of the
	// task is still being written when this returns.
	if _, err := ctrl.Wait(ctx); err != nil && !errors.Is(err, executor.ErrNotStarted) {
		return fmt.Errorf("wait for task %s: %w", r.id, err)
	}
	return nil
}
