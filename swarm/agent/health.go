package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// Health checks. A task's health matters once it runs: the runner reports
// it RUNNING with health "starting", then "healthy" once a check passes; a
// task that turns "unhealthy" is stopped and reported FAILED, so that its
// restart policy replaces it (as swarmkit does for Docker's HEALTHCHECK).
//
// Who checks depends on the executor. A controller that implements
// executor.HealthChecker (Docker, fake) checks its task itself: the agent
// polls its status. For the others (the process executor) the agent runs
// the spec's check: ["CMD", prog, args...] and ["CMD-SHELL", command] run
// on the node with the task's environment, ["HTTP", url] expects a 2xx or
// 3xx answer to a GET, ["TCP", host:port] a connection; with Docker's
// timing: a check every Interval, each given Timeout, "unhealthy" after
// Retries consecutive failures, failures during StartPeriod not counted
// while the task has not yet been healthy.

// healthResult is a change of a task's health.
type healthResult struct {
	status string // api.HealthStarting, HealthHealthy or HealthUnhealthy
	detail string // why it is unhealthy: the last failure
}

// healthTiming is a check's timing with Docker's defaults filled in.
type healthTiming struct {
	interval, timeout, startPeriod time.Duration
	retries                        int
}

func timingOf(h *api.HealthConfig) healthTiming {
	t := healthTiming{interval: api.DefaultHealthInterval, timeout: api.DefaultHealthTimeout, retries: api.DefaultHealthRetries}
	if h == nil {
		return t
	}
	if h.Interval > 0 {
		t.interval = h.Interval
	}
	if h.Timeout > 0 {
		t.timeout = h.Timeout
	}
	if h.Retries > 0 {
		t.retries = h.Retries
	}
	t.startPeriod = max(h.StartPeriod, 0)
	return t
}

// maxHealthPoll bounds how long a change of an executor's own health status
// takes to be noticed.
const maxHealthPoll = time.Second

// watchHealth watches a running task's health until ctx ends or the task
// turns unhealthy, sending every change on out. It returns at once, without
// watching, when there is nothing to watch: the spec disables checks
// (["NONE"]), or sets none and the controller does not check by itself. A
// controller's own check is polled for containers even without a check in
// the spec (the image's HEALTHCHECK), and is taken as absent when it
// reports "".
func watchHealth(ctx context.Context, t *api.Task, ctrl executor.Controller, started time.Time, initial string, out chan<- healthResult) {
	h := t.Spec.HealthCheck
	if h != nil && len(h.Test) > 0 && h.Test[0] == "NONE" {
		return
	}
	timing := timingOf(h)
	if hc, ok := ctrl.(executor.HealthChecker); ok {
		if t.Spec.HasHealthCheck() || t.Spec.Container != nil {
			pollHealth(ctx, hc, min(timing.interval, maxHealthPoll), initial, out)
		}
		return
	}
	if !t.Spec.HasHealthCheck() {
		return
	}
	p, err := newProbe(t)
	if err != nil {
		send(ctx, out, healthResult{status: api.HealthUnhealthy, detail: err.Error()})
		return
	}
	runChecks(ctx, p, timing, started, initial, out)
}

func send(ctx context.Context, out chan<- healthResult, r healthResult) bool {
	select {
	case out <- r:
		return true
	case <-ctx.Done():
		return false
	}
}

