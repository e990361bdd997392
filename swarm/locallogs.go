package swarm

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// localLogs is controlapi.LogSource over workers in this process.
type localLogs struct {
	mu      sync.Mutex
	workers []*Worker
}

func (l *localLogs) TaskLogs(ctx context.Context, t *api.Task, opts executor.LogOptions) (io.ReadCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.workers {
		if w.NodeID() == t.NodeID {
			return w.Logs(ctx, t.ID, opts)
		}
	}
	if len(l.workers) == 0 {
		return nil, fmt.Errorf("node %s: %w (Manager.ServeLogsFrom gives a manager its workers in this process)", t.NodeID, control.ErrNoLogSource)
	}
	return nil, fmt.Errorf("node %s is not a worker of this process", t.NodeID)
}

// ServeLogsFrom lets the control API (ServiceLogs, `apiaryctl service
// logs`) read task output from workers running in this process. Nodes of a
// networked cluster (swarm.Node) are reached over the network instead.
func (m *Manager) ServeLogsFrom(workers ...*Worker) {
	m.localLogs.mu.Lock()
	m.localLogs.workers = append(m.localLogs.workers, workers...)
	m.localLogs.mu.Unlock()
}
