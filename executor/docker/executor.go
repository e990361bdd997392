package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/internal/backoff"
	"github.com/apiary-io/apiary/swarm/api"
)

// Kind is the executor kind reported in the node description.
const Kind = "docker"

// Container labels the executor sets (see the package documentation).
const (
	LabelCluster     = "io.apiary.cluster"
	LabelServiceID   = "io.apiary.service.id"
	LabelServiceName = "io.apiary.service.name"
	LabelTaskID      = "io.apiary.task.id"
	LabelTaskSlot    = "io.apiary.task.slot"
	LabelNodeID      = "io.apiary.node.id"
	// LabelTask holds the task as the executor took it, in JSON, for
	// ListTasks.
	LabelTask = "io.apiary.task"
)

// Timings, variables so tests can shorten them.
var (
	// retryMin and retryMax bound the back-off of the event subscription
	// and of a monitor whose wait on its container broke.
	retryMin = 100 * time.Millisecond
	retryMax = 2 * time.Second
)

// newRetry returns the back-off between retryMin and retryMax.
func newRetry() *backoff.Backoff {
	return backoff.New(backoff.Config{Base: retryMin, Max: retryMax})
}

// Executor runs tasks as Docker containers. It implements
// executor.Executor and executor.TaskLister.
type Executor struct {
	cfg       Config
	cli       *client.Client
	ownClient bool
	log       *slog.Logger

	ctx    context.Context // ends with Close: monitors and the event watcher stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	ctrls  map[string]*controller
	closed bool
	// tmpfsOnce logs once that SecretsDir is not a tmpfs (secrets.go).
	tmpfsOnce sync.Once
}

var (
	_ executor.Executor   = (*Executor)(nil)
	_ executor.TaskLister = (*Executor)(nil)
)

// New makes an Executor. It does not contact the engine: Describe and the
// controllers report an unreachable engine. It subscribes to the engine's
// events for its containers in the background until Close.
func New(cfg Config) (*Executor, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = DefaultPullTimeout
	}
	cfg.Labels = maps.Clone(cfg.Labels)
	e := &Executor{cfg: cfg, cli: cfg.Client, log: cfg.Logger.With("executor", Kind), ctrls: map[string]*controller{}}
	if e.cli == nil {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker executor: client: %w", err)
		}
		e.cli, e.ownClient = cli, true
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(1)
	go e.watchEvents()
	return e, nil
}

// Close releases the executor without stopping its containers: they keep
// running and the next Executor adopts them. Controllers of a closed
// executor must not be used any more.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	if e.ownClient {
		return e.cli.Close()
	}
	return nil
}

// Describe reports the engine's machine (docker info): CPUs, memory,
// platform, engine version and labels (the engine's, then Config.Labels).
func (e *Executor) Describe(ctx context.Context) (api.NodeDescription, error) {
	info, err := e.cli.Info(ctx)
	if err != nil {
		return api.NodeDescription{}, fmt.Errorf("docker executor: describe: %w", err)
	}
	labels := map[string]string{}
	for _, l := range info.Labels {
		k, v, _ := strings.Cut(l, "=")
		labels[k] = v
	}
	maps.Copy(labels, e.cfg.Labels)
	if len(labels) == 0 {
		labels = nil
	}
	host := e.cfg.Hostname
	if host == "" {
		host = info.Name
	}
	return api.NodeDescription{
		Hostname: host,
		Platform: api.Platform{OS: goOS(info.OSType), Architecture: goArch(info.Architecture)},
		Resources: api.Resources{
			NanoCPUs:    int64(info.NCPU) * 1e9,
			MemoryBytes: info.MemTotal,
		},
		Engine:   api.EngineDescription{EngineVersion: info.ServerVersion, Labels: labels},
		Executor: Kind,
	}, nil
}

// Controller returns the controller of t, which must have a container spec.
// The same task ID always gets the same controller from one Executor; a new
// Executor finds the container an earlier one made by its labels.
func (e *Executor) Controller(t *api.Task) (executor.Controller, error) {
	if t == nil {
		return nil, errors.New("docker executor: nil task")
	}
	if t.Spec.Container == nil {
		kind := t.Spec.RuntimeKind()
		if kind == "" {
			kind = "none"
		}
		return nil, fmt.Errorf("task %s: runtime %q: %w", t.ID, kind, executor.ErrRuntimeMismatch)
	}
	if t.ID == "" {
		return nil, errors.New("docker executor: task without an ID")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errClosed
	}
	if c, ok := e.ctrls[t.ID]; ok {
		return c, nil
	}
	c := newController(e, t.Copy())
	e.ctrls[t.ID] = c
	return c, nil
}

