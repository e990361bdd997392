// Package control is the contract of the user control API: what a client
// (apiaryctl, an embedding program, later the Docker API layer) may ask of
// a manager, its messages and its errors, with the gRPC glue generated from
// the interfaces (go generate). It holds no implementation: a manager
// serves it (swarm/controlapi), a client calls it (swarm/client), and
// neither side links the other. Adding a method is a line here and its
// implementation in swarm/controlapi; the client has it at once.
package control

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/rpc"
)

//go:generate go run github.com/apiary-io/apiary/internal/rpcgen -type API -service apiary.Control

// API is the control API of a manager. Every write is validated first, and
// bad input changes nothing (ErrInvalidArgument names the field); an
// update that carries an old version fails with api.ErrConflict.
type API interface {
	// CreateService creates a service from spec (Swarm's defaults fill
	// what is unset).
	CreateService(ctx context.Context, spec api.ServiceSpec) (*api.Service, error)
	// GetService returns a service by ID, name or unique ID prefix.
	GetService(ctx context.Context, ref string) (*api.Service, error)
	// ListServices returns every service with its task counts.
	ListServices(ctx context.Context) ([]*api.Service, error)
	// UpdateService replaces a service's spec, read at version.
	UpdateService(ctx context.Context, ref string, version uint64, spec api.ServiceSpec) (*api.Service, error)
	// RollbackService goes back to the service's previous spec.
	RollbackService(ctx context.Context, ref string) (*api.Service, error)
	// ScaleService sets a replicated service's replica count.
	ScaleService(ctx context.Context, ref string, replicas int64) (*api.Service, error)
	// RemoveService removes a service; its tasks stop.
	RemoveService(ctx context.Context, ref string) error
	// ServiceProgress says how far a service's actual state is from its
	// desired state.
	ServiceProgress(ctx context.Context, ref string) (*Progress, error)
	// PlanService says what writing spec would do, changing nothing: for
	// a new service (ref "") or an update of the service ref, the tasks
	// that would be created, replaced or removed and where the scheduler
	// would place each, or why it could not (a dry run; see ServicePlan).
	PlanService(ctx context.Context, ref string, spec api.ServiceSpec) (*ServicePlan, error)
	// GetTask returns a task by ID or unique ID prefix.
	GetTask(ctx context.Context, ref string) (*api.Task, error)
	// ListTasks returns the tasks that match filter, as `service ps` shows
	// them.
	ListTasks(ctx context.Context, filter TaskFilter) ([]*api.Task, error)
	// GetNode returns a node by ID, hostname or unique ID prefix.
	GetNode(ctx context.Context, ref string) (*api.Node, error)
	// ListNodes returns every node.
	ListNodes(ctx context.Context) ([]*api.Node, error)
	// UpdateNode replaces a node's spec, read at version.
	UpdateNode(ctx context.Context, ref string, version uint64, spec api.NodeSpec) (*api.Node, error)
	// RemoveNode removes a node that is down (any node, with force).
	RemoveNode(ctx context.Context, ref string, force bool) error
	// GetCluster returns the cluster object with its join tokens.
	GetCluster(ctx context.Context) (*api.Cluster, error)
	// UpdateCluster replaces the cluster's spec, read at version: the
	// cluster-wide settings (heartbeat period, certificate lifetime, task
	// history) take effect without a restart. Bounds: see
	// api.ClusterSpec.Validate; the name cannot change.
	UpdateCluster(ctx context.Context, version uint64, spec api.ClusterSpec) (*api.Cluster, error)
	// RotateJoinToken replaces the worker or manager join token.
	RotateJoinToken(ctx context.Context, role string) (string, error)
	// GetUnlockKey returns the cluster's unlock key (ErrNoUnlockKey when
	// autolock is off).
	GetUnlockKey(ctx context.Context) (string, error)
	// RotateUnlockKey replaces the unlock key and returns the new one:
	// every manager rewraps its data key with it as soon as it sees it;
	// a manager that was down meanwhile still opens with the key it had.
	RotateUnlockKey(ctx context.Context) (string, error)
	// ServiceLogs streams the output of a service's tasks, line by line,
	// until it ends (io.EOF) or, with Follow, until ctx ends.
	ServiceLogs(ctx context.Context, req LogsRequest) (rpc.Stream[LogLine], error)
	// RotateRootCA starts replacing the cluster's root CA.
	RotateRootCA(ctx context.Context) (*RootRotation, error)
	// RootCAStatus reports the root rotation in progress, if any.
	RootCAStatus(ctx context.Context) (*RootRotation, error)
	// IssueClientCertificate signs, under the cluster CA, a certificate
	// of the client role (pki.RoleClient) for the key of CSR (a PEM
	// certificate request, at most MaxCSRSize): a user's bundle for the
	// Docker API's TLS listener (apiaryctl swarm ca --client-bundle), or
	// that listener's own certificate with Hosts (its addresses and
	// hostname, at most pki.MaxCertificateHosts) as SANs. The certificate
	// names no node and reaches none of the cluster's gRPC services.
	IssueClientCertificate(ctx context.Context, csr []byte, hosts []string) (*ClientCertificate, error)
	// CreateNetwork creates a network (driver overlay when unset) with
	// its subnet: the spec's, refused when it overlaps another network's,
	// or the next free one of the cluster's address pool.
	CreateNetwork(ctx context.Context, spec api.NetworkSpec) (*api.Network, error)
	// GetNetwork returns a network by ID, name or unique ID prefix.
	GetNetwork(ctx context.Context, ref string) (*api.Network, error)
	// ListNetworks returns the networks that match filter, by name.
	ListNetworks(ctx context.Context, filter NetworkFilter) ([]*api.Network, error)
	// RemoveNetwork removes a network no service uses (ErrInUse names
	// those that do).
	RemoveNetwork(ctx context.Context, ref string) error
	// CreateSecret creates a secret (1 byte to api.MaxSecretSize of data,
	// a unique name). What it returns, like GetSecret and ListSecrets,
	// leaves the data out: it reaches only the nodes that run a task
	// using the secret.
	CreateSecret(ctx context.Context, spec api.SecretSpec) (*api.Secret, error)
	// GetSecret returns a secret, without its data, by ID, name (the
	// newest version), "name@version" or unique ID prefix.
	GetSecret(ctx context.Context, ref string) (*api.Secret, error)
	// ListSecrets returns the secrets that match filter, by name, without
	// their data.
	ListSecrets(ctx context.Context, filter ObjectFilter) ([]*api.Secret, error)
	// RemoveSecret removes a secret, with every version kept, that no
	// service's spec or previous spec uses (ErrInUse names those that
	// do); "name@version" removes that superseded version alone.
	RemoveSecret(ctx context.Context, ref string) error
	// UpdateSecret makes spec the secret's next version: a new object
	// (its own ID, Version one more; spec's name empty or the same,
	// labels nil to keep them), and every service whose spec uses an
	// older version gets a new spec pointing at it, rolled out by its
	// UpdateConfig, its old spec kept for `service rollback`. At most
	// api.MaxSecretVersions versions are kept: one more is refused
	// (ErrInUse naming the services that hold them) until they let go.
	// What it returns has no data.
	UpdateSecret(ctx context.Context, ref string, spec api.SecretSpec) (*SecretUpdate, error)
	// SecretVersions returns every version kept of a secret, newest
	// first, without their data.
	SecretVersions(ctx context.Context, ref string) ([]*api.Secret, error)
	// CreateConfig creates a config (1 byte to api.MaxConfigSize of data,
	// a unique name).
	CreateConfig(ctx context.Context, spec api.ConfigSpec) (*api.Config, error)
	// GetConfig returns a config, with its data, by ID, name (the newest
	// version), "name@version" or unique ID prefix.
	GetConfig(ctx context.Context, ref string) (*api.Config, error)
	// ListConfigs returns the configs that match filter, by name, without
	// their data (GetConfig has it).
	ListConfigs(ctx context.Context, filter ObjectFilter) ([]*api.Config, error)
	// RemoveConfig removes a config as RemoveSecret a secret.
	RemoveConfig(ctx context.Context, ref string) error
	// UpdateConfig makes spec the config's next version, as UpdateSecret.
	UpdateConfig(ctx context.Context, ref string, spec api.ConfigSpec) (*ConfigUpdate, error)
	// ConfigVersions returns every version kept of a config, newest
	// first, without their data.
	ConfigVersions(ctx context.Context, ref string) ([]*api.Config, error)
}

