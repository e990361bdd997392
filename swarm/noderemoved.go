package swarm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/apiary-io/apiary/pki"
)

// ErrNodeRemoved: the node was removed from its cluster (`node rm`). Its
// certificate is refused everywhere from then on, so it can only come back
// by joining anew.
var ErrNodeRemoved = pki.ErrNodeRemoved

// watchRemoval ends the node when its agent stops because the managers
// refused it as removed: retrying would be refused for ever. Its tasks,
// already replaced elsewhere, are stopped; its data dir is kept, and a
// restart ends the same way at once.
func (n *Node) watchRemoval(w *Worker) {
	go func() {
		<-w.Done()
		if err := w.Err(); errors.Is(err, ErrNodeRemoved) {
			n.removed(err)
		}
	}()
}

// removed stops the node for good: it was removed from the cluster.
func (n *Node) removed(cause error) {
	n.switchMu.Lock()
	stopping := n.stopped
	n.switchMu.Unlock()
	if stopping {
		return
	}
	n.log.Error("this node was removed from the cluster; stopping its tasks and exiting", "err", cause)
	if w := n.worker.Load(); w != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := w.Kill(ctx); err != nil {
			n.log.Warn("stop tasks of a removed node", "err", err)
		}
		cancel()
	}
	n.Stop()
	n.exit(fmt.Errorf("node %s was removed from the cluster (join again with a token to come back): %w", n.NodeID(), cause))
}