// pollHealth reads a controller's own health status every period (the first
// time at once) and sends its changes.
func pollHealth(ctx context.Context, hc executor.HealthChecker, period time.Duration, last string, out chan<- healthResult) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		h, err := hc.Health(ctx)
		switch {
		case err != nil:
			// Transient (the runtime is busy): ask again.
		case h == "":
			return // no check configured after all
		case h != last:
			r := healthResult{status: h}
			if h == api.HealthUnhealthy {
				r.detail = "the executor reports the task unhealthy"
			}
			if !send(ctx, out, r) || h == api.HealthUnhealthy {
				return
			}
			last = h
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// runChecks runs probe p on Docker's schedule and sends the health changes.
// status is the health known so far ("" or "starting" for a task that just
// started; "healthy" for one adopted after an agent restart).
func runChecks(ctx context.Context, p probe, timing healthTiming, started time.Time, status string, out chan<- healthResult) {
	if status == "" {
		status = api.HealthStarting
	}
	failures := 0
	tick := time.NewTicker(timing.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timing.timeout)
		err := p(pctx)
		if err != nil && pctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("health check timed out after %s", timing.timeout)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failures = 0
			if status != api.HealthHealthy {
				status = api.HealthHealthy
				if !send(ctx, out, healthResult{status: status}) {
					return
				}
			}
			continue
		}
		if status == api.HealthStarting && time.Since(started) < timing.startPeriod {
			continue // still starting up: not counted
		}
		failures++
		if failures >= timing.retries {
			send(ctx, out, healthResult{status: api.HealthUnhealthy, detail: fmt.Sprintf("%d consecutive health checks failed; last: %v", failures, err)})
			return
		}
	}
}

// probe is one check attempt: nil when it passed.
type probe func(ctx context.Context) error

// newProbe makes the probe of a task's health check.
func newProbe(t *api.Task) (probe, error) {
	test := t.Spec.HealthCheck.Test
	switch test[0] {
	case "CMD":
		if len(test) < 2 {
			return nil, errors.New(`health check ["CMD"] has no program`)
		}
		return commandProbe(t, test[1:]), nil
	case "CMD-SHELL":
		if len(test) != 2 {
			return nil, errors.New(`health check ["CMD-SHELL", command] needs one command`)
		}
		return commandProbe(t, []string{"/bin/sh", "-c", test[1]}), nil
	case "HTTP":
		if len(test) != 2 {
			return nil, errors.New(`health check ["HTTP", url] needs one URL`)
		}
		return httpProbe(test[1]), nil
	case "TCP":
		if len(test) != 2 {
			return nil, errors.New(`health check ["TCP", host:port] needs one address`)
		}
		return tcpProbe(test[1]), nil
	}
	return nil, fmt.Errorf("health check %q: unknown test kind", test[0])
}

// maxProbeOutput is how much of a failed command's output its error keeps,
// as Docker keeps a bounded log of each probe.
const maxProbeOutput = 4096

// commandProbe runs argv on the node: exit status 0 is healthy. It runs in
// the task's working directory when the spec names one, with the task's
// environment: PATH, HOME, the spec's Env and the APIARY_ variables the
// process executor gives the task.
func commandProbe(t *api.Task, argv []string) probe {
	env := taskEnv(t)
	dir := ""
	if p := t.Spec.Process; p != nil {
		dir = p.Dir
	}
	return func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env, cmd.Dir = env, dir
		var buf bytes.Buffer
		cmd.Stdout = &limitedWriter{w: &buf, n: maxProbeOutput}
		cmd.Stderr = cmd.Stdout
		// A check that leaves children holding its output open must not
		// hang the checker past its timeout.
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		if err == nil {
			return nil
		}
		if out := strings.TrimSpace(buf.String()); out != "" {
			return fmt.Errorf("%s: %w: %s", argv[0], err, out)
		}
		return fmt.Errorf("%s: %w", argv[0], err)
	}
}

func taskEnv(t *api.Task) []string {
	env := []string{"PATH=" + api.TaskPath(), "HOME=" + os.Getenv("HOME")}
	switch {
	case t.Spec.Process != nil:
		env = append(env, t.Spec.Process.Env...)
	case t.Spec.Container != nil:
		env = append(env, t.Spec.Container.Env...)
	}
	return append(env, api.TaskIdentityEnv(t, t.NodeID)...)
}

type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// httpProbe GETs url: a 2xx or 3xx answer is healthy (redirects are not
// followed).
func httpProbe(url string) probe {
	client := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// tcpProbe connects to addr; ":port" is the task's own node.
func tcpProbe(addr string) probe {
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}
