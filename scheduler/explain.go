package scheduler

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/apiary-io/apiary/internal/bytesize"
)

// Explanation says why a task was not placed (or, with Config.ExplainAll,
// which nodes were refused on the way): every refused node with the plugin
// that refused it, and those counted by reason.
type Explanation struct {
	// Nodes is the number of nodes considered.
	Nodes int
	// Invalid is set when the task cannot be scheduled at all (a
	// constraint or preference that does not parse, a pre-filter's
	// refusal); no node was then considered.
	Invalid string
	// Reasons counts the refused nodes by plugin and reason, in pipeline
	// order.
	Reasons []ReasonCount
	// Rejected lists every refused node, sorted by node ID. A node that
	// received tasks of the group and then filled up is listed with the
	// status that finally refused it.
	Rejected []NodeRejection
}

// ReasonCount is a number of nodes refused by one plugin for one reason.
type ReasonCount struct {
	Plugin string
	Reason string
	Nodes  int
	// Need is the task's need and MaxFree the largest amount free on these
	// nodes, when Unit is not UnitNone.
	Need, MaxFree int64
	Unit          Unit
}

// String returns e.g. "2 nodes insufficient memory (need 2GiB, max free 1GiB)".
func (r ReasonCount) String() string {
	noun := "nodes"
	if r.Nodes == 1 {
		noun = "node"
	}
	s := fmt.Sprintf("%d %s %s", r.Nodes, noun, r.Reason)
	if r.Unit != UnitNone {
		s += fmt.Sprintf(" (need %s, max free %s)", r.Unit.Format(r.Need), r.Unit.Format(max(r.MaxFree, 0)))
	}
	return s
}

// NodeRejection is one node refused by one plugin.
type NodeRejection struct {
	NodeID string
	Plugin string
	Status *Status
}

// String returns the summary: `no suitable node (1 node not available for
// new tasks; 2 nodes insufficient memory (need 2GiB, max free 1GiB))`, or the
// Invalid reason.
func (e *Explanation) String() string {
	if e == nil {
		return ""
	}
	if e.Invalid != "" {
		return e.Invalid
	}
	if e.Nodes == 0 {
		return "no suitable node (no nodes in the cluster)"
	}
	parts := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		parts[i] = r.String()
	}
	if len(parts) == 0 {
		return "no suitable node"
	}
	return "no suitable node (" + strings.Join(parts, "; ") + ")"
}

// Refused returns the rejection of a node, or nil when the node was not
// refused.
func (e *Explanation) Refused(nodeID string) *NodeRejection {
	if e == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(e.Rejected, nodeID, func(r NodeRejection, id string) int { return cmpString(r.NodeID, id) })
	if !ok {
		return nil
	}
	return &e.Rejected[i]
}

// explain fills e from the cycle's rejections of the current group. A node
// refused more than once (it filled up after taking tasks) keeps its last
// refusal.
func (c *cycle) explain(e *Explanation) {
	order := map[string]int{}
	for i, f := range c.s.cfg.Filters {
		if _, ok := order[f.Name()]; !ok {
			order[f.Name()] = i
		}
	}
	for i, r := range c.s.cfg.Reserves {
		if _, ok := order[r.Name()]; !ok {
			order[r.Name()] = len(c.s.cfg.Filters) + i
		}
	}
	last := make(map[*NodeInfo]int, len(c.rejected))
	for i, r := range c.rejected {
		last[r.ni] = i
	}
	type key struct{ plugin, reason string }
	counts := map[key]*ReasonCount{}
	e.Rejected = make([]NodeRejection, 0, len(last))
	for i, r := range c.rejected {
		if last[r.ni] != i {
			continue
		}
		e.Rejected = append(e.Rejected, NodeRejection{NodeID: r.ni.Node.ID, Plugin: r.plugin, Status: r.st})
		k := key{r.plugin, r.st.Reason}
		rc := counts[k]
		if rc == nil {
			rc = &ReasonCount{Plugin: r.plugin, Reason: r.st.Reason, Need: r.st.Need, MaxFree: r.st.Free, Unit: r.st.Unit}
			counts[k] = rc
		}
		rc.Nodes++
		rc.MaxFree = max(rc.MaxFree, r.st.Free)
		rc.Need = max(rc.Need, r.st.Need)
	}
	slices.SortFunc(e.Rejected, func(a, b NodeRejection) int { return cmpString(a.NodeID, b.NodeID) })
	for _, rc := range counts {
		e.Reasons = append(e.Reasons, *rc)
	}
	slices.SortFunc(e.Reasons, func(a, b ReasonCount) int {
		if oa, ob := order[a.Plugin], order[b.Plugin]; oa != ob {
			return oa - ob
		}
		if a.Plugin != b.Plugin {
			return cmpString(a.Plugin, b.Plugin)
		}
		return cmpString(a.Reason, b.Reason)
	})
}

// FormatBytes prints a byte count as Docker's CLI does, with a binary
// suffix and four significant digits: 512B, 1.5KiB, 2GiB, 1.001GiB.
func FormatBytes(b int64) string { return bytesize.Format(b) }

func formatCPUs(nano int64) string {
	return strconv.FormatFloat(math.Round(float64(nano)/1e6)/1e3, 'f', -1, 64)
}
