package agent

import (
	"context"
	"sync"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// reporter sends task status reports to the manager, the latest per task,
// and keeps each one until the manager acknowledged it, so that reports made
// while no session was open (or lost with a failed manager) are sent again.
type reporter struct {
	a       *Agent
	mu      sync.Mutex
	pending map[string]api.TaskStatus
	nodeID  string
	session string
	signal  chan struct{}
}

func newReporter(a *Agent) *reporter {
	return &reporter{a: a, pending: map[string]api.TaskStatus{}, signal: make(chan struct{}, 1)}
}

func (p *reporter) poke() {
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (p *reporter) report(taskID string, st api.TaskStatus) {
	p.mu.Lock()
	p.pending[taskID] = st
	p.mu.Unlock()
	p.poke()
}

func (p *reporter) forget(taskID string) {
	p.mu.Lock()
	delete(p.pending, taskID)
	p.mu.Unlock()
}

func (p *reporter) setSession(nodeID, session string) {
	p.mu.Lock()
	p.nodeID, p.session = nodeID, session
	p.mu.Unlock()
	p.poke()
}

const maxReportBatch = 500

// The dispatcher refuses a request of more than session.MaxStatusUpdates
// reports: this fails to compile if maxReportBatch grows past it.
var _ [session.MaxStatusUpdates - maxReportBatch]struct{}

func (p *reporter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.signal:
		}
		for {
			p.mu.Lock()
			req := &session.UpdateTaskStatusRequest{NodeID: p.nodeID, SessionID: p.session}
			for id, st := range p.pending {
				if len(req.Updates) == maxReportBatch {
					break
				}
				req.Updates = append(req.Updates, session.TaskStatusUpdate{TaskID: id, Status: st})
			}
			p.mu.Unlock()
			if req.SessionID == "" || len(req.Updates) == 0 {
				break
			}
			uctx, cancel := context.WithTimeout(ctx, rpcTimeout)
			err := p.a.cfg.Dispatcher.UpdateTaskStatus(uctx, req)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				p.a.log.Debug("status report failed; will resend", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
			p.mu.Lock()
			for _, u := range req.Updates {
				if cur, ok := p.pending[u.TaskID]; ok && cur.State == u.Status.State && cur.Timestamp.Equal(u.Status.Timestamp) {
					delete(p.pending, u.TaskID)
				}
			}
			p.mu.Unlock()
		}
	}
}
