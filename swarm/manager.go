package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/allocator"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/dispatcher"
	"github.com/apiary-io/apiary/swarm/orchestrator"
	"github.com/apiary-io/apiary/swarm/placer"
)

// ManagerConfig configures a manager.
type ManagerConfig struct {
	// ClusterSpec is the new cluster's settings.
	ClusterSpec api.ClusterSpec
	// Dispatcher tunes worker sessions (heartbeat period and grace).
	Dispatcher dispatcher.Config
	// Scheduler tunes placement (plugins, weights).
	Scheduler scheduler.Config
	// Proposer replicates the store; nil keeps it in this process alone.
	Proposer store.Proposer
	Logger   *slog.Logger
}

// DefaultManagerConfig returns Swarm's defaults with adaptive heartbeats.
func DefaultManagerConfig() ManagerConfig {
	return ManagerConfig{
		ClusterSpec: api.DefaultClusterSpec(),
		Dispatcher:  dispatcher.DefaultConfig(),
		Scheduler:   scheduler.DefaultConfig(),
	}
}

// Manager holds the desired state and runs the control loop over it.
type Manager struct {
	cfg        ManagerConfig
	store      *store.MemoryStore
	control    *controlapi.Server
	dispatcher *dispatcher.Dispatcher
	log        *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup

	serversMu sync.Mutex
	servers   []*grpc.Server
	stopped   bool
	errMu     sync.Mutex
	err       error
}

// StartManager initialises a new cluster and starts its control loop:
// orchestrator, allocator, placer (scheduler) and dispatcher.
func StartManager(ctx context.Context, cfg ManagerConfig) (*Manager, error) {
	if err := cfg.ClusterSpec.Validate(); err != nil {
		return nil, fmt.Errorf("start manager: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg.Dispatcher.Logger = log
	s := store.NewMemoryStore(cfg.Proposer)
	err := s.UpdateContext(ctx, func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{ID: api.NewID(), Spec: cfg.ClusterSpec.Copy()})
	})
	if err != nil {
		return nil, fmt.Errorf("start manager: create cluster: %w", err)
	}
	m := &Manager{
		cfg:        cfg,
		store:      s,
		control:    controlapi.New(s),
		dispatcher: dispatcher.New(s, cfg.Dispatcher),
		log:        log,
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	loops := []struct {
		name string
		run  func(context.Context) error
	}{
		{"dispatcher", m.dispatcher.Run},
		{"orchestrator", orchestrator.New(s, log).Run},
		{"allocator", allocator.New(s, log).Run},
		{"placer", placer.New(s, scheduler.New(cfg.Scheduler), log).Run},
	}
	for _, l := range loops {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := l.run(runCtx); err != nil && runCtx.Err() == nil {
				m.fail(fmt.Errorf("%s: %w", l.name, err))
			}
		}()
	}
	// Workers may register as soon as this returns.
	select {
	case <-m.dispatcher.Started():
	case <-ctx.Done():
		m.Stop()
		return nil, fmt.Errorf("start manager: %w", ctx.Err())
	}
	log.Info("manager started")
	return m, nil
}

func (m *Manager) fail(err error) {
	m.log.Error("manager loop failed", "err", err)
	m.errMu.Lock()
	if m.err == nil {
		m.err = err
	}
	m.errMu.Unlock()
}

// Err reports the first failure of a manager loop, or nil.
func (m *Manager) Err() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.err
}

// Stop ends the control loop and waits for it.
func (m *Manager) Stop() {
	m.serversMu.Lock()
	m.stopped = true
	servers := m.servers
	m.servers = nil
	m.serversMu.Unlock()
	for _, s := range servers {
		s.Stop()
	}
	m.cancel()
	m.wg.Wait()
	m.store.Close()
}

// Store returns the manager's store, for reads and for embedding programs
// that watch it.
func (m *Manager) Store() *store.MemoryStore { return m.store }

// Client returns a client of this manager's control API.
func (m *Manager) Client() *Client { return &Client{api: m.control} }

// Dispatcher returns the worker-facing side of this manager, for workers in
// the same process.
func (m *Manager) Dispatcher() agent.Dispatcher { return m.dispatcher }
