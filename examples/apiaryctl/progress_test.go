package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

func progressTask(slot uint64, node string, st api.TaskState, msg string, created time.Time) *api.Task {
	t := &api.Task{ID: api.NewID(), Slot: slot, NodeID: node, DesiredState: api.TaskStateRunning,
		Status: api.TaskStatus{State: st, Message: msg}}
	t.Meta.CreatedAt = created
	return t
}

// On a terminal the display redraws in place: each slot's newest task with
// a bar as long as its progress, the reason a pending task waits, then the
// cursor back up for the next draw; a global service's rows are its nodes'
// hostnames.
func TestProgressTerminal(t *testing.T) {
	now := time.Now()
	svc := &api.Service{Spec: api.ServiceSpec{Mode: api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: 2}}}}
	tasks := []*api.Task{
		progressTask(1, "n1", api.TaskStateFailed, "", now.Add(-time.Minute)),
		progressTask(1, "n1", api.TaskStateRunning, "", now),
		progressTask(2, "", api.TaskStatePending, "no suitable node (2 nodes insufficient memory)", now),
	}
	tasks[0].DesiredState = api.TaskStateShutdown
	var out bytes.Buffer
	v := &progressView{out: &out, tty: true, last: map[string]string{}}
	v.draw(svc, &control.Progress{Desired: 2, UpToDate: 1}, tasks)
	got := out.String()
	for _, want := range []string{"\x1b[2Koverall progress: 1 out of 2 tasks\n", "\x1b[2K1/2: running   [" + strings.Repeat("=", barWidth-1) + ">]\n",
		"2/2: pending   [", "] no suitable node (2 nodes insufficient memory)\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("first draw lacks %q:\n%q", want, got)
		}
	}
	out.Reset()
	v.draw(svc, &control.Progress{Desired: 2, UpToDate: 1}, tasks)
	if !strings.HasPrefix(out.String(), "\x1b[3A") {
		t.Errorf("second draw does not go back up three lines: %q", out.String())
	}

	global := &api.Service{Spec: api.ServiceSpec{Mode: api.ServiceMode{Global: &api.GlobalService{}}}}
	rs := rows(global, []*api.Task{progressTask(0, "node-b", api.TaskStateRunning, "", now), progressTask(0, "node-a", api.TaskStateStarting, "", now)},
		map[string]string{"node-a": "alpha", "node-b": "beta"})
	if len(rs) != 2 || rs[0].key != "alpha" || rs[1].key != "beta" || rs[0].state != api.TaskStateStarting {
		t.Errorf("global rows %+v", rs)
	}
}
