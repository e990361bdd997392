package controlapi

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// ServiceName is the control API's gRPC service.
const ServiceName = "apiary.Control"

func init() {
	rpc.RegisterError("INVALID_ARGUMENT", ErrInvalidArgument, codes.InvalidArgument)
	rpc.RegisterError("NOT_FOUND", store.ErrNotFound, codes.NotFound)
	rpc.RegisterError("CONFLICT", store.ErrConflict, codes.Aborted)
	rpc.RegisterError("NAME_CONFLICT", store.ErrNameConflict, codes.AlreadyExists)
	rpc.RegisterError("EXISTS", store.ErrExist, codes.AlreadyExists)
	rpc.RegisterError("NO_MEMBERSHIP", ErrNoMembership, codes.FailedPrecondition)
	rpc.RegisterError("NO_LOG_SOURCE", ErrNoLogSource, codes.FailedPrecondition)
	rpc.RegisterError("NO_CA", ErrNoCA, codes.FailedPrecondition)
}

// API is the control API: what Server implements locally and Client over
// gRPC.
type API interface {
	CreateService(ctx context.Context, spec api.ServiceSpec) (*api.Service, error)
	GetService(ctx context.Context, ref string) (*api.Service, error)
	ListServices(ctx context.Context) ([]*api.Service, error)
	UpdateService(ctx context.Context, ref string, version uint64, spec api.ServiceSpec) (*api.Service, error)
	RollbackService(ctx context.Context, ref string) (*api.Service, error)
	ScaleService(ctx context.Context, ref string, replicas int64) (*api.Service, error)
	RemoveService(ctx context.Context, ref string) error
	GetTask(ctx context.Context, ref string) (*api.Task, error)
	ListTasks(ctx context.Context, f TaskFilter) ([]*api.Task, error)
	GetNode(ctx context.Context, ref string) (*api.Node, error)
	ListNodes(ctx context.Context) ([]*api.Node, error)
	UpdateNode(ctx context.Context, ref string, version uint64, spec api.NodeSpec) (*api.Node, error)
	RemoveNode(ctx context.Context, ref string, force bool) error
	GetCluster(ctx context.Context) (*api.Cluster, error)
	RotateJoinToken(ctx context.Context, role string) (string, error)
	JoinManager(ctx context.Context, nodeID, addr string, raftID uint64) ([]Peer, error)
	ServiceLogs(ctx context.Context, req LogsRequest) (LogStream, error)
	RotateRootCA(ctx context.Context) (*RootRotation, error)
	RootCAStatus(ctx context.Context) (*RootRotation, error)
}

var (
	_ API = (*Server)(nil)
	_ API = (*Client)(nil)
)

// Wire messages.
type (
	// Ref names an object by ID, name or unique ID prefix.
	Ref struct {
		Ref string `json:"Ref"`
	}
	// Empty is a message without content.
	Empty struct{}
	// ServiceSpecRequest carries a spec to create.
	ServiceSpecRequest struct {
		Spec api.ServiceSpec `json:"Spec"`
	}
	// UpdateServiceRequest replaces a service's spec read at Version.
	UpdateServiceRequest struct {
		Ref     string          `json:"Ref"`
		Version uint64          `json:"Version"`
		Spec    api.ServiceSpec `json:"Spec"`
	}
	// ScaleRequest sets a replica count.
	ScaleRequest struct {
		Ref      string `json:"Ref"`
		Replicas int64  `json:"Replicas"`
	}
	// UpdateNodeRequest replaces a node's spec read at Version.
	UpdateNodeRequest struct {
		Ref     string       `json:"Ref"`
		Version uint64       `json:"Version"`
		Spec    api.NodeSpec `json:"Spec"`
	}
	// RemoveNodeRequest removes a node.
	RemoveNodeRequest struct {
		Ref   string `json:"Ref"`
		Force bool   `json:"Force"`
	}
	// Services lists services.
	Services struct {
		Services []*api.Service `json:"Services"`
	}
	// Tasks lists tasks.
	Tasks struct {
		Tasks []*api.Task `json:"Tasks"`
	}
	// RoleRequest names a node role.
	RoleRequest struct {
		Role string `json:"Role"`
	}
	// Token is a join token.
	Token struct {
		Token string `json:"Token"`
	}
	// JoinManagerRequest admits a manager.
	JoinManagerRequest struct {
		NodeID string `json:"NodeID"`
		Addr   string `json:"Addr"`
		// RaftID is the member ID the node runs its raft member with (a
		// node promoted again after a demotion takes a new one: raft
		// refuses a removed ID for ever).
		RaftID uint64 `json:"RaftID,omitempty"`
	}
	// Members lists the managers' raft members.
	Members struct {
		Peers []Peer `json:"Peers"`
	}
	// Nodes lists nodes.
	Nodes struct {
		Nodes []*api.Node `json:"Nodes"`
	}
)

