package dispatcher

import (
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// RegisterRequest opens a worker session. An empty NodeID joins the cluster
// as a new node; a known NodeID resumes that node.
type RegisterRequest struct {
	NodeID      string              `json:"NodeID,omitempty"`
	Description api.NodeDescription `json:"Description"`
	// Addr is the address the worker is reachable at, for display.
	Addr string `json:"Addr,omitempty"`
}

// RegisterResponse identifies the session.
type RegisterResponse struct {
	NodeID    string `json:"NodeID"`
	SessionID string `json:"SessionID"`
	// HeartbeatPeriod is how often the worker must heartbeat; a worker
	// silent for the period times the grace multiplier is declared down.
	HeartbeatPeriod time.Duration `json:"HeartbeatPeriod"`
	// Managers are the addresses of every manager, for the worker to fail
	// over to when this one goes away.
	Managers []string `json:"Managers,omitempty"`
	// CAVersion changes whenever the cluster's CA state does (a root
	// rotation starts or ends): the worker then renews its certificate.
	CAVersion string `json:"CAVersion,omitempty"`
}

// HeartbeatRequest keeps a session alive.
type HeartbeatRequest struct {
	NodeID    string `json:"NodeID"`
	SessionID string `json:"SessionID"`
}

// HeartbeatResponse tells the period to use until the next heartbeat: it
// grows with the cluster so the leader's heartbeat load stays bounded.
type HeartbeatResponse struct {
	Period time.Duration `json:"Period"`
	// Managers are the managers' addresses, so that a worker learns of
	// managers that joined after it registered.
	Managers []string `json:"Managers,omitempty"`
	// CAVersion changes whenever the cluster's CA state does (a root
	// rotation starts or ends): the worker then renews its certificate.
	CAVersion string `json:"CAVersion,omitempty"`
	// Role is the role the node's certificate should carry (see
	// api.Node.CertificateRole): a node whose certificate says otherwise
	// renews it, and then starts or stops being a manager.
	Role api.NodeRole `json:"Role,omitempty"`
	// RenewCertificate asks the node to renew its certificate now: a root
	// rotation is in progress and the cluster has no certificate of the
	// new root recorded for it. (CAVersion cannot say so to a node that
	// started after the rotation did.)
	RenewCertificate bool `json:"RenewCertificate,omitempty"`
}

// AssignmentsRequest opens the stream of a session's task assignments.
type AssignmentsRequest struct {
	NodeID    string `json:"NodeID"`
	SessionID string `json:"SessionID"`
}

// AssignmentsType says whether a message is the full set or a change.
type AssignmentsType int

// Assignment message types.
const (
	// AssignmentsComplete carries every task of the node; tasks the worker
	// has that are not in it are no longer its own.
	AssignmentsComplete AssignmentsType = iota
	// AssignmentsIncremental carries changed and removed tasks only.
	AssignmentsIncremental
)

// AssignmentsMessage is one message of the assignments stream. Messages
// are bounded in size (MaxAssignmentsBytes): a complete set too large for
// one comes in parts, each but the last with More set, and the worker acts
// on it once it has the last; a large change comes as several incremental
// messages, applied in order.
type AssignmentsMessage struct {
	Type AssignmentsType `json:"Type"`
	// Tasks are new or changed tasks (all of them, for Complete).
	Tasks []*api.Task `json:"Tasks,omitempty"`
	// Removed are IDs of tasks the node must stop and forget.
	Removed []string `json:"Removed,omitempty"`
	// More, on a Complete message, says the set continues in the next.
	More bool `json:"More,omitempty"`
}

// AssignmentStream delivers assignment messages until it fails or the
// session ends.
type AssignmentStream interface {
	Recv() (*AssignmentsMessage, error)
}

// TaskStatusUpdate is a worker's report of one task.
type TaskStatusUpdate struct {
	TaskID string         `json:"TaskID"`
	Status api.TaskStatus `json:"Status"`
}

// UpdateTaskStatusRequest carries a batch of status reports.
type UpdateTaskStatusRequest struct {
	NodeID    string             `json:"NodeID"`
	SessionID string             `json:"SessionID"`
	Updates   []TaskStatusUpdate `json:"Updates"`
}
