// Package schedtest is a harness to test scheduling policies: build nodes and
// tasks with fluent helpers, run the scheduler, and assert its decisions and
// explanations.
//
//	h := schedtest.New(t)
//	h.Nodes(schedtest.Node("n1").Label("zone", "a").CPUs(2).Memory("4GiB"),
//		schedtest.Node("n2").Label("zone", "b").CPUs(2).Memory("4GiB"))
//	h.Pending(schedtest.Task("web").Replicas(4).Memory("1GiB").Spread("node.labels.zone"))
//	r := h.Run()
//	r.ExpectCounts("web", map[string]int{"n1": 2, "n2": 2})
//
// Every Run also checks that no decision breaks a built-in rule (see
// Verify), so a custom policy cannot silently overcommit a node; SkipVerify
// turns that off for a pipeline that disables built-in filters on purpose.
package schedtest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm/api"
)

// Harness holds a cluster and the tasks to schedule.
type Harness struct {
	t       testing.TB
	cfg     scheduler.Config
	nodes   []*api.Node
	running []*api.Task
	pending []*api.Task
	next    map[string]int // next task number per service
	noCheck bool
}

// New returns a harness with the default pipeline.
func New(t testing.TB) *Harness {
	return &Harness{t: t, cfg: scheduler.DefaultConfig(), next: map[string]int{}}
}

// Config replaces the pipeline.
func (h *Harness) Config(cfg scheduler.Config) *Harness { h.cfg = cfg; return h }

// Register adds plugins to the pipeline (see scheduler.Config.Register).
func (h *Harness) Register(ps ...scheduler.Plugin) *Harness {
	for _, p := range ps {
		h.cfg.Register(p)
	}
	return h
}

// SkipVerify stops Run from checking the decisions against the built-in
// rules, for a pipeline that disables built-in filters on purpose.
func (h *Harness) SkipVerify() *Harness { h.noCheck = true; return h }

// Nodes adds nodes.
func (h *Harness) Nodes(bs ...*NodeBuilder) *Harness {
	for _, b := range bs {
		h.nodes = append(h.nodes, b.Build())
	}
	return h
}

func (h *Harness) build(b *TaskBuilder) []*api.Task {
	svc := b.t.ServiceID
	if b.firstID == 0 {
		b.firstID = h.next[svc] + 1
	}
	ts := b.Build()
	h.next[svc] = max(h.next[svc], b.firstID+len(ts)-1)
	return ts
}

// Running adds tasks already on nodes: each builder must say where with On.
func (h *Harness) Running(bs ...*TaskBuilder) *Harness {
	h.t.Helper()
	for _, b := range bs {
		if len(b.on) == 0 {
			h.t.Fatalf("schedtest: Running(%s): say on which nodes with On", b.t.ServiceID)
		}
		h.running = append(h.running, h.build(b)...)
	}
	return h
}

// Pending adds tasks to schedule.
func (h *Harness) Pending(bs ...*TaskBuilder) *Harness {
	for _, b := range bs {
		h.pending = append(h.pending, h.build(b)...)
	}
	return h
}

// State returns the cluster as the scheduler sees it.
func (h *Harness) State() scheduler.State {
	return scheduler.State{Nodes: h.nodes, Tasks: h.running}
}

// PendingTasks returns the tasks to schedule.
func (h *Harness) PendingTasks() []*api.Task { return h.pending }

// Run schedules the pending tasks, checks the decisions with Verify, and
// returns them for assertions.
func (h *Harness) Run() *Run {
	h.t.Helper()
	st := h.State()
	res := scheduler.New(h.cfg).Schedule(st, h.pending)
	if !h.noCheck {
		for _, err := range Verify(st, h.pending, res) {
			h.t.Errorf("schedtest: %v", err)
		}
	}
	return &Run{t: h.t, Result: res}
}

// Run is the outcome of Harness.Run.
type Run struct {
	t testing.TB
	scheduler.Result
}

// NodeOf returns the node a task was placed on, or "".
func (r *Run) NodeOf(taskID string) string {
	for _, d := range r.Decisions {
		if d.TaskID == taskID {
			return d.NodeID
		}
	}
	return ""
}

// Counts returns how many tasks of the service were placed on each node.
func (r *Run) Counts(service string) map[string]int {
	m := map[string]int{}
	for _, d := range r.Decisions {
		if d.Task.ServiceID == service && d.NodeID != "" {
			m[d.NodeID]++
		}
	}
	return m
}

// Placed returns how many tasks of the service were placed.
func (r *Run) Placed(service string) int {
	n := 0
	for _, c := range r.Counts(service) {
		n += c
	}
	return n
}