// Serve registers impl as the control service of s.
func Serve(s grpc.ServiceRegistrar, impl API) {
	desc := rpc.Service(ServiceName, []rpc.Method{
		rpc.Unary("CreateService", func(ctx context.Context, r *ServiceSpecRequest) (*api.Service, error) {
			return impl.CreateService(ctx, r.Spec)
		}),
		rpc.Unary("GetService", func(ctx context.Context, r *Ref) (*api.Service, error) { return impl.GetService(ctx, r.Ref) }),
		rpc.Unary("ListServices", func(ctx context.Context, _ *Empty) (*Services, error) {
			l, err := impl.ListServices(ctx)
			return &Services{l}, err
		}),
		rpc.Unary("UpdateService", func(ctx context.Context, r *UpdateServiceRequest) (*api.Service, error) {
			return impl.UpdateService(ctx, r.Ref, r.Version, r.Spec)
		}),
		rpc.Unary("RollbackService", func(ctx context.Context, r *Ref) (*api.Service, error) { return impl.RollbackService(ctx, r.Ref) }),
		rpc.Unary("ScaleService", func(ctx context.Context, r *ScaleRequest) (*api.Service, error) {
			return impl.ScaleService(ctx, r.Ref, r.Replicas)
		}),
		rpc.Unary("RemoveService", func(ctx context.Context, r *Ref) (*Empty, error) { return &Empty{}, impl.RemoveService(ctx, r.Ref) }),
		rpc.Unary("GetTask", func(ctx context.Context, r *Ref) (*api.Task, error) { return impl.GetTask(ctx, r.Ref) }),
		rpc.Unary("ListTasks", func(ctx context.Context, f *TaskFilter) (*Tasks, error) {
			l, err := impl.ListTasks(ctx, *f)
			return &Tasks{l}, err
		}),
		rpc.Unary("GetNode", func(ctx context.Context, r *Ref) (*api.Node, error) { return impl.GetNode(ctx, r.Ref) }),
		rpc.Unary("ListNodes", func(ctx context.Context, _ *Empty) (*Nodes, error) {
			l, err := impl.ListNodes(ctx)
			return &Nodes{l}, err
		}),
		rpc.Unary("UpdateNode", func(ctx context.Context, r *UpdateNodeRequest) (*api.Node, error) {
			return impl.UpdateNode(ctx, r.Ref, r.Version, r.Spec)
		}),
		rpc.Unary("RemoveNode", func(ctx context.Context, r *RemoveNodeRequest) (*Empty, error) {
			return &Empty{}, impl.RemoveNode(ctx, r.Ref, r.Force)
		}),
		rpc.Unary("GetCluster", func(ctx context.Context, _ *Empty) (*api.Cluster, error) { return impl.GetCluster(ctx) }),
		rpc.Unary("RotateJoinToken", func(ctx context.Context, r *RoleRequest) (*Token, error) {
			t, err := impl.RotateJoinToken(ctx, r.Role)
			return &Token{t}, err
		}),
		rpc.Unary("RotateRootCA", func(ctx context.Context, _ *Empty) (*RootRotation, error) { return impl.RotateRootCA(ctx) }),
		rpc.Unary("RootCAStatus", func(ctx context.Context, _ *Empty) (*RootRotation, error) { return impl.RootCAStatus(ctx) }),
		rpc.Unary("JoinManager", func(ctx context.Context, r *JoinManagerRequest) (*Members, error) {
			m, err := impl.JoinManager(ctx, r.NodeID, r.Addr, r.RaftID)
			return &Members{m}, err
		}),
	}, rpc.ServerStream("ServiceLogs", func(ctx context.Context, r *LogsRequest, send func(*LogLine) error) error {
		st, err := impl.ServiceLogs(ctx, *r)
		if err != nil {
			return err
		}
		for {
			l, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := send(l); err != nil {
				return err
			}
		}
	}))
	s.RegisterService(&desc, nil)
}

// ServiceLogs implements API.
func (c *Client) ServiceLogs(ctx context.Context, req LogsRequest) (LogStream, error) {
	st, err := rpc.OpenStream[LogLine](ctx, c.conn, ServiceName, "ServiceLogs", &req)
	if err != nil {
		return nil, err
	}
	return eofStream{st}, nil
}

// eofStream turns the end of a gRPC stream into io.EOF.
type eofStream struct{ s rpc.Stream[LogLine] }

func (e eofStream) Recv() (*LogLine, error) {
	l, err := e.s.Recv()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	return l, err
}