// ListTasks returns the tasks whose containers exist (created, running or
// exited, and not removed) in this cluster and, when Config.NodeID is set,
// on this node, as they were when the executor took them.
func (e *Executor) ListTasks(ctx context.Context) ([]*api.Task, error) {
	cs, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: e.scope()})
	if err != nil {
		return nil, fmt.Errorf("docker executor: list containers: %w", err)
	}
	var out []*api.Task
	for _, c := range cs {
		if e.cfg.NodeID != "" && c.Labels[LabelNodeID] != e.cfg.NodeID {
			continue
		}
		t, err := taskFromLabels(c.Labels)
		if err != nil {
			e.log.Warn("container with unreadable task labels", "container", c.ID, "err", err)
			continue
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// scope filters the executor's containers: those of a task, in this cluster.
func (e *Executor) scope() filters.Args {
	f := filters.NewArgs(filters.Arg("label", LabelTaskID))
	if e.cfg.ClusterID != "" {
		f.Add("label", LabelCluster+"="+e.cfg.ClusterID)
	}
	return f
}

// taskFromLabels reads the task a container was made for. Without the JSON
// label (a container made by hand) the task is rebuilt from the others.
func taskFromLabels(l map[string]string) (*api.Task, error) {
	if j, ok := l[LabelTask]; ok {
		var t api.Task
		if err := json.Unmarshal([]byte(j), &t); err != nil {
			return nil, fmt.Errorf("label %s: %w", LabelTask, err)
		}
		return &t, nil
	}
	id := l[LabelTaskID]
	if id == "" {
		return nil, fmt.Errorf("no label %s", LabelTaskID)
	}
	slot, _ := strconv.ParseUint(l[LabelTaskSlot], 10, 64)
	return &api.Task{
		ID:                 id,
		ServiceID:          l[LabelServiceID],
		ServiceAnnotations: api.Annotations{Name: l[LabelServiceName]},
		Slot:               slot,
		NodeID:             l[LabelNodeID],
		Spec:               api.TaskSpec{Container: &api.ContainerSpec{}},
	}, nil
}

// errClosed is returned by controllers of a closed Executor.
var errClosed = errors.New("docker executor closed")

func (e *Executor) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

func (e *Executor) lookup(taskID string) *controller {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ctrls[taskID]
}

func (e *Executor) forget(id string, c *controller) {
	e.mu.Lock()
	if e.ctrls[id] == c {
		delete(e.ctrls, id)
	}
	e.mu.Unlock()
}

// watchEvents follows the engine's die and oom events of the executor's
// containers until Close, subscribing again when the stream breaks.
func (e *Executor) watchEvents() {
	defer e.wg.Done()
	f := e.scope()
	f.Add("type", string(events.ContainerEventType))
	f.Add("event", string(events.ActionDie))
	f.Add("event", string(events.ActionOOM))
	retry := newRetry()
	for {
		msgs, errs := e.cli.Events(e.ctx, events.ListOptions{Filters: f})
		err := e.readEvents(msgs, errs, retry)
		if e.ctx.Err() != nil {
			return
		}
		wait := retry.Next()
		e.log.Debug("engine event stream ended; subscribing again", "err", err, "in", wait)
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// readEvents hands the stream's events on until it breaks; an event shows
// the subscription works, so the retry after the break starts short.
func (e *Executor) readEvents(msgs <-chan events.Message, errs <-chan error, retry *backoff.Backoff) error {
	for {
		select {
		case m := <-msgs:
			retry.Reset()
			e.event(m)
		case err := <-errs:
			return err
		}
	}
}

func (e *Executor) event(m events.Message) {
	taskID := m.Actor.Attributes[LabelTaskID]
	c := e.lookup(taskID)
	if c == nil {
		return // another node's or an untracked task's container
	}
	switch m.Action {
	case events.ActionOOM:
		c.log.Warn("container hit its memory limit: killed by the kernel", "container", shortID(m.Actor.ID))
		c.sawOOM()
	case events.ActionDie:
		c.log.Debug("container died", "container", shortID(m.Actor.ID), "exit_code", m.Actor.Attributes["exitCode"])
		c.poke()
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
