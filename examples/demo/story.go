package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
)

type options struct {
	keep        bool
	workers     int
	updateDelay time.Duration
	stepTimeout time.Duration
	verbose     bool
	dataDir     string
	logger      *slog.Logger
}

type node struct {
	name   string
	worker *swarm.Worker
	exec   *process.Executor
}

type demo struct {
	opts    options
	out     io.Writer
	dir     string
	tmp     bool
	mgr     *swarm.Manager
	client  *swarm.Client
	nodes   []*node
	stepNum int
}

const steps = 6

// step prints one line: the step, what happened, and how long it took.
func (d *demo) step(what string, start time.Time, result string) {
	d.stepNum++
	fmt.Fprintf(d.out, "[%d/%d] %-44s %6.2fs  %s\n", d.stepNum, steps, what, time.Since(start).Seconds(), result)
}

func (d *demo) story(ctx context.Context) error {
	start := time.Now()
	if err := d.setup(ctx); err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	d.step("start 1 manager and 3 workers", start, fmt.Sprintf("nodes ready: %s (data in %s)", d.nodeNames(), d.dir))

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	grace := 5 * time.Second
	spec := api.ServiceSpec{
		Annotations: api.Annotations{Name: "app"},
		Mode:        api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 3}},
		TaskTemplate: api.TaskSpec{
			Process: &api.ProcessSpec{Command: []string{self, "webapp"}, Env: []string{"APP_VERSION=v1"}, StopGracePeriod: &grace},
		},
		UpdateConfig: &api.UpdateConfig{Parallelism: 1, Delay: d.opts.updateDelay, Order: api.UpdateOrderStopFirst, FailureAction: api.UpdateFailureActionPause},
	}

	start = time.Now()
	svc, err := d.client.CreateService(ctx, spec)
	if err != nil {
		return err
	}
	if err := d.converge(ctx, svc.ID); err != nil {
		return err
	}
	answers, err := d.probe(ctx, svc.ID, "v1")
	if err != nil {
		return err
	}
	d.step("service create app --replicas 3", start, d.placement(ctx, svc.ID)+"; "+answers)

	start = time.Now()
	if _, err := d.client.ScaleService(ctx, "app", 5); err != nil {
		return err
	}
	if err := d.converge(ctx, svc.ID); err != nil {
		return err
	}
	d.step("service scale app=5", start, d.placement(ctx, svc.ID))

	if err := d.killWorker(ctx, svc.ID); err != nil {
		return err
	}

	if err := d.rollingUpdate(ctx, svc.ID); err != nil {
		return err
	}

	start = time.Now()
	if _, err := d.client.ScaleService(ctx, "app", 2); err != nil {
		return err
	}
	if err := d.converge(ctx, svc.ID); err != nil {
		return err
	}
	if answers, err = d.probe(ctx, svc.ID, "v2"); err != nil {
		return err
	}
	d.step("service scale app=2", start, d.placement(ctx, svc.ID)+"; "+answers)
	return nil
}

func (d *demo) setup(ctx context.Context) error {
	d.dir = d.opts.dataDir
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "apiary-demo-")
		if err != nil {
			return err
		}
		d.dir, d.tmp = dir, true
	}
	cfg := swarm.DefaultManagerConfig()
	cfg.Logger = d.opts.logger
	mgr, err := swarm.StartManager(ctx, cfg)
	if err != nil {
		return err
	}
	d.mgr, d.client = mgr, mgr.Client()
	for i := 1; i <= d.opts.workers; i++ {
		name := fmt.Sprintf("worker-%d", i)
		pcfg := process.DefaultConfig()
		pcfg.DataDir = filepath.Join(d.dir, name)
		pcfg.Hostname = name
		pcfg.Logger = d.opts.logger
		ex, err := process.New(pcfg)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		w, err := swarm.StartWorker(ctx, swarm.WorkerConfig{Manager: mgr.Dispatcher(), Executor: ex, Logger: d.opts.logger})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d.nodes = append(d.nodes, &node{name: name, worker: w, exec: ex})
	}
	return nil
}

func (d *demo) nodeNames() string {
	var names []string
	for _, n := range d.nodes {
		names = append(names, n.name)
	}
	return strings.Join(names, ", ")
}

func (d *demo) converge(ctx context.Context, serviceID string) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.stepTimeout)
	defer cancel()
	if err := d.client.WaitConverged(ctx, serviceID); err != nil {
		return err
	}
	return d.mgr.Err()
}

// running returns the service's tasks that are wanted and running.
func (d *demo) running(ctx context.Context, serviceID string) ([]*api.Task, error) {
	tasks, err := d.client.ListTasks(ctx, swarm.TaskFilter{Service: serviceID, DesiredStates: []api.TaskState{api.TaskStateRunning}})
	if err != nil {
		return nil, err
	}
	var out []*api.Task
	for _, t := range tasks {
		if t.Status.State == api.TaskStateRunning {
			out = append(out, t)
		}
	}
	return out, nil
}

// placement says how many of the service's tasks run on each node.
func (d *demo) placement(ctx context.Context, serviceID string) string {
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return err.Error()
	}
	per := map[string]int{}
	for _, t := range tasks {
		per[d.nameOf(ctx, t.NodeID)]++
	}
	var parts []string
	for n, c := range per {
		parts = append(parts, fmt.Sprintf("%s:%d", n, c))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d running (%s)", len(tasks), strings.Join(parts, " "))
}

func (d *demo) nameOf(ctx context.Context, nodeID string) string {
	n, err := d.client.GetNode(ctx, nodeID)
	if err != nil || n.Description == nil {
		return nodeID
	}
	return n.Description.Hostname
}

func (d *demo) nodeOf(id string) *node {
	for _, n := range d.nodes {
		if n.worker != nil && n.worker.NodeID() == id {
			return n
		}
	}
	return nil
}

