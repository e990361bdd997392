package control

import (
	"context"
	"errors"
	"path/filepath"

	"google.golang.org/grpc/codes"

	"github.com/apiary-io/apiary/swarm/rpc"
)

//go:generate go run github.com/apiary-io/apiary/internal/rpcgen -type Local -service apiary.Local

// Local is what a node's control socket offers about the node itself,
// manager or worker.
type Local interface {
	// Leave takes the node out of its cluster, as `docker swarm leave`
	// does: its tasks stop, a manager leaves the raft group first (only
	// with force; raft refuses if the rest would lose quorum), and its
	// identity and state are deleted.
	Leave(ctx context.Context, force bool) error
	// Unlock gives a locked manager the cluster's unlock key, with which
	// it opens its data and starts (ErrWrongUnlockKey if it does not
	// open it). On a node that is not locked it does nothing.
	Unlock(ctx context.Context, key string) error
	// Status says what the node is and whether it is locked. A locked
	// manager answers only Unlock and Status.
	Status(ctx context.Context) (*NodeStatus, error)
}

// NodeStatus is what a node says of itself on its control socket.
type NodeStatus struct {
	NodeID string `json:"NodeID"`
	// Role is the role the node runs in ("manager", "worker"), or the
	// one it will run in once unlocked.
	Role string `json:"Role"`
	// Locked: the node waits for its unlock key (Unlock).
	Locked bool `json:"Locked"`
	// Autolock: the node's data at rest is locked by the cluster's
	// unlock key (a manager's, once it has seen the cluster's setting).
	Autolock bool `json:"Autolock,omitempty"`
	// RaftApplied is, on a running manager, the index of the last raft
	// log entry its store has applied (0 on a worker or a locked
	// manager). It only grows, by one per entry applied (or to a
	// snapshot's index when one is installed), so two readings on the
	// leader count the entries committed between them: what
	// BenchmarkControlAPIWrite reports as entries per write when the
	// managers run in their own processes. Read-only; the control socket
	// alone serves it.
	RaftApplied uint64 `json:"RaftApplied,omitempty"`
}

// ErrManagerLeave: a manager must be demoted (or forced) before it leaves.
var ErrManagerLeave = errors.New("this node is a manager: leaving takes a member out of the raft group; use --force to leave anyway (the remaining managers must keep a quorum)")

var (
	// ErrLocked: the manager waits for its unlock key and answers
	// nothing but Unlock and Status.
	ErrLocked = errors.New("this manager is locked: its data is encrypted with the cluster's unlock key; unlock it with `apiaryctl swarm unlock` (the key on stdin)")
	// ErrWrongUnlockKey: the key given does not open the manager's data.
	ErrWrongUnlockKey = errors.New("the unlock key is wrong: it does not open this manager's data (if the key was rotated while this manager was down, give the key it had then)")
)

func init() {
	rpc.RegisterError("MANAGER_LEAVE", ErrManagerLeave, codes.FailedPrecondition)
	rpc.RegisterError("LOCKED", ErrLocked, codes.FailedPrecondition)
	rpc.RegisterError("WRONG_UNLOCK_KEY", ErrWrongUnlockKey, codes.InvalidArgument)
}

// SocketPath is the path of a node's control socket in its data dir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "control.sock") }
