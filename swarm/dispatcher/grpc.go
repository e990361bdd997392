package dispatcher

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/apiary-io/apiary/pki"

	"github.com/apiary-io/apiary/swarm/rpc"
)

// ServiceName is the dispatcher's gRPC service.
const ServiceName = "apiary.Dispatcher"

func init() {
	rpc.RegisterError("SESSION_INVALID", ErrSessionInvalid, codes.FailedPrecondition)
	rpc.RegisterError("DISPATCHER_NOT_RUNNING", ErrNotRunning, codes.Unavailable)
	rpc.RegisterError("DISPATCHER_BAD_REQUEST", ErrBadRequest, codes.InvalidArgument)
}

// API is the worker-facing contract: what Dispatcher serves and what a
// worker's agent calls.
type API interface {
	Register(ctx context.Context, req *RegisterRequest) (*RegisterResponse, error)
	Heartbeat(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error)
	Assignments(ctx context.Context, req *AssignmentsRequest) (AssignmentStream, error)
	UpdateTaskStatus(ctx context.Context, req *UpdateTaskStatusRequest) error
}

// ManagerLister is served by every manager, leading or not: a worker whose
// known managers all refuse its session (none of them leads any more) asks
// them which managers exist now. Dispatcher and Client implement it.
type ManagerLister interface {
	Managers(ctx context.Context) ([]string, error)
}

// ManagersResponse lists the managers' addresses, the leader first.
type ManagersResponse struct {
	Managers []string `json:"Managers"`
}

// Empty is the response of calls that return nothing.
type Empty struct{}

// Serve registers impl as the dispatcher service of s, for a server whose
// calls the pki Authorizer authorized: each call must carry the identity
// of the caller's verified certificate, which the dispatcher binds the
// call to (a call without one is refused).
func Serve(s grpc.ServiceRegistrar, impl API) {
	serve(s, impl, true)
}

// ServeInsecure registers impl on a server without authentication (a
// plaintext listener on a trusted network, tests): callers are trusted to
// name their node, and an empty NodeID joins a new node, as in-process.
func ServeInsecure(s grpc.ServiceRegistrar, impl API) {
	serve(s, impl, false)
}

func serve(s grpc.ServiceRegistrar, impl API, authenticated bool) {
	// bound checks, on an authenticated server, that the authorizer put
	// the caller's identity in ctx: the dispatcher trusts a call without
	// one to name its node, as it trusts its own process.
	bound := func(ctx context.Context) error {
		if _, ok := pki.IdentityFromContext(ctx); authenticated && !ok {
			return status.Error(codes.Unauthenticated, "dispatcher: the call carries no verified node identity")
		}
		return nil
	}
	desc := rpc.Service(ServiceName,
		[]rpc.Method{
			rpc.Unary("Register", func(ctx context.Context, req *RegisterRequest) (*RegisterResponse, error) {
				if err := bound(ctx); err != nil {
					return nil, err
				}
				return impl.Register(ctx, req)
			}),
			rpc.Unary("Heartbeat", func(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error) {
				if err := bound(ctx); err != nil {
					return nil, err
				}
				return impl.Heartbeat(ctx, req)
			}),
			rpc.Unary("UpdateTaskStatus", func(ctx context.Context, req *UpdateTaskStatusRequest) (*Empty, error) {
				if err := bound(ctx); err != nil {
					return nil, err
				}
				return &Empty{}, impl.UpdateTaskStatus(ctx, req)
			}),
			rpc.Unary("Managers", func(ctx context.Context, _ *Empty) (*ManagersResponse, error) {
				l, ok := impl.(ManagerLister)
				if !ok {
					return nil, ErrNotRunning
				}
				m, err := l.Managers(ctx)
				return &ManagersResponse{Managers: m}, err
			}),
		},
		rpc.ServerStream("Assignments", func(ctx context.Context, req *AssignmentsRequest, send func(*AssignmentsMessage) error) error {
			if err := bound(ctx); err != nil {
				return err
			}
			st, err := impl.Assignments(ctx, req)
			if err != nil {
				return err
			}
			for {
				m, err := st.Recv()
				if err != nil {
					return err
				}
				if err := send(m); err != nil {
					return err
				}
			}
		}),
	)
	s.RegisterService(&desc, nil)
}

// Client calls a remote dispatcher; it implements API (and so
// agent.Dispatcher).
type Client struct {
	conn grpc.ClientConnInterface
}

// NewClient returns a client over conn (dialled with rpc.DialOptions).
func NewClient(conn grpc.ClientConnInterface) *Client { return &Client{conn: conn} }

// Register implements API.
func (c *Client) Register(ctx context.Context, req *RegisterRequest) (*RegisterResponse, error) {
	return rpc.Call[RegisterResponse](ctx, c.conn, ServiceName, "Register", req)
}

// Heartbeat implements API.
func (c *Client) Heartbeat(ctx context.Context, req *HeartbeatRequest) (*HeartbeatResponse, error) {
	return rpc.Call[HeartbeatResponse](ctx, c.conn, ServiceName, "Heartbeat", req)
}

// UpdateTaskStatus implements API.
func (c *Client) UpdateTaskStatus(ctx context.Context, req *UpdateTaskStatusRequest) error {
	_, err := rpc.Call[Empty](ctx, c.conn, ServiceName, "UpdateTaskStatus", req)
	return err
}

// Managers implements ManagerLister.
func (c *Client) Managers(ctx context.Context) ([]string, error) {
	r, err := rpc.Call[ManagersResponse](ctx, c.conn, ServiceName, "Managers", &Empty{})
	if err != nil {
		return nil, err
	}
	return r.Managers, nil
}

// Assignments implements API.
func (c *Client) Assignments(ctx context.Context, req *AssignmentsRequest) (AssignmentStream, error) {
	return rpc.OpenStream[AssignmentsMessage](ctx, c.conn, ServiceName, "Assignments", req)
}

var _ API = (*Dispatcher)(nil)
var _ API = (*Client)(nil)
var _ ManagerLister = (*Client)(nil)
var _ ManagerLister = (*Dispatcher)(nil)
