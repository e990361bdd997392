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
}

// ErrManagerLeave: a manager must be demoted (or forced) before it leaves.
var ErrManagerLeave = errors.New("this node is a manager: leaving takes a member out of the raft group; use --force to leave anyway (the remaining managers must keep a quorum)")

func init() {
	rpc.RegisterError("MANAGER_LEAVE", ErrManagerLeave, codes.FailedPrecondition)
}

// SocketPath is the path of a node's control socket in its data dir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "control.sock") }