// killWorker kills the worker with the most tasks, as if its machine died,
// and waits for its tasks to run elsewhere.
func (d *demo) killWorker(ctx context.Context, serviceID string) error {
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, t := range tasks {
		count[t.NodeID]++
	}
	var victim *node
	for _, n := range d.nodes {
		if victim == nil || count[n.worker.NodeID()] > count[victim.worker.NodeID()] {
			victim = n
		}
	}
	start := time.Now()
	if err := victim.worker.Kill(ctx); err != nil {
		return err
	}
	// The managers learn of the death only from the missing heartbeats.
	if err := d.waitNodeDown(ctx, victim.worker.NodeID()); err != nil {
		return fmt.Errorf("%s: %w", victim.name, err)
	}
	if err := d.converge(ctx, serviceID); err != nil {
		return err
	}
	// Converged means every replica runs; make sure none is on the dead node.
	tasks, err = d.running(ctx, serviceID)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.NodeID == victim.worker.NodeID() {
			return fmt.Errorf("task %s still counted on dead node %s", t.ID, victim.name)
		}
	}
	n, err := d.client.GetNode(ctx, victim.worker.NodeID())
	if err != nil {
		return err
	}
	d.step(fmt.Sprintf("%s dies (%d tasks on it)", victim.name, count[victim.worker.NodeID()]), start,
		fmt.Sprintf("node %s; rescheduled: %s", n.Status.State, d.placement(ctx, serviceID)))
	return nil
}

func (d *demo) waitNodeDown(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.stepTimeout)
	defer cancel()
	for {
		n, err := d.client.GetNode(ctx, id)
		if err != nil {
			return err
		}
		if n.Status.State == api.NodeStateDown {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not declared down: %w (state %s)", ctx.Err(), n.Status.State)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// rollingUpdate rolls v2 out and shows, from the task timestamps, that the
// tasks were replaced one at a time with the delay in between.
func (d *demo) rollingUpdate(ctx context.Context, serviceID string) error {
	start := time.Now()
	svc, err := d.client.GetService(ctx, serviceID)
	if err != nil {
		return err
	}
	spec := svc.Spec.Copy()
	spec.TaskTemplate.Process.Env = []string{"APP_VERSION=v2"}
	if _, err := d.client.UpdateService(ctx, serviceID, svc.Meta.Version, spec); err != nil {
		return err
	}
	if err := d.converge(ctx, serviceID); err != nil {
		return err
	}
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return err
	}
	var starts []time.Time
	for _, t := range tasks {
		starts = append(starts, t.Status.Timestamp)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	var gaps []string
	for i := 1; i < len(starts); i++ {
		gap := starts[i].Sub(starts[i-1])
		if gap < d.opts.updateDelay {
			return fmt.Errorf("rolling update: tasks started %v apart, less than the %v delay", gap, d.opts.updateDelay)
		}
		gaps = append(gaps, fmt.Sprintf("%.1fs", gap.Seconds()))
	}
	answers, err := d.probe(ctx, serviceID, "v2")
	if err != nil {
		return err
	}
	d.step(fmt.Sprintf("service update app (v2, delay %v)", d.opts.updateDelay), start,
		fmt.Sprintf("%d replaced one at a time, gaps %s; %s", len(tasks), strings.Join(gaps, " "), answers))
	return nil
}

// probe asks every running task over HTTP who it is, reading its address
// from the task's own log, and checks it runs the expected version.
func (d *demo) probe(ctx context.Context, serviceID, version string) (string, error) {
	tasks, err := d.running(ctx, serviceID)
	if err != nil {
		return "", err
	}
	ok := 0
	for _, t := range tasks {
		n := d.nodeOf(t.NodeID)
		if n == nil {
			return "", fmt.Errorf("task %s runs on an unknown node %s", t.ID, t.NodeID)
		}
		url, err := d.address(ctx, n, t.ID)
		if err != nil {
			return "", fmt.Errorf("task %s: %w", t.ID, err)
		}
		body, err := get(ctx, url)
		if err != nil {
			return "", fmt.Errorf("task %s at %s: %w", t.ID, url, err)
		}
		if !strings.Contains(body, " "+version+" ") {
			return "", fmt.Errorf("task %s answered %q, want version %s", t.ID, strings.TrimSpace(body), version)
		}
		ok++
	}
	return fmt.Sprintf("%d/%d answer HTTP with %s", ok, len(tasks), version), nil
}

// address waits for the task's "listening on" line in its log.
func (d *demo) address(ctx context.Context, n *node, taskID string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc, err := n.worker.Logs(ctx, taskID, executor.LogOptions{})
		if err == nil {
			sc := bufio.NewScanner(rc)
			for sc.Scan() {
				if i := strings.Index(sc.Text(), "http://"); i >= 0 {
					rc.Close()
					return strings.Fields(sc.Text()[i:])[0], nil
				}
			}
			rc.Close()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no address in its log after 10s (last error: %v)", err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// teardown removes the service so its tasks stop, then stops the nodes,
// killing whatever still runs, and removes the temporary directory.
func (d *demo) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d.client != nil {
		if err := d.client.RemoveService(ctx, "app"); err == nil {
			d.waitNoTasks(ctx)
		}
	}
	for _, n := range d.nodes {
		_ = n.worker.Kill(ctx)
		_ = n.exec.Close()
	}
	if d.mgr != nil {
		d.mgr.Stop()
	}
	if d.tmp {
		os.RemoveAll(d.dir)
	}
}

func (d *demo) waitNoTasks(ctx context.Context) {
	for ctx.Err() == nil {
		tasks, err := d.client.ListTasks(ctx, swarm.TaskFilter{})
		if err != nil || len(tasks) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
