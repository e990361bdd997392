// Package client is the thin client of an Apiary cluster: the control API
// of a manager (swarm/api/control) over its control socket or in the same
// process, with the conveniences a program driving a cluster wants
// (waiting for convergence, editing a node's spec through conflicts,
// leaving). It links the contract and the RPC layer only, never the
// manager's implementation: apiaryctl is built on it.
package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// Client drives a cluster: every method of control.API, and the helpers
// below. Every write is validated by the manager first; bad input changes
// nothing and its error names the field.
type Client struct {
	control.API
	local control.Local
	conn  *grpc.ClientConn
}

// New returns a client of a control API in this process (a manager's).
func New(api control.API) *Client {
	return &Client{API: api, local: control.UnimplementedLocal{Err: errors.New("leave: this client is not connected to a node's control socket")}}
}

// MaxResponseSize bounds a response the client accepts: a listing of every
// task of a cluster at the validation bounds fits.
const MaxResponseSize = 512 << 20

// Dial connects to a node's control socket ("unix:///path/to/control.sock";
// control.SocketPath gives the path in a data dir) or to a manager serving
// the control API without TLS (Manager.ServeInsecure, "host:port"). The
// connection is plaintext: a socket's file permissions authenticate.
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A listing of a large cluster is large (100,000 tasks are ~70 MB):
		// the client trusts the manager it chose to talk to.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxResponseSize))}, rpc.DialOptions()...)
	conn, err := grpc.NewClient(target, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return &Client{API: control.NewAPIClient(conn), local: control.NewLocalClient(conn), conn: conn}, nil
}

// Close closes the connection of a dialled client.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Leave takes the node whose control socket this client dialled out of its
// cluster (see control.Local).
func (c *Client) Leave(ctx context.Context, force bool) error {
	return c.local.Leave(ctx, force)
}

// Unlock gives the locked manager whose control socket this client
// dialled the cluster's unlock key (control.ErrWrongUnlockKey if it does
// not open its data).
func (c *Client) Unlock(ctx context.Context, key string) error {
	return c.local.Unlock(ctx, key)
}

// NodeStatus says what the node whose control socket this client dialled
// is, and whether it is locked.
func (c *Client) NodeStatus(ctx context.Context) (*control.NodeStatus, error) {
	return c.local.Status(ctx)
}

// EditNode changes a node's spec with edit, from the node as it is now: a
// node's record also changes when its status does, so a write that meets
// a newer version reads the node again and applies edit again (edit must
// depend on the spec alone). Errors from edit are returned as they are.
func (c *Client) EditNode(ctx context.Context, ref string, edit func(*api.NodeSpec) error) (*api.Node, error) {
	var id string
	return readModifyWrite(
		func() (api.NodeSpec, uint64, error) {
			n, err := c.GetNode(ctx, ref)
			if err != nil {
				return api.NodeSpec{}, 0, err
			}
			id = n.ID
			return n.Spec.Copy(), n.Meta.Version, nil
		},
		edit,
		func(version uint64, spec api.NodeSpec) (*api.Node, error) {
			return c.UpdateNode(ctx, id, version, spec)
		})
}

// EditCluster changes the cluster's spec with edit, from the cluster as it
// is now: the cluster object also changes when the CA, the join tokens or
// the removed nodes do, so a write that meets a newer version reads the
// cluster again and applies edit again (edit must depend on the spec
// alone). Errors from edit are returned as they are.
func (c *Client) EditCluster(ctx context.Context, edit func(*api.ClusterSpec) error) (*api.Cluster, error) {
	return readModifyWrite(
		func() (api.ClusterSpec, uint64, error) {
			cl, err := c.GetCluster(ctx)
			if err != nil {
				return api.ClusterSpec{}, 0, err
			}
			return cl.Spec.Copy(), cl.Meta.Version, nil
		},
		edit,
		func(version uint64, spec api.ClusterSpec) (*api.Cluster, error) {
			return c.UpdateCluster(ctx, version, spec)
		})
}

// readModifyWrite reads a spec and its object's version, edits the spec
// and writes it at that version, from the start again (up to ten times)
// while the write meets a newer version.
func readModifyWrite[S any, O any](read func() (S, uint64, error), edit func(*S) error, write func(uint64, S) (O, error)) (O, error) {
	for attempt := 0; ; attempt++ {
		var zero O
		spec, version, err := read()
		if err != nil {
			return zero, err
		}
		if err := edit(&spec); err != nil {
			return zero, err
		}
		out, err := write(version, spec)
		if !errors.Is(err, api.ErrConflict) || attempt == 9 {
			return out, err
		}
	}
}

// convergePoll is how often WaitConverged looks.
const convergePoll = 50 * time.Millisecond

// WaitConverged waits until the service's actual state matches its desired
// state (control.Progress.Converged) or ctx ends; then the error says what
// was still missing.
func (c *Client) WaitConverged(ctx context.Context, ref string) error {
	t := time.NewTicker(convergePoll)
	defer t.Stop()
	for {
		p, err := c.ServiceProgress(ctx, ref)
		if err != nil {
			return fmt.Errorf("wait for service %q: %w", ref, err)
		}
		if p.Converged {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for service %q: %w: %s", ref, ctx.Err(), p.Waiting)
		case <-t.C:
		}
	}
}
