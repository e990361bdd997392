//go:build unix

package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// Executor runs tasks as OS processes. It implements executor.Executor and
// executor.TaskLister.
type Executor struct {
	cfg      Config
	log      *slog.Logger
	tasksDir string
	lock     *os.File
	cgroups  *cgroupManager

	mu      sync.Mutex
	ctrls   map[string]*controller
	closed  bool
	closing chan struct{} // closed by Close: background readers and watchers stop
	// tmpfsOnce logs once that secrets go to disk (secrets.go).
	tmpfsOnce sync.Once
}

var (
	_ executor.Executor   = (*Executor)(nil)
	_ executor.TaskLister = (*Executor)(nil)
)

// New makes an Executor on cfg.DataDir, creating it (mode 0711) when it does
// not exist. Only one Executor may use a DataDir at a time: New fails while
// another holds it (it takes an exclusive flock on DataDir/lock).
func New(cfg Config) (*Executor, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("process executor: Config.DataDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.LogMaxSize == 0 {
		cfg.LogMaxSize = DefaultLogMaxSize
	}
	if cfg.LogMaxBackups <= 0 {
		cfg.LogMaxBackups = DefaultLogMaxBackups
	}
	cfg.Labels = maps.Clone(cfg.Labels)
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("process executor: data dir: %w", err)
	}
	cfg.DataDir = dir
	tasksDir := filepath.Join(dir, "tasks")
	if err := os.MkdirAll(tasksDir, 0o711); err != nil {
		return nil, fmt.Errorf("process executor: data dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("process executor: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("process executor: data dir %s is in use by another executor", dir)
		}
		return nil, fmt.Errorf("process executor: lock %s: %w", dir, err)
	}
	log := cfg.Logger.With("executor", Kind)
	return &Executor{
		cfg:      cfg,
		log:      log,
		tasksDir: tasksDir,
		lock:     lock,
		cgroups:  newCgroupManager(cfg.CgroupParent, log),
		ctrls:    make(map[string]*controller),
		closing:  make(chan struct{}),
	}, nil
}

// Close releases the executor without stopping its tasks: they keep running
// and the next Executor on the same DataDir adopts them. Controllers of a
// closed executor must not be used any more.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.closing)
	ctrls := make([]*controller, 0, len(e.ctrls))
	for _, c := range e.ctrls {
		ctrls = append(ctrls, c)
	}
	e.mu.Unlock()
	for _, c := range ctrls {
		c.detach()
	}
	return e.lock.Close() // releases the flock
}

// Describe reports the machine: hostname, platform, CPUs, memory and the
// configured labels.
func (e *Executor) Describe(ctx context.Context) (api.NodeDescription, error) {
	res := api.Resources{
		NanoCPUs:    int64(runtime.NumCPU()) * 1e9,
		MemoryBytes: memTotal(),
	}
	if e.cfg.Resources.NanoCPUs != 0 {
		res.NanoCPUs = e.cfg.Resources.NanoCPUs
	}
	if e.cfg.Resources.MemoryBytes != 0 {
		res.MemoryBytes = e.cfg.Resources.MemoryBytes
	}
	res.GenericResources = e.cfg.Resources.Copy().GenericResources
	return api.NodeDescription{
		Hostname:  e.cfg.Hostname,
		Platform:  api.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources: res,
		Engine: api.EngineDescription{
			EngineVersion: runtime.Version(),
			Labels:        maps.Clone(e.cfg.Labels),
		},
		Executor: Kind,
	}, nil
}

// Controller returns the controller of t, which must have a process spec,
// or a container spec whose image is an absolute path to an executable
// (api.ContainerSpec.AsProcess maps it).
// The same task ID always gets the same controller from one Executor; a new
// Executor on the same DataDir gets one that adopts what the old one started.
func (e *Executor) Controller(t *api.Task) (executor.Controller, error) {
	if t == nil {
		return nil, errors.New("process executor: nil task")
	}
	if t.Spec.Process == nil && t.Spec.Container.RunsAsProcess() {
		// A container spec whose image is an executable's path (what
		// `docker service create /path/to/program` sends) runs as that
		// process: the controller sees the process spec it maps to.
		t = t.Copy()
		t.Spec.Process, t.Spec.Container = t.Spec.Container.AsProcess(), nil
	}
	if t.Spec.Process == nil {
		kind := t.Spec.RuntimeKind()
		if kind == "" {
			kind = "none"
		}
		return nil, fmt.Errorf("task %s: runtime %q: %w", t.ID, kind, executor.ErrRuntimeMismatch)
	}
	if err := validTaskID(t.ID); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, errors.New("process executor: closed")
	}
	if c, ok := e.ctrls[t.ID]; ok {
		return c, nil
	}
	c := newController(e, t.Copy())
	e.ctrls[t.ID] = c
	return c, nil
}

// ListTasks returns the tasks that have a directory in DataDir (prepared or
// started, and not removed), as they were when prepared.
func (e *Executor) ListTasks(ctx context.Context) ([]*api.Task, error) {
	ents, err := os.ReadDir(e.tasksDir)
	if err != nil {
		return nil, fmt.Errorf("process executor: %w", err)
	}
	var out []*api.Task
	for _, ent := range ents {
		if !ent.IsDir() {
			continue
		}
		rec, err := readRecord(filepath.Join(e.tasksDir, ent.Name()))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				e.log.Warn("unreadable task record", "task", ent.Name(), "err", err)
			}
			continue
		}
		if rec.Task != nil {
			out = append(out, rec.Task)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (e *Executor) forget(id string, c *controller) {
	e.mu.Lock()
	if e.ctrls[id] == c {
		delete(e.ctrls, id)
	}
	e.mu.Unlock()
}

// validTaskID refuses IDs that cannot safely name a directory.
func validTaskID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 128 {
		return fmt.Errorf("process executor: invalid task ID %q", id)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("process executor: invalid task ID %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}