// SecretUpdate is what UpdateSecret made: the new version (without its
// data) and the names of the services moved to it, which roll out now.
type SecretUpdate struct {
	Secret   *api.Secret `json:"Secret"`
	Services []string    `json:"Services,omitempty"`
}

// ConfigUpdate is what UpdateConfig made, as SecretUpdate.
type ConfigUpdate struct {
	Config   *api.Config `json:"Config"`
	Services []string    `json:"Services,omitempty"`
}

// ObjectFilter narrows ListSecrets and ListConfigs as `docker secret ls
// --filter` does, with NetworkFilter's rules.
type ObjectFilter = NetworkFilter

// NetworkFilter narrows ListNetworks as `docker network ls --filter` does;
// a network must match one entry of each list given (an empty list
// matches everything).
type NetworkFilter struct {
	// Names match all or part of a network's name.
	Names []string `json:"Names,omitempty"`
	// IDs match the start of a network's ID.
	IDs []string `json:"IDs,omitempty"`
	// Labels are "key" (the label is set) or "key=value"; a network must
	// have every one of them.
	Labels []string `json:"Labels,omitempty"`
}

// TaskFilter narrows ListTasks; empty fields match everything.
type TaskFilter struct {
	// Service is a service ID, name or unique ID prefix.
	Service string `json:"Service,omitempty"`
	// Node is a node ID, hostname or unique ID prefix.
	Node string `json:"Node,omitempty"`
	// DesiredStates keeps tasks whose desired state is one of these.
	DesiredStates []api.TaskState `json:"DesiredStates,omitempty"`
}

