package controlapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// LogSource opens the output of a task on whatever node runs it; the swarm
// package implements it by calling the node.
type LogSource interface {
	TaskLogs(ctx context.Context, t *api.Task, opts executor.LogOptions) (io.ReadCloser, error)
}

// ErrNoLogSource: this manager cannot reach its nodes' output.
var ErrNoLogSource = control.ErrNoLogSource

// The contract's messages.
type (
	LogsRequest = control.LogsRequest
	LogLine     = control.LogLine
	// LogStream delivers log lines until the output ends (io.EOF).
	LogStream = rpc.Stream[control.LogLine]
)

type chanStream struct {
	ctx context.Context
	ch  <-chan *LogLine
	err *error
	mu  *sync.Mutex
}

func (c chanStream) Recv() (*LogLine, error) {
	select {
	case l, ok := <-c.ch:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			if *c.err != nil {
				return nil, *c.err
			}
			return nil, io.EOF
		}
		return l, nil
	case <-c.ctx.Done():
		return nil, c.ctx.Err()
	}
}

// ServiceLogs streams the output of a service's tasks (those wanted
// running, and the ones that ended but are still recorded), each line
// labelled with its task. Tasks whose node cannot be reached are skipped
// with a line saying so.
func (s *Server) ServiceLogs(ctx context.Context, req LogsRequest) (LogStream, error) {
	if s.logs == nil {
		return nil, ErrNoLogSource
	}
	tasks, err := s.ListTasks(ctx, TaskFilter{Service: req.Service})
	if err != nil {
		return nil, err
	}
	ch := make(chan *LogLine, 64)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for _, t := range tasks {
		if t.NodeID == "" || t.Status.State < api.TaskStateStarting {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%s.%s", t.Name, shortID(t.ID))
			rc, err := s.logs.TaskLogs(ctx, t, executor.LogOptions{Follow: req.Follow, Tail: req.Tail})
			if err != nil {
				select {
				case ch <- &LogLine{TaskID: t.ID, TaskName: name, NodeID: t.NodeID, Line: fmt.Sprintf("(no output: %v)", err)}:
				case <-ctx.Done():
				}
				return
			}
			defer rc.Close()
			sc := bufio.NewScanner(rc)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for sc.Scan() {
				select {
				case ch <- &LogLine{TaskID: t.ID, TaskName: name, NodeID: t.NodeID, Line: sc.Text()}:
				case <-ctx.Done():
					return
				}
			}
			if err := sc.Err(); err != nil && ctx.Err() == nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("task %s: %w", t.ID, err)
				}
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(ch) }()
	return chanStream{ctx: ctx, ch: ch, err: &firstErr, mu: &mu}, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