// Client calls a remote control API.
type Client struct {
	conn grpc.ClientConnInterface
}

// NewClient returns a client over conn (dialled with rpc.DialOptions).
func NewClient(conn grpc.ClientConnInterface) *Client { return &Client{conn: conn} }

func call[Resp any](ctx context.Context, c *Client, method string, req any) (*Resp, error) {
	return rpc.Call[Resp](ctx, c.conn, ServiceName, method, req)
}

// CreateService implements API.
func (c *Client) CreateService(ctx context.Context, spec api.ServiceSpec) (*api.Service, error) {
	return call[api.Service](ctx, c, "CreateService", &ServiceSpecRequest{spec})
}

// GetService implements API.
func (c *Client) GetService(ctx context.Context, ref string) (*api.Service, error) {
	return call[api.Service](ctx, c, "GetService", &Ref{ref})
}

// ListServices implements API.
func (c *Client) ListServices(ctx context.Context) ([]*api.Service, error) {
	r, err := call[Services](ctx, c, "ListServices", &Empty{})
	if err != nil {
		return nil, err
	}
	return r.Services, nil
}

// UpdateService implements API.
func (c *Client) UpdateService(ctx context.Context, ref string, version uint64, spec api.ServiceSpec) (*api.Service, error) {
	return call[api.Service](ctx, c, "UpdateService", &UpdateServiceRequest{ref, version, spec})
}

// RollbackService implements API.
func (c *Client) RollbackService(ctx context.Context, ref string) (*api.Service, error) {
	return call[api.Service](ctx, c, "RollbackService", &Ref{ref})
}

// ScaleService implements API.
func (c *Client) ScaleService(ctx context.Context, ref string, replicas int64) (*api.Service, error) {
	return call[api.Service](ctx, c, "ScaleService", &ScaleRequest{ref, replicas})
}

// RemoveService implements API.
func (c *Client) RemoveService(ctx context.Context, ref string) error {
	_, err := call[Empty](ctx, c, "RemoveService", &Ref{ref})
	return err
}

// GetTask implements API.
func (c *Client) GetTask(ctx context.Context, ref string) (*api.Task, error) {
	return call[api.Task](ctx, c, "GetTask", &Ref{ref})
}

// ListTasks implements API.
func (c *Client) ListTasks(ctx context.Context, f TaskFilter) ([]*api.Task, error) {
	r, err := call[Tasks](ctx, c, "ListTasks", &f)
	if err != nil {
		return nil, err
	}
	return r.Tasks, nil
}

// GetNode implements API.
func (c *Client) GetNode(ctx context.Context, ref string) (*api.Node, error) {
	return call[api.Node](ctx, c, "GetNode", &Ref{ref})
}

// ListNodes implements API.
func (c *Client) ListNodes(ctx context.Context) ([]*api.Node, error) {
	r, err := call[Nodes](ctx, c, "ListNodes", &Empty{})
	if err != nil {
		return nil, err
	}
	return r.Nodes, nil
}

// UpdateNode implements API.
func (c *Client) UpdateNode(ctx context.Context, ref string, version uint64, spec api.NodeSpec) (*api.Node, error) {
	return call[api.Node](ctx, c, "UpdateNode", &UpdateNodeRequest{ref, version, spec})
}

// RemoveNode implements API.
func (c *Client) RemoveNode(ctx context.Context, ref string, force bool) error {
	_, err := call[Empty](ctx, c, "RemoveNode", &RemoveNodeRequest{ref, force})
	return err
}

// GetCluster implements API.
func (c *Client) GetCluster(ctx context.Context) (*api.Cluster, error) {
	return call[api.Cluster](ctx, c, "GetCluster", &Empty{})
}

// RotateJoinToken implements API.
func (c *Client) RotateJoinToken(ctx context.Context, role string) (string, error) {
	r, err := call[Token](ctx, c, "RotateJoinToken", &RoleRequest{role})
	if err != nil {
		return "", err
	}
	return r.Token, nil
}

// JoinManager implements API.
func (c *Client) JoinManager(ctx context.Context, nodeID, addr string, raftID uint64) ([]Peer, error) {
	r, err := call[Members](ctx, c, "JoinManager", &JoinManagerRequest{nodeID, addr, raftID})
	if err != nil {
		return nil, err
	}
	return r.Peers, nil
}

// RotateRootCA implements API.
func (c *Client) RotateRootCA(ctx context.Context) (*RootRotation, error) {
	return call[RootRotation](ctx, c, "RotateRootCA", &Empty{})
}

// RootCAStatus implements API.
func (c *Client) RootCAStatus(ctx context.Context) (*RootRotation, error) {
	return call[RootRotation](ctx, c, "RootCAStatus", &Empty{})
}
