package scheduler

import (
	"fmt"

	"github.com/apiary-io/apiary/swarm/api"
)

// Plugin is anything registered with the scheduler: built-in or a user's.
// Its name appears in explanations and is what Config.Disable takes.
type Plugin interface {
	Name() string
}

// FilterPlugin decides whether one task of a group fits on one node. It
// returns nil when the node fits, or a Status saying why not.
//
// A filter must be node-local: its answer for a node may depend on the task
// and on that node's NodeInfo (which includes every task already reserved on
// it in this call), but not on other nodes. The scheduler relies on this to
// place a group of identical tasks with one pass over the nodes: it filters
// every node once per group, and re-filters only the node that just received
// a task. A filter that breaks this rule must implement CrossNodePlugin.
type FilterPlugin interface {
	Plugin
	Filter(t *TaskInfo, n *NodeInfo) *Status
}

// PreFilterPlugin is an optional interface of a FilterPlugin, called once per
// group before any node is filtered. A non-nil Status makes the whole group
// unplaceable with that status's Reason (the built-in Constraints filter uses
// it to report a constraint that does not parse).
type PreFilterPlugin interface {
	FilterPlugin
	PreFilter(t *TaskInfo) *Status
}

// CrossNodePlugin is an optional interface of a FilterPlugin or ScorePlugin
// whose answer for one node changes when a task is reserved on another node
// (for example "at most two tasks of a service per rack"). When any
// registered plugin reports CrossNode() == true, the scheduler places tasks
// one at a time with a full pass over the nodes for each: correct, but
// slower by the size of the groups.
type CrossNodePlugin interface {
	Plugin
	CrossNode() bool
}

// ScorePlugin ranks the nodes that passed every filter; higher is better.
// The scheduler sums Weight*Score over the registered score plugins and picks
// the node with the highest total, breaking ties by the lower node ID. Like
// filters, scores must be node-local (see FilterPlugin), or the plugin must
// implement CrossNodePlugin.
type ScorePlugin interface {
	Plugin
	Score(t *TaskInfo, n *NodeInfo) int64
}

// WeightedScore is a score plugin and the weight of its score.
type WeightedScore struct {
	Plugin ScorePlugin
	Weight int64
}

// ReservePlugin is told when the scheduler commits a task to a node, after
// the node won the scoring. Reserve may still refuse with a Status: the
// scheduler then calls Unreserve on the reserve plugins that had already
// accepted (in reverse order), drops the node for the rest of the group and
// tries the next best node. The scheduler's own accounting (resources, task
// counts, host ports) is done before the next filter call and needs no
// plugin.
type ReservePlugin interface {
	Plugin
	Reserve(t *TaskInfo, n *NodeInfo, task *api.Task) *Status
	Unreserve(t *TaskInfo, n *NodeInfo, task *api.Task)
}

// Unit says how to print the Need and Free amounts of a Status.
type Unit int

// Units.
const (
	// UnitNone: the status carries no amounts.
	UnitNone Unit = iota
	// UnitCount: plain counts (generic resources).
	UnitCount
	// UnitNanoCPUs: billionths of a CPU, printed as CPUs ("1.5").
	UnitNanoCPUs
	// UnitBytes: bytes, printed with binary suffixes ("512MiB").
	UnitBytes
)

// Format prints an amount in the unit.
func (u Unit) Format(v int64) string {
	switch u {
	case UnitNanoCPUs:
		return formatCPUs(v)
	case UnitBytes:
		return FormatBytes(v)
	}
	return fmt.Sprint(v)
}

// Status is a plugin's refusal of a node. The zero Reason is not allowed.
type Status struct {
	// Reason is a short phrase that completes "N nodes ...", e.g.
	// "insufficient memory" or "constraint node.labels.zone==a not met".
	// Nodes refused with the same plugin and Reason are counted together in
	// a task's explanation, so keep node-specific text out of it.
	Reason string
	// Detail is optional node-specific text, kept per node
	// (Explanation.Rejected) but not in the summary.
	Detail string
	// Need and Free are optional amounts, shown in the summary as
	// "(need X, max free Y)" with the largest Free of the nodes counted
	// together, when Unit is not UnitNone.
	Need, Free int64
	Unit       Unit
}

// Reject returns a Status with the given reason.
func Reject(reason string) *Status { return &Status{Reason: reason} }

// Rejectf returns a Status with a formatted reason.
func Rejectf(format string, args ...any) *Status {
	return &Status{Reason: fmt.Sprintf(format, args...)}
}

// String returns the reason, with the node's detail when there is one.
func (s *Status) String() string {
	if s == nil {
		return "fits"
	}
	r := s.Reason
	if s.Unit != UnitNone {
		r += fmt.Sprintf(" (need %s, free %s)", s.Unit.Format(s.Need), s.Unit.Format(max(s.Free, 0)))
	}
	if s.Detail != "" {
		r += ": " + s.Detail
	}
	return r
}