// Progress counts a service's tasks against what it wants.
type Progress struct {
	// Desired is how many tasks should run: the replica count, or the
	// number of eligible nodes for a global service (for a job, see
	// orchestrator.Progress).
	Desired int `json:"Desired"`
	// Running counts tasks wanted running and up (healthy when checked).
	Running int `json:"Running"`
	// UpToDate counts running tasks of the current template.
	UpToDate int `json:"UpToDate"`
	// Stopping counts tasks no longer wanted that still run.
	Stopping int `json:"Stopping"`
	// Completed counts tasks that finished successfully and are wanted.
	Completed int `json:"Completed"`
	// Total is, for a replicated job, the completions it needs.
	Total int `json:"Total,omitempty"`
	// Converged says the actual state matches the desired state; Waiting
	// says what is still missing when it does not.
	Converged bool   `json:"Converged"`
	Waiting   string `json:"Waiting,omitempty"`
}

// ServicePlan is what PlanService foresees: the orchestrator's and the
// scheduler's own decisions, simulated over a read of the cluster until
// the service settles, assuming every task placed starts and every task
// stopped stops.
type ServicePlan struct {
	// ServiceID is the service updated, "" for a new one.
	ServiceID string `json:"ServiceID,omitempty"`
	Name      string `json:"Name"`
	Mode      string `json:"Mode"`
	// Create are new slots (or, global, nodes), Replace tasks replaced by
	// new ones, Remove tasks that stop with no successor.
	Create  []PlannedTask `json:"Create,omitempty"`
	Replace []PlannedTask `json:"Replace,omitempty"`
	Remove  []PlannedTask `json:"Remove,omitempty"`
	// Unchanged counts the tasks that keep running as they are.
	Unchanged int `json:"Unchanged"`
	// Unplaced counts the new tasks that fit on no node.
	Unplaced int `json:"Unplaced"`
	// UpdateState is how the rollout would end (api.UpdateState...), ""
	// when there is nothing to roll.
	UpdateState string `json:"UpdateState,omitempty"`
	// Truncated says the simulation stopped at its bound before the
	// service settled (a long rolling update): what it shows is its start.
	Truncated bool `json:"Truncated,omitempty"`
}

