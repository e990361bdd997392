package swarm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
	"github.com/apiary-io/apiary/swarm/orchestrator"
)

// Client drives a cluster: services, tasks and nodes. Every write is
// validated first, and bad input changes nothing.
type Client struct {
	api controlapi.API
}

// NewClient returns a client of a control API: a manager in this process
// (Manager.Client is shorter) or a remote one (Dial).
func NewClient(c controlapi.API) *Client { return &Client{api: c} }

// TaskFilter narrows ListTasks.
type TaskFilter = controlapi.TaskFilter

// CreateService creates a service from spec (Swarm's defaults fill what is
// unset) and returns it.
func (c *Client) CreateService(ctx context.Context, spec api.ServiceSpec) (*api.Service, error) {
	return c.api.CreateService(ctx, spec)
}

// GetService returns a service by ID, name or unique ID prefix.
func (c *Client) GetService(ctx context.Context, ref string) (*api.Service, error) {
	return c.api.GetService(ctx, ref)
}

// UpdateService replaces a service's spec, rolling its tasks out per the
// update config. version is the Meta.Version the spec was read at; a
// concurrent change makes it fail with a conflict (errors.Is store.ErrConflict).
func (c *Client) UpdateService(ctx context.Context, ref string, version uint64, spec api.ServiceSpec) (*api.Service, error) {
	return c.api.UpdateService(ctx, ref, version, spec)
}

// RollbackService returns a service to its previous spec.
func (c *Client) RollbackService(ctx context.Context, ref string) (*api.Service, error) {
	return c.api.RollbackService(ctx, ref)
}

// ScaleService sets a replicated service's replica count.
func (c *Client) ScaleService(ctx context.Context, ref string, replicas int64) (*api.Service, error) {
	return c.api.ScaleService(ctx, ref, replicas)
}

// RemoveService deletes a service; its tasks are shut down.
func (c *Client) RemoveService(ctx context.Context, ref string) error {
	return c.api.RemoveService(ctx, ref)
}

// ListServices returns every service by name.
func (c *Client) ListServices(ctx context.Context) ([]*api.Service, error) {
	return c.api.ListServices(ctx)
}

// ListTasks returns tasks matching f.
func (c *Client) ListTasks(ctx context.Context, f TaskFilter) ([]*api.Task, error) {
	return c.api.ListTasks(ctx, f)
}

// ListNodes returns every node by hostname.
func (c *Client) ListNodes(ctx context.Context) ([]*api.Node, error) {
	return c.api.ListNodes(ctx)
}

// GetNode returns a node by ID, hostname or unique ID prefix.
func (c *Client) GetNode(ctx context.Context, ref string) (*api.Node, error) {
	return c.api.GetNode(ctx, ref)
}

// UpdateNode replaces a node's spec (availability, labels).
func (c *Client) UpdateNode(ctx context.Context, ref string, version uint64, spec api.NodeSpec) (*api.Node, error) {
	return c.api.UpdateNode(ctx, ref, version, spec)
}

// EditNode changes a node's spec with edit, from the node as it is now: a
// node's record also changes when its status does, so a write that meets
// a newer version reads the node again and applies edit again (edit must
// depend on the spec alone). Errors from edit are returned as they are.
func (c *Client) EditNode(ctx context.Context, ref string, edit func(*api.NodeSpec) error) (*api.Node, error) {
	for attempt := 0; ; attempt++ {
		n, err := c.api.GetNode(ctx, ref)
		if err != nil {
			return nil, err
		}
		spec := n.Spec.Copy()
		if err := edit(&spec); err != nil {
			return nil, err
		}
		out, err := c.api.UpdateNode(ctx, n.ID, n.Meta.Version, spec)
		if !errors.Is(err, store.ErrConflict) || attempt == 9 {
			return out, err
		}
	}
}

// RemoveNode removes a node that is down (or any node, with force).
func (c *Client) RemoveNode(ctx context.Context, ref string, force bool) error {
	return c.api.RemoveNode(ctx, ref, force)
}

// ServiceProgress counts a service's tasks (running, desired, up to date).
func (c *Client) ServiceProgress(ctx context.Context, ref string) (orchestrator.Progress, error) {
	svc, tasks, nodes, err := c.serviceState(ctx, ref)
	if err != nil {
		return orchestrator.Progress{}, err
	}
	return orchestrator.Measure(svc, tasks, nodes), nil
}

func (c *Client) serviceState(ctx context.Context, ref string) (*api.Service, []*api.Task, []*api.Node, error) {
	svc, err := c.api.GetService(ctx, ref)
	if err != nil {
		return nil, nil, nil, err
	}
	tasks, err := c.api.ListTasks(ctx, TaskFilter{Service: svc.ID})
	if err != nil {
		return nil, nil, nil, err
	}
	var nodes []*api.Node
	if svc.Spec.Mode.IsGlobal() {
		if nodes, err = c.api.ListNodes(ctx); err != nil {
			return nil, nil, nil, err
		}
	}
	return svc, tasks, nodes, nil
}

// convergePoll is how often WaitConverged looks.
const convergePoll = 50 * time.Millisecond

// WaitConverged waits until the service's actual state matches its desired
// state (see orchestrator.Converged) or ctx ends; then the error says what
// was still missing.
func (c *Client) WaitConverged(ctx context.Context, ref string) error {
	t := time.NewTicker(convergePoll)
	defer t.Stop()
	for {
		svc, tasks, nodes, err := c.serviceState(ctx, ref)
		if err != nil {
			return fmt.Errorf("wait for service %q: %w", ref, err)
		}
		ok, why := orchestrator.Converged(svc, tasks, nodes)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for service %q: %w: %s", ref, ctx.Err(), why)
		case <-t.C:
		}
	}
}

// GetCluster returns the cluster object: its settings and join tokens.
func (c *Client) GetCluster(ctx context.Context) (*api.Cluster, error) {
	return c.api.GetCluster(ctx)
}

// RotateJoinToken replaces the worker or manager join token and returns the
// new one; the old one stops working at once.
func (c *Client) RotateJoinToken(ctx context.Context, role string) (string, error) {
	return c.api.RotateJoinToken(ctx, role)
}

// LogsRequest selects a service's output.
type LogsRequest = controlapi.LogsRequest

// ServiceLogs streams the output of a service's tasks, line by line, until
// it ends (io.EOF) or, with Follow, until ctx ends.
func (c *Client) ServiceLogs(ctx context.Context, req LogsRequest) (controlapi.LogStream, error) {
	return c.api.ServiceLogs(ctx, req)
}

// RotateRootCA starts replacing the cluster's root CA (see
// controlapi.Server.RotateRootCA).
func (c *Client) RotateRootCA(ctx context.Context) (*controlapi.RootRotation, error) {
	return c.api.RotateRootCA(ctx)
}

// RootCAStatus reports the root rotation in progress, if any.
func (c *Client) RootCAStatus(ctx context.Context) (*controlapi.RootRotation, error) {
	return c.api.RootCAStatus(ctx)
}