// Unplaced returns the decisions of the service's unplaced tasks.
func (r *Run) Unplaced(service string) []scheduler.Decision {
	var out []scheduler.Decision
	for _, d := range r.Decisions {
		if d.Task.ServiceID == service && d.NodeID == "" {
			out = append(out, d)
		}
	}
	return out
}

// Reason returns the reason of the service's first unplaced task, or "".
func (r *Run) Reason(service string) string {
	if u := r.Unplaced(service); len(u) > 0 {
		return u[0].Reason
	}
	return ""
}

// ExpectPlaced asserts how many tasks of the service were placed.
func (r *Run) ExpectPlaced(service string, n int) *Run {
	r.t.Helper()
	if got := r.Placed(service); got != n {
		r.t.Errorf("%s: placed %d tasks, want %d (unplaced reason: %q)", service, got, n, r.Reason(service))
	}
	return r
}

// ExpectCounts asserts exactly where the service's tasks were placed.
func (r *Run) ExpectCounts(service string, want map[string]int) *Run {
	r.t.Helper()
	got := r.Counts(service)
	want = maps.Clone(want)
	maps.DeleteFunc(want, func(_ string, v int) bool { return v == 0 })
	if !maps.Equal(got, want) {
		r.t.Errorf("%s: placed %s, want %s", service, fmtCounts(got), fmtCounts(want))
	}
	return r
}

// ExpectOn asserts how many tasks of the service went to one node.
func (r *Run) ExpectOn(service, node string, n int) *Run {
	r.t.Helper()
	if got := r.Counts(service)[node]; got != n {
		r.t.Errorf("%s: %d tasks on %s, want %d (all: %s)", service, got, node, n, fmtCounts(r.Counts(service)))
	}
	return r
}

// ExpectNotOn asserts that no task of the service went to the nodes.
func (r *Run) ExpectNotOn(service string, nodes ...string) *Run {
	r.t.Helper()
	c := r.Counts(service)
	for _, n := range nodes {
		if c[n] > 0 {
			r.t.Errorf("%s: %d tasks on %s, want none", service, c[n], n)
		}
	}
	return r
}

// ExpectBalanced asserts that the service's task counts on the given nodes
// differ by at most maxDiff.
func (r *Run) ExpectBalanced(service string, maxDiff int, nodes ...string) *Run {
	r.t.Helper()
	c := r.Counts(service)
	lo, hi := -1, 0
	for _, n := range nodes {
		if lo < 0 || c[n] < lo {
			lo = c[n]
		}
		hi = max(hi, c[n])
	}
	if hi-lo > maxDiff {
		r.t.Errorf("%s: counts %s differ by %d, want at most %d", service, fmtCounts(c), hi-lo, maxDiff)
	}
	return r
}

// ExpectUnplaced asserts how many tasks of the service were not placed and
// that their reason contains every given fragment.
func (r *Run) ExpectUnplaced(service string, n int, fragments ...string) *Run {
	r.t.Helper()
	u := r.Unplaced(service)
	if len(u) != n {
		r.t.Errorf("%s: %d tasks unplaced, want %d (placed: %s)", service, len(u), n, fmtCounts(r.Counts(service)))
	}
	for _, d := range u {
		for _, f := range fragments {
			if !strings.Contains(d.Reason, f) {
				r.t.Errorf("%s: reason %q does not contain %q", d.TaskID, d.Reason, f)
			}
		}
	}
	return r
}

// ExpectReason asserts the exact reason of the service's unplaced tasks.
func (r *Run) ExpectReason(service, reason string) *Run {
	r.t.Helper()
	u := r.Unplaced(service)
	if len(u) == 0 {
		r.t.Errorf("%s: every task placed, want reason %q", service, reason)
	}
	for _, d := range u {
		if d.Reason != reason {
			r.t.Errorf("%s: reason\n  %q\nwant\n  %q", d.TaskID, d.Reason, reason)
			return r
		}
	}
	return r
}

// ExpectRefused asserts that the service's explanation shows the node
// refused by the plugin.
func (r *Run) ExpectRefused(service, node, plugin string) *Run {
	r.t.Helper()
	for _, d := range r.Decisions {
		if d.Task.ServiceID != service || d.Explanation == nil {
			continue
		}
		rej := d.Explanation.Refused(node)
		if rej == nil {
			r.t.Errorf("%s: node %s not refused, want refused by %s", service, node, plugin)
		} else if rej.Plugin != plugin {
			r.t.Errorf("%s: node %s refused by %s (%s), want %s", service, node, rej.Plugin, rej.Status, plugin)
		}
		return r
	}
	r.t.Errorf("%s: no explanation (every task placed; set Config.ExplainAll to see refusals)", service)
	return r
}

func fmtCounts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}
