package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
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
	clients []API
	names   []string
	cur     int
	// Dial, when set, connects to managers the cluster names in
	// RegisterResponse.Managers that this client does not know yet.
	Dial func(addr string) (API, error)
	// OnManagers, when set, is told the manager list after each
	// registration (to persist it for a restart).
	OnManagers func(addrs []string)
	// Discover, when set, is asked for manager addresses before each
	// registration (a manager's own agent asks its raft membership, which
	// knows every manager even when the list it learnt is stale).
	Discover func() []string
	// OnHeartbeat, when set, sees every heartbeat response.
	OnHeartbeat func(*HeartbeatResponse)
}

// NewFailoverClient returns a client over the managers' dispatchers (gRPC
// clients, or in-process dispatchers in tests); names label them in errors.
func NewFailoverClient(managers []API, names []string) *FailoverClient {
	return &FailoverClient{clients: managers, names: names}
}

// DialFailover returns a failover client over gRPC connections.
func DialFailover(conns []grpc.ClientConnInterface, names []string) *FailoverClient {
	apis := make([]API, len(conns))
	for i, c := range conns {
		apis[i] = NewClient(c)
	}
	return NewFailoverClient(apis, names)
}

func (f *FailoverClient) current() API {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clients[f.cur]
}

// Register implements API: the first manager that accepts wins.
func (f *FailoverClient) Register(ctx context.Context, req *RegisterRequest) (*RegisterResponse, error) {
	if f.Discover != nil {
		f.learn(f.Discover())
	}
	f.mu.Lock()
	start, n := f.cur, len(f.clients)
	f.mu.Unlock()
	var errs []error
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		actx, cancel := context.WithTimeout(ctx, registerAttempt)
		resp, err := f.clients[idx].Register(actx, req)
		cancel()
		if err == nil {
			f.mu.Lock()
			f.cur = idx
			f.mu.Unlock()
			f.learn(resp.Managers)
			return resp, nil
		}
		if errors.Is(err, ErrNodeRemoved) || ctx.Err() != nil {
			return nil, err
		}
		name := fmt.Sprint(idx)
		if idx < len(f.names) {
			name = f.names[idx]
		}
		errs = append(errs, fmt.Errorf("manager %s: %w", name, err))
	}
	return nil, fmt.Errorf("no manager accepted the session: %w", errors.Join(errs...))
}

// Heartbeat implements API.
func (f *FailoverClient) Heartbeat(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error) {
	resp, err := f.current().Heartbeat(ctx, req)
	if err == nil {
		f.learn(resp.Managers)
		if f.OnHeartbeat != nil {
			f.OnHeartbeat(resp)
		}
	}
	return resp, err
}

// Assignments implements API.
func (f *FailoverClient) Assignments(ctx context.Context, req *AssignmentsRequest) (AssignmentStream, error) {
	return f.current().Assignments(ctx, req)
}

// UpdateTaskStatus implements API.
func (f *FailoverClient) UpdateTaskStatus(ctx context.Context, req *UpdateTaskStatusRequest) error {
	return f.current().UpdateTaskStatus(ctx, req)
}

var _ API = (*FailoverClient)(nil)

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
