package dispatcher

import (
	"github.com/apiary-io/apiary/swarm/api/session"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// The worker contract's messages (package session), under the names the
// dispatcher has used.
type (
	RegisterRequest         = session.RegisterRequest
	RegisterResponse        = session.RegisterResponse
	HeartbeatRequest        = session.HeartbeatRequest
	HeartbeatResponse       = session.HeartbeatResponse
	AssignmentsRequest      = session.AssignmentsRequest
	AssignmentsType         = session.AssignmentsType
	AssignmentsMessage      = session.AssignmentsMessage
	TaskStatusUpdate        = session.TaskStatusUpdate
	UpdateTaskStatusRequest = session.UpdateTaskStatusRequest
	// AssignmentStream delivers assignment messages until it fails or
	// the session ends.
	AssignmentStream = rpc.Stream[session.AssignmentsMessage]
)

// Assignment message types.
const (
	AssignmentsComplete    = session.AssignmentsComplete
	AssignmentsIncremental = session.AssignmentsIncremental
)
