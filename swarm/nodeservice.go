package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// nodeServiceName is the gRPC service every node serves to managers: the
// output of the tasks it runs.
const nodeServiceName = "apiary.Node"

// TaskLogsRequest asks a node for a task's output.
type TaskLogsRequest struct {
	TaskID string        `json:"TaskID"`
	Follow bool          `json:"Follow,omitempty"`
	Tail   int           `json:"Tail,omitempty"`
	Since  time.Time     `json:"Since,omitzero"`
	Wait   time.Duration `json:"Wait,omitempty"`
}

// LogChunk is a piece of a task's output.
type LogChunk struct {
	Data []byte `json:"Data"`
}

// serveNodeService registers the node service for this node's worker.
func (n *Node) serveNodeService(s grpc.ServiceRegistrar) {
	desc := rpc.Service(nodeServiceName, nil,
		rpc.ServerStream("TaskLogs", func(ctx context.Context, req *TaskLogsRequest, send func(*LogChunk) error) error {
			w := n.worker.Load()
			if w == nil {
				return fmt.Errorf("node %s is still starting", n.state.NodeID)
			}
			rc, err := w.Logs(ctx, req.TaskID, executor.LogOptions{Follow: req.Follow, Tail: req.Tail, Since: req.Since})
			if err != nil {
				return err
			}
			defer rc.Close()
			buf := make([]byte, 32*1024)
			for {
				k, err := rc.Read(buf)
				if k > 0 {
					if err := send(&LogChunk{Data: append([]byte(nil), buf[:k]...)}); err != nil {
						return err
					}
				}
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
			}
		}))
	s.RegisterService(&desc, nil)
}

// nodeLogs is controlapi.LogSource over the nodes' gRPC services: the
// manager calls the node that runs the task, at the address it registered
// from, over mutual TLS.
type nodeLogs struct {
	n   *Node
	mgr *Manager
}

func (l nodeLogs) TaskLogs(ctx context.Context, t *api.Task, opts executor.LogOptions) (io.ReadCloser, error) {
	var addr string
	l.mgr.store.View(func(tx store.ReadTx) {
		if node := tx.GetNode(t.NodeID); node != nil {
			addr = node.Status.Addr
		}
	})
	if addr == "" {
		return nil, fmt.Errorf("node %s has no known address", t.NodeID)
	}
	conn, err := dialNode(addr, t.NodeID, l.n.identity, l.n.cfg.dialOpts())
	if err != nil {
		return nil, err
	}
	st, err := rpc.OpenStream[LogChunk](ctx, conn, nodeServiceName, "TaskLogs", &TaskLogsRequest{TaskID: t.ID, Follow: opts.Follow, Tail: opts.Tail, Since: opts.Since})
	if err != nil {
		conn.Close()
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer conn.Close()
		for {
			c, err := st.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				pw.CloseWithError(err)
				return
			}
			if _, err := pw.Write(c.Data); err != nil {
				return
			}
		}
	}()
	return pr, nil
}