// PlannedTask is one slot's change in a ServicePlan.
type PlannedTask struct {
	// Slot is the replicated slot; 0 for a global service's task.
	Slot uint64 `json:"Slot,omitempty"`
	// Name is the task's name ("web.3", or "web.<node ID>" for a global
	// service).
	Name string `json:"Name"`
	// OldTaskID and OldNodeID are the task that stops and its node.
	OldTaskID string `json:"OldTaskID,omitempty"`
	OldNodeID string `json:"OldNodeID,omitempty"`
	// NodeID is where the new task would run (its hostname in
	// NodeHostname); "" when it fits nowhere, Reason saying why.
	NodeID       string `json:"NodeID,omitempty"`
	NodeHostname string `json:"NodeHostname,omitempty"`
	Reason       string `json:"Reason,omitempty"`
}

// LogsRequest selects a service's output.
type LogsRequest struct {
	Service string `json:"Service"`
	Follow  bool   `json:"Follow,omitempty"`
	Tail    int    `json:"Tail,omitempty"`
}

// LogLine is one line of one task's output.
type LogLine struct {
	TaskID   string `json:"TaskID"`
	TaskName string `json:"TaskName"`
	NodeID   string `json:"NodeID"`
	Line     string `json:"Line"`
}

// RootRotation reports a root CA rotation.
type RootRotation struct {
	InProgress    bool      `json:"InProgress"`
	OldRootDigest string    `json:"OldRootDigest,omitempty"`
	NewRootDigest string    `json:"NewRootDigest,omitempty"`
	StartedAt     time.Time `json:"StartedAt,omitzero"`
	// Pending are the nodes that do not hold a certificate of the new root
	// yet.
	Pending []string `json:"Pending,omitempty"`
}

// MaxCSRSize bounds the certificate request IssueClientCertificate
// accepts: an RSA-4096 request is under 2 KiB.
const MaxCSRSize = 16 << 10

// ClientCertificate is what IssueClientCertificate signed.
type ClientCertificate struct {
	// ID is the certificate's CN, fresh for every certificate.
	ID string `json:"ID"`
	// Certificate is the PEM chain: the leaf, then any intermediates.
	Certificate []byte `json:"Certificate"`
	// CA is the PEM bundle of the cluster's roots (during a root rotation
	// both), what a client or server trusts.
	CA []byte `json:"CA"`
	// NotAfter is when the certificate expires.
	NotAfter time.Time `json:"NotAfter"`
}

// Errors of the control API; test with errors.Is, on either side of the
// wire. The object errors are swarm/api's (api.ErrNotFound, ...).
var (
	// ErrInvalidArgument marks a request refused for its input.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotManager: the node asked is a worker.
	ErrNotManager = errors.New("this node is a worker, not a manager: run this command against a manager's control socket")
	// ErrNoLogSource: this manager cannot reach its nodes' output.
	ErrNoLogSource = errors.New("task output is not reachable from this manager")
	// ErrNoCA: this manager has no certificate authority to rotate.
	ErrNoCA = errors.New("this manager runs without a certificate authority")
	// ErrInUse: the object is used by others (a network, secret or
	// config by services) and
	// cannot be removed; the message names them.
	ErrInUse = errors.New("in use")
	// ErrNoUnlockKey: autolock is off, so there is no unlock key.
	ErrNoUnlockKey = errors.New("autolock is off: the cluster has no unlock key (turn it on with apiaryctl swarm update --autolock=true)")
)

func init() {
	for _, r := range []struct {
		reason string
		err    error
		code   codes.Code
	}{
		{"INVALID_ARGUMENT", ErrInvalidArgument, codes.InvalidArgument},
		{"NOT_MANAGER", ErrNotManager, codes.FailedPrecondition},
		{"NO_LOG_SOURCE", ErrNoLogSource, codes.FailedPrecondition},
		{"NO_CA", ErrNoCA, codes.FailedPrecondition},
		{"IN_USE", ErrInUse, codes.FailedPrecondition},
		{"NO_UNLOCK_KEY", ErrNoUnlockKey, codes.FailedPrecondition},
		{"NOT_FOUND", api.ErrNotFound, codes.NotFound},
		{"CONFLICT", api.ErrConflict, codes.Aborted},
		{"NAME_CONFLICT", api.ErrNameConflict, codes.AlreadyExists},
		{"EXISTS", api.ErrExist, codes.AlreadyExists},
	} {
		rpc.RegisterError(r.reason, r.err, r.code)
	}
}
