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

//go:generate go run github.com/apiary-io/apiary/internal/rpcgen -type nodeService -service apiary.Node

// nodeService is what every node serves to managers: the output of the
// tasks it runs.
type nodeService interface {
	TaskLogs(ctx context.Context, req TaskLogsRequest) (rpc.Stream[LogChunk], error)
}

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
	registerNodeService(s, nodeOutput{n}, nil)
}

// nodeOutput serves the node service from the node's worker.
type nodeOutput struct{ n *Node }

func (o nodeOutput) TaskLogs(ctx context.Context, req TaskLogsRequest) (rpc.Stream[LogChunk], error) {
	w := o.n.worker.Load()
	if w == nil {
		return nil, fmt.Errorf("node %s is still starting", o.n.NodeID())
	}
	rc, err := w.Logs(ctx, req.TaskID, executor.LogOptions{Follow: req.Follow, Tail: req.Tail, Since: req.Since})
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { rc.Close() })
	return &chunkStream{rc: rc, buf: make([]byte, 32*1024)}, nil
}

// chunkStream reads a task's output in chunks, closing it at its end.
type chunkStream struct {
	rc  io.ReadCloser
	buf []byte
}

func (s *chunkStream) Recv() (*LogChunk, error) {
	for {
		k, err := s.rc.Read(s.buf)
		if k > 0 {
			return &LogChunk{Data: append([]byte(nil), s.buf[:k]...)}, nil
		}
		if err != nil {
			s.rc.Close()
			return nil, err // io.EOF ends the stream cleanly
		}
	}
}

// nodeLogs is controlapi.LogSource over the nodes' gRPC services: the
// manager calls the node that runs the task, at the address it registered
// from, over mutual TLS.
type nodeLogs struct {
	n     *Node
	store *store.MemoryStore
}

func (l nodeLogs) TaskLogs(ctx context.Context, t *api.Task, opts executor.LogOptions) (io.ReadCloser, error) {
	var addr string
	l.store.View(func(tx store.ReadTx) {
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
	st, err := newNodeServiceClient(conn).TaskLogs(ctx, TaskLogsRequest{TaskID: t.ID, Follow: opts.Follow, Tail: opts.Tail, Since: opts.Since})
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
