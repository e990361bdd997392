package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
)

// progressPoll is how often the progress display reads the service.
const progressPoll = 250 * time.Millisecond

// barWidth is the width of a slot's progress bar, as docker's.
const barWidth = 50

// stateSteps numbers the states a new task goes through, for the bar:
// docker's numbering (new 1 ... running 9).
var stateSteps = map[api.TaskState]int{
	api.TaskStateNew: 1, api.TaskStatePending: 3, api.TaskStateAssigned: 4, api.TaskStateAccepted: 5,
	api.TaskStatePreparing: 6, api.TaskStateReady: 7, api.TaskStateStarting: 8, api.TaskStateRunning: 9,
}

// isTTY reports whether w is a terminal (a character device other than
// /dev/null): the display then redraws in place, else it prints a line
// per change.
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

// progressView is the display's state between polls.
type progressView struct {
	out   io.Writer
	tty   bool
	drawn int               // lines drawn last time (tty)
	last  map[string]string // row → the text printed last (non-tty)
	lastO string
	hosts map[string]string // node ID → hostname, for global services' rows
}

// row is one slot (or, global, one node) of the display.
type row struct {
	slot  uint64 // 0 for a global service's node
	key   string
	state api.TaskState
	err   string
}

// waitProgress shows a service's tasks slot by slot until it converges,
// as docker's service create/update/scale do: "overall progress: 2 out of
// 3 tasks" and a line per slot with its newest task's state ("1/3:
// running [=====>]"), redrawn in place on a terminal and printed once per
// change otherwise; "verify: Service converged" at the end. An update that
// pauses or rolls back ends it with an error saying so. It waits until
// ctx ends. After a rollback the user asked for (rollback), the rollback
// completing is the success; after anything else it is a failed update.
func waitProgress(ctx context.Context, cl *client.Client, out io.Writer, ref string, rollback bool) error {
	v := &progressView{out: out, tty: isTTY(out), last: map[string]string{}, hosts: hostnames(ctx, cl)}
	t := time.NewTicker(progressPoll)
	defer t.Stop()
	for {
		svc, err := cl.GetService(ctx, ref)
		if err != nil {
			return err
		}
		p, err := cl.ServiceProgress(ctx, svc.ID)
		if err != nil {
			return err
		}
		tasks, err := cl.ListTasks(ctx, control.TaskFilter{Service: svc.ID})
		if err != nil {
			return err
		}
		v.draw(svc, p, tasks)
		switch st := svc.UpdateStatus.GetState(); st {
		case api.UpdateStatePaused, api.UpdateStateRollbackPaused:
			return fmt.Errorf("service %s: update %s: %s", svc.Spec.Name, strings.ReplaceAll(st, "_", " "), svc.UpdateStatus.Message)
		case api.UpdateStateRollbackCompleted:
			if !rollback {
				return fmt.Errorf("service %s: update rolled back: %s", svc.Spec.Name, svc.UpdateStatus.Message)
			}
		}
		if p.Converged {
			fmt.Fprintln(out, "verify: Service converged")
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s: %w: %s", svc.Spec.Name, ctx.Err(), p.Waiting)
		case <-t.C:
		}
	}
}

// rows picks, for each slot (replicated) or node (global), the newest
// task the managers want running, in slot order.
func rows(svc *api.Service, tasks []*api.Task, hosts map[string]string) []row {
	newest := map[string]*api.Task{}
	for _, t := range tasks {
		if t.DesiredState > api.TaskStateRunning && !(svc.Spec.Mode.IsJob() && t.Status.State == api.TaskStateComplete) {
			continue
		}
		k := fmt.Sprint(t.Slot)
		if t.Slot == 0 {
			k = t.NodeID
		}
		if o := newest[k]; o == nil || t.Meta.CreatedAt.After(o.Meta.CreatedAt) {
			newest[k] = t
		}
	}
	var out []row
	for k, t := range newest {
		name := k
		if t.Slot == 0 {
			name = hosts[k]
			if name == "" {
				name = short(k)
			}
		}
		r := row{slot: t.Slot, key: name, state: t.Status.State, err: t.Status.Err}
		if t.Status.State == api.TaskStatePending && t.Status.Message != "" && t.Status.Message != "pending task scheduling" {
			r.err = t.Status.Message // why it fits nowhere
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b row) int {
		if c := cmp.Compare(a.slot, b.slot); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return out
}

func bar(st api.TaskState) string {
	n := stateSteps[st]
	if st.Terminal() {
		n = 0
	}
	filled := barWidth * n / 9
	if filled == 0 {
		return "[" + strings.Repeat(" ", barWidth) + "]"
	}
	if filled >= barWidth {
		return "[" + strings.Repeat("=", barWidth-1) + ">]"
	}
	return "[" + strings.Repeat("=", filled-1) + ">" + strings.Repeat(" ", barWidth-filled) + "]"
}

func (v *progressView) draw(svc *api.Service, p *control.Progress, tasks []*api.Task) {
	rs := rows(svc, tasks, v.hosts)
	total := p.Desired
	overall := fmt.Sprintf("overall progress: %d out of %d tasks", p.UpToDate, total)
	if svc.Spec.Mode.IsJob() {
		total = p.Total
		if total == 0 {
			total = p.Desired
		}
		overall = fmt.Sprintf("job progress: %d out of %d complete", p.Completed, total)
	}
	lines := []string{overall}
	for _, r := range rs {
		label := r.key
		if svc.Spec.Mode.Replicated != nil {
			label = fmt.Sprintf("%s/%d", r.key, total)
		}
		l := fmt.Sprintf("%s: %-9s %s", label, strings.ToLower(r.state.String()), bar(r.state))
		if r.err != "" {
			l += " " + r.err
		}
		lines = append(lines, l)
	}
	if v.tty {
		if v.drawn > 0 {
			fmt.Fprintf(v.out, "\x1b[%dA", v.drawn) // back to the first line
		}
		for _, l := range lines {
			fmt.Fprintf(v.out, "\x1b[2K%s\n", l)
		}
		for i := len(lines); i < v.drawn; i++ { // rows gone since
			fmt.Fprint(v.out, "\x1b[2K\n")
		}
		v.drawn = max(v.drawn, len(lines))
		return
	}
	// Plain lines: each slot's state once per change, without the bar.
	if overall != v.lastO {
		fmt.Fprintln(v.out, overall)
		v.lastO = overall
	}
	for _, r := range rs {
		label := r.key
		if svc.Spec.Mode.Replicated != nil {
			label = fmt.Sprintf("%s/%d", r.key, total)
		}
		l := fmt.Sprintf("%s: %s", label, strings.ToLower(r.state.String()))
		if r.err != "" {
			l += " (" + r.err + ")"
		}
		if v.last[r.key] != l {
			fmt.Fprintln(v.out, l)
			v.last[r.key] = l
		}
	}
}
