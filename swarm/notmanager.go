package swarm

import (
	"context"
	"fmt"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// notManager is the control API of a worker's socket: every call says
// where to go instead.
type notManager struct{}

var errNotManager = fmt.Errorf("%w: this node is a worker, not a manager: run this command against a manager's control socket", controlapi.ErrInvalidArgument)

func (notManager) CreateService(context.Context, api.ServiceSpec) (*api.Service, error) {
	return nil, errNotManager
}
func (notManager) GetService(context.Context, string) (*api.Service, error) {
	return nil, errNotManager
}
func (notManager) ListServices(context.Context) ([]*api.Service, error) { return nil, errNotManager }
func (notManager) UpdateService(context.Context, string, uint64, api.ServiceSpec) (*api.Service, error) {
	return nil, errNotManager
}
func (notManager) RollbackService(context.Context, string) (*api.Service, error) {
	return nil, errNotManager
}
func (notManager) ScaleService(context.Context, string, int64) (*api.Service, error) {
	return nil, errNotManager
}
func (notManager) RemoveService(context.Context, string) error        { return errNotManager }
func (notManager) GetTask(context.Context, string) (*api.Task, error) { return nil, errNotManager }
func (notManager) ListTasks(context.Context, controlapi.TaskFilter) ([]*api.Task, error) {
	return nil, errNotManager
}
func (notManager) GetNode(context.Context, string) (*api.Node, error) { return nil, errNotManager }
func (notManager) ListNodes(context.Context) ([]*api.Node, error)     { return nil, errNotManager }
func (notManager) UpdateNode(context.Context, string, uint64, api.NodeSpec) (*api.Node, error) {
	return nil, errNotManager
}
func (notManager) RemoveNode(context.Context, string, bool) error          { return errNotManager }
func (notManager) GetCluster(context.Context) (*api.Cluster, error)        { return nil, errNotManager }
func (notManager) RotateJoinToken(context.Context, string) (string, error) { return "", errNotManager }
func (notManager) JoinManager(context.Context, string, string, uint64) ([]controlapi.Peer, error) {
	return nil, errNotManager
}

func (notManager) ServiceLogs(context.Context, controlapi.LogsRequest) (controlapi.LogStream, error) {
	return nil, errNotManager
}

func (notManager) RotateRootCA(context.Context) (*controlapi.RootRotation, error) {
	return nil, errNotManager
}

func (notManager) RootCAStatus(context.Context) (*controlapi.RootRotation, error) {
	return nil, errNotManager
}
