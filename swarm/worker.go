package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
)

// WorkerConfig configures a worker node.
type WorkerConfig struct {
	// Manager is the connection to the managers (Manager.Dispatcher() in
	// the same process).
	Manager agent.Dispatcher
	// Executor runs the node's tasks.
	Executor executor.Executor
	// NodeID resumes a node that joined before; empty joins a new one.
	NodeID string
	// Addr is the node's address, for display.
	Addr   string
	Logger *slog.Logger
	// Host data path (agent.Config): the address tasks bind, the DNS
	// server they are given, the range of their host ports, and who is
	// told of the tasks the worker runs.
	HostAddr      string
	DNSAddr       string
	HostPortRange agent.PortRange
	OnTasks       func([]*api.Task)
	// OnGossipKeys is told of the cluster's gossip keys, and the gossip
	// fields find peers to join (agent.Config).
	OnGossipKeys    func(agent.GossipKeys)
	GossipAddr      string
	WantGossipPeers func() bool
	OnGossipPeers   func([]string)
}

// Worker is a node that runs tasks.
type Worker struct {
	agent  *agent.Agent
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

// StartWorker joins (or rejoins) the cluster and starts running assigned
// tasks. It returns once the node is registered.
func StartWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	a, err := agent.New(agent.Config{
		Dispatcher: cfg.Manager, Executor: cfg.Executor, NodeID: cfg.NodeID, Addr: cfg.Addr, Logger: cfg.Logger,
		HostAddr: cfg.HostAddr, DNSAddr: cfg.DNSAddr, HostPortRange: cfg.HostPortRange, OnTasks: cfg.OnTasks, OnGossipKeys: cfg.OnGossipKeys,
		GossipAddr: cfg.GossipAddr, WantGossipPeers: cfg.WantGossipPeers, OnGossipPeers: cfg.OnGossipPeers,
	})
	if err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	w := &Worker{agent: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.err = a.Run(runCtx)
	}()
	select {
	case <-a.Ready():
		return w, nil
	case <-w.done:
		cancel()
		return nil, fmt.Errorf("start worker: %w", w.err)
	case <-ctx.Done():
		cancel()
		<-w.done
		return nil, fmt.Errorf("start worker: %w", ctx.Err())
	}
}

// NodeID returns the node's ID in the cluster.
func (w *Worker) NodeID() string { return w.agent.NodeID() }

// HeldDependencies returns the IDs of the secrets and configs the worker's
// agent holds in memory now (agent.Agent.HeldDependencies).
func (w *Worker) HeldDependencies() (secrets, configs []string) { return w.agent.HeldDependencies() }

// Stop disconnects the node from the cluster and leaves its tasks running,
// as a daemon restart does.
func (w *Worker) Stop() {
	w.once.Do(func() {
		w.cancel()
		<-w.done
	})
}

// Kill disconnects the node and kills its tasks, as if its machine died.
// The managers notice the silence after the heartbeat grace period and
// reschedule the tasks.
func (w *Worker) Kill(ctx context.Context) error {
	w.Stop()
	if err := w.agent.ShutdownTasks(ctx); err != nil {
		return fmt.Errorf("kill worker %s: %w", w.NodeID(), err)
	}
	return nil
}

// Done is closed once the worker stopped: Stop, or on its own (Err).
func (w *Worker) Done() <-chan struct{} { return w.done }

// Err returns why the worker stopped on its own (the node was removed), or nil.
func (w *Worker) Err() error {
	select {
	case <-w.done:
		if w.err != nil && !errors.Is(w.err, context.Canceled) {
			return w.err
		}
	default:
	}
	return nil
}

// Logs returns the output of one of this node's tasks.
func (w *Worker) Logs(ctx context.Context, taskID string, opts executor.LogOptions) (io.ReadCloser, error) {
	return w.agent.Logs(ctx, taskID, opts)
}
