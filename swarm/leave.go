package swarm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/swarm/api/control"
)

// ErrManagerLeave: a manager must be demoted (or forced) before it leaves.
var ErrManagerLeave = control.ErrManagerLeave

// Leave takes the node out of its cluster, as `docker swarm leave` does: its
// tasks are stopped, a manager leaves the raft group first (force only; raft
// refuses if the rest would lose quorum), and its identity and state are
// deleted from the data dir, so it can only come back by joining anew. The
// node stops; Left is closed when it has.
func (n *Node) Leave(ctx context.Context, force bool) error {
	n.switchMu.Lock()
	defer n.switchMu.Unlock()
	if n.stopped {
		return errors.New("the node is stopping")
	}
	rt := n.current()
	if rt != nil && rt.mgr != nil {
		if !force {
			return ErrManagerLeave
		}
		if err := rt.mgr.raft.RemoveMember(ctx, rt.mgr.raft.ID()); err != nil {
			return fmt.Errorf("leave the raft group: %w", err)
		}
	}
	// No role switch may start the node again now.
	n.stopped = true
	go n.finishLeave()
	return nil
}

func (n *Node) finishLeave() {
	if w := n.worker.Load(); w != nil {
		if err := w.Kill(context.Background()); err != nil {
			n.log.Warn("stop tasks on leave", "err", err)
		}
	}
	n.Stop()
	for _, p := range []string{stateFile, "certificates", "raft"} {
		if err := os.RemoveAll(filepath.Join(n.cfg.DataDir, p)); err != nil {
			n.log.Warn("remove state on leave", "path", p, "err", err)
		}
	}
	n.log.Info("left the cluster")
	n.exit(nil)
}

// Left is closed once the node has left its cluster on its own: it left
// (Leave), or it learnt that it was removed; Err says which.
func (n *Node) Left() <-chan struct{} { return n.left }

// Err says, once Left is closed, why the node ended: nil when it left,
// an error wrapping ErrNodeRemoved when it was removed from the cluster.
func (n *Node) Err() error {
	select {
	case <-n.left:
		return n.exitErr
	default:
		return nil
	}
}

// exit closes Left once, recording why.
func (n *Node) exit(err error) {
	n.exitOnce.Do(func() {
		n.exitErr = err
		close(n.left)
	})
}

// serveLocal serves the node-local service (control.Local) of the control
// socket.
func (n *Node) serveLocal(s grpc.ServiceRegistrar) { control.RegisterLocal(s, n, nil) }

var _ control.Local = (*Node)(nil)
