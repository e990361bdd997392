package dockerapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/apiary-io/apiary/swarm/api/control"
)

// Logs are streamed as Docker streams a service's logs: each line in a
// stdout frame of the multiplexed stream (8-byte header: stream, 0, 0, 0,
// big-endian length), or raw for a TTY service; with details, prefixed by
// the task's context (com.docker.swarm.node.id=...,service.id,task.id),
// which `docker service logs` reads to name each line's task. Apiary's
// nodes keep one stream per task, so stdout and stderr arrive merged, as
// stdout; timestamps are when the manager relayed the line (the nodes
// keep none). since and until are refused: nothing records when a line
// was written.

func (s *Server) serviceLogs(w http.ResponseWriter, r *http.Request) error {
	return s.logs(w, r, r.PathValue("id"), "")
}

func (s *Server) taskLogs(w http.ResponseWriter, r *http.Request) error {
	t, err := s.cfg.Backend.GetTask(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.logs(w, r, t.ServiceID, t.ID)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request, service, taskID string) error {
	if !queryBool(r, "stdout") && !queryBool(r, "stderr") {
		return errInvalid(errors.New("Bad parameters: you must choose at least one stream"))
	}
	q := r.URL.Query()
	if q.Get("since") != "" || q.Get("until") != "" {
		return errInvalid(errors.New("logs: since and until are not supported: task output carries no timestamps"))
	}
	follow, details, timestamps := queryBool(r, "follow"), queryBool(r, "details"), queryBool(r, "timestamps")
	tail := 0 // all
	if v := q.Get("tail"); v != "" && v != "all" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errInvalid(fmt.Errorf("invalid value for tail: %q (a number of lines or \"all\")", v))
		}
		if n > s.cfg.MaxLogTail {
			return errInvalid(fmt.Errorf("tail %d: at most %d lines per task", n, s.cfg.MaxLogTail))
		}
		if n == 0 && !follow {
			w.WriteHeader(http.StatusOK)
			return nil
		}
		tail = n
	}
	ctx := r.Context()
	svc, err := s.cfg.Backend.GetService(ctx, service)
	if err != nil {
		return err
	}
	tty := false
	if d, ok := keptSpec(svc.Spec); ok && d.TaskTemplate.ContainerSpec != nil {
		tty = d.TaskTemplate.ContainerSpec.TTY
	}
	stream, err := s.cfg.Backend.ServiceLogs(ctx, control.LogsRequest{Service: svc.ID, Follow: follow, Tail: tail})
	if err != nil {
		return err
	}
	if tty {
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
	} else {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
	}
	w.WriteHeader(http.StatusOK)
	flush(w)
	for {
		l, err := stream.Recv()
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// The status is sent: end the stream, as Docker does.
			s.log.Debug("docker API: log stream ended", "service", svc.ID, "err", err)
			return nil
		}
		if taskID != "" && l.TaskID != taskID {
			continue
		}
		var line []byte
		if timestamps {
			line = append(line, time.Now().UTC().Format(time.RFC3339Nano)+" "...)
		}
		if details {
			line = append(line, "com.docker.swarm.node.id="+url.QueryEscape(l.NodeID)+",com.docker.swarm.service.id="+url.QueryEscape(svc.ID)+
				",com.docker.swarm.task.id="+url.QueryEscape(l.TaskID)+" "...)
		}
		line = append(line, l.Line...)
		line = append(line, '\n')
		if !tty {
			var hdr [8]byte
			hdr[0] = 1 // stdout
			binary.BigEndian.PutUint32(hdr[4:], uint32(len(line)))
			line = append(hdr[:], line...)
		}
		if _, err := w.Write(line); err != nil {
			return nil
		}
		flush(w)
	}
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
