package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/apiary-io/apiary/swarm/api/session"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// registerAttempt bounds one Register attempt, so that a manager that is
// cut off (no refusal, just silence) does not hold the worker back.
const registerAttempt = 3 * time.Second

// FailoverClient is a worker's connection to a group of managers: only the
// leader runs the dispatcher, so Register tries the managers in turn,
// starting with the one that last served, until one accepts; the session's
// other calls go to that manager. When it fails the agent registers again
// and the search goes on from there.
type FailoverClient struct {
	mu      sync.Mutex
	clients []session.API
	names   []string
	cur     int
	// Dial, when set, connects to managers the cluster names in
	// session.RegisterResponse.Managers that this client does not know yet.
	Dial func(addr string) (session.API, error)
	// OnManagers, when set, is told the manager list after each
	// registration (to persist it for a restart).
	OnManagers func(addrs []string)
	// Discover, when set, is asked for manager addresses before each
	// registration (a manager's own agent asks its raft membership, which
	// knows every manager even when the list it learnt is stale).
	Discover func() []string
	// OnHeartbeat, when set, sees every heartbeat response.
	OnHeartbeat func(*session.HeartbeatResponse)
}

// NewFailoverClient returns a client over the managers' dispatchers (gRPC
// clients, or in-process dispatchers in tests); names label them in errors.
func NewFailoverClient(managers []session.API, names []string) *FailoverClient {
	return &FailoverClient{clients: managers, names: names}
}

func (f *FailoverClient) current() session.API {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clients[f.cur]
}

// Known returns the managers' names (addresses) this client knows, the one
// that last served first.
func (f *FailoverClient) Known() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.names) == 0 {
		return nil
	}
	out := make([]string, 0, len(f.names))
	for i := range f.names {
		out = append(out, f.names[(f.cur+i)%len(f.names)])
	}
	return out
}

// Register implements session.API: the first manager that accepts wins.
func (f *FailoverClient) Register(ctx context.Context, req *session.RegisterRequest) (*session.RegisterResponse, error) {
	if f.Discover != nil {
		f.learn(f.Discover())
	}
	f.mu.Lock()
	start, clients := f.cur, slices.Clone(f.clients)
	f.mu.Unlock()
	var errs []error
	tried := map[int]bool{}
	for round := 0; round < 2; round++ {
		n := len(clients)
		for i := 0; i < n; i++ {
			idx := (start + i) % n
			if tried[idx] {
				continue
			}
			tried[idx] = true
			actx, cancel := context.WithTimeout(ctx, registerAttempt)
			resp, err := clients[idx].Register(actx, req)
			cancel()
			if err == nil {
				f.mu.Lock()
				f.cur = idx
				f.mu.Unlock()
				f.learn(resp.Managers)
				return resp, nil
			}
			if errors.Is(err, session.ErrNodeRemoved) || ctx.Err() != nil {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("manager %s: %w", f.name(idx), err))
		}
		// None of the managers this client knows leads: the managers
		// may have changed since it last heard (a node promoted, then
		// elected). Any manager can say which exist now.
		if !f.askManagers(ctx, clients) {
			break
		}
		f.mu.Lock()
		clients = slices.Clone(f.clients)
		f.mu.Unlock()
	}
	return nil, fmt.Errorf("no manager accepted the session: %w", errors.Join(errs...))
}

func (f *FailoverClient) name(idx int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if idx < len(f.names) {
		return f.names[idx]
	}
	return fmt.Sprint(idx)
}

// askManagers asks the managers for the current manager list and reports
// whether it named any this client did not know.
func (f *FailoverClient) askManagers(ctx context.Context, clients []session.API) bool {
	f.mu.Lock()
	before := len(f.clients)
	f.mu.Unlock()
	for _, c := range clients {
		actx, cancel := context.WithTimeout(ctx, registerAttempt)
		addrs, err := c.Managers(actx)
		cancel()
		if err == nil {
			f.learn(addrs)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.clients) > before
}

// Heartbeat implements session.API.
func (f *FailoverClient) Heartbeat(ctx context.Context, req *session.HeartbeatRequest) (*session.HeartbeatResponse, error) {
	resp, err := f.current().Heartbeat(ctx, req)
	if err == nil {
		f.learn(resp.Managers)
		if f.OnHeartbeat != nil {
			f.OnHeartbeat(resp)
		}
	}
	return resp, err
}

// Managers implements session.API: the current manager's answer.
func (f *FailoverClient) Managers(ctx context.Context) ([]string, error) {
	return f.current().Managers(ctx)
}

// Assignments implements session.API.
func (f *FailoverClient) Assignments(ctx context.Context, req *session.AssignmentsRequest) (rpc.Stream[session.AssignmentsMessage], error) {
	return f.current().Assignments(ctx, req)
}

// UpdateTaskStatus implements session.API.
func (f *FailoverClient) UpdateTaskStatus(ctx context.Context, req *session.UpdateTaskStatusRequest) error {
	return f.current().UpdateTaskStatus(ctx, req)
}

var _ session.API = (*FailoverClient)(nil)

// learn adds the managers it did not know.
func (f *FailoverClient) learn(addrs []string) {
	if len(addrs) == 0 {
		return
	}
	f.mu.Lock()
	known := map[string]bool{}
	for _, n := range f.names {
		known[n] = true
	}
	dial := f.Dial
	f.mu.Unlock()
	added := false
	for _, a := range addrs {
		if known[a] || dial == nil {
			continue
		}
		c, err := dial(a)
		if err != nil {
			continue
		}
		f.mu.Lock()
		f.clients = append(f.clients, c)
		f.names = append(f.names, a)
		f.mu.Unlock()
		added = true
		known[a] = true
	}
	if f.OnManagers != nil && added {
		f.mu.Lock()
		all := append([]string(nil), f.names...)
		f.mu.Unlock()
		f.OnManagers(all)
	}
}
