package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/apiary-io/apiary/executor"
)

// Logs returns the container's stdout and stderr, as the engine logged
// them. Before Start the output is empty, and Follow ends at once.
func (c *controller) Logs(ctx context.Context, opts executor.LogOptions) (io.ReadCloser, error) {
	id, _, removed, _, err := c.state(ctx)
	if err != nil {
		return nil, err
	}
	if removed {
		return nil, fmt.Errorf("task %s: logs: %w", c.task.ID, executor.ErrRemoved)
	}
	if id == "" {
		return io.NopCloser(strings.NewReader("")), nil
	}
	lo := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: "all"}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		lo.Since = opts.Since.UTC().Format(time.RFC3339Nano)
	}
	rc, err := c.e.cli.ContainerLogs(ctx, id, lo)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("task %s: logs: container %s removed outside the executor: %w", c.task.ID, c.name, executor.ErrRemoved)
		}
		return nil, fmt.Errorf("task %s: logs of container %s: %w", c.task.ID, c.name, err)
	}
	// Without a TTY the engine multiplexes stdout and stderr into frames;
	// both go to one stream, in the order the engine logged them.
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
		rc.Close()
	}()
	return &logStream{PipeReader: pr, body: rc}, nil
}

// logStream is the demultiplexed output; Close ends the engine's stream.
type logStream struct {
	*io.PipeReader
	body io.Closer
}

func (s *logStream) Close() error {
	s.PipeReader.Close()
	return s.body.Close()
}
