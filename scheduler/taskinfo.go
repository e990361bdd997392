package scheduler

import (
	"fmt"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// StrategyLabel is the service label that chooses a service's placement
// strategy: "spread" (the default: fewest tasks of the service first, then
// fewest tasks overall) or "binpack" (most allocated node first, then most
// tasks). It is read from the task's ServiceAnnotations.Labels, which the
// orchestrator copies from the service's Spec.Annotations.Labels.
const StrategyLabel = "apiary.scheduler.strategy"

// Strategy is how a service's tasks are packed onto nodes.
type Strategy string

// Strategies.
const (
	StrategySpread  Strategy = "spread"
	StrategyBinpack Strategy = "binpack"
)

// TaskInfo is what the scheduler reads once from a group of identical
// pending tasks (same service ID and spec version), for plugins to use.
type TaskInfo struct {
	// Task is the first task of the group; every task of the group has the
	// same spec.
	Task *api.Task
	// Tasks is the number of pending tasks in the group.
	Tasks int
	// ServiceID is the tasks' service ("" for a task without one, which is
	// then a group of its own).
	ServiceID string
	// NanoCPUs and MemoryBytes are the reservations of one task.
	NanoCPUs, MemoryBytes int64
	// Runtime is the executor kind the task needs ("docker", "process" or
	// "" for any).
	Runtime string
	// HostPorts are the ports the task publishes in host mode.
	HostPorts []HostPort
	// Constraints are the parsed placement constraints; ConstraintsErr is
	// the first that did not parse.
	Constraints    []api.Constraint
	ConstraintsErr error
	// Preferences are the spread descriptors, outermost first, e.g.
	// ["node.labels.datacenter", "node.labels.rack"].
	Preferences []string
	// MaxReplicas bounds the tasks of the service per node; 0 is unbounded.
	MaxReplicas uint64
	// Platforms the task runs on; empty means any.
	Platforms []api.Platform
	// Strategy is the service's placement strategy (see StrategyLabel).
	Strategy Strategy

	u *usage
}

// Generic returns the task's reservation of a generic resource kind, in
// units (named units count one each).
func (t *TaskInfo) Generic(kind string) int64 {
	var n int64
	for _, g := range t.u.generic {
		if g.Kind == kind {
			n += g.Count
		}
	}
	return n
}

// NewTaskInfo reads a task's placement needs. The scheduler calls it once per
// group; it is exported for plugin tests.
func NewTaskInfo(t *api.Task) *TaskInfo {
	ti := &TaskInfo{
		Task:      t,
		Tasks:     1,
		ServiceID: t.ServiceID,
		Runtime:   t.Spec.RuntimeKind(),
		Strategy:  StrategySpread,
		u:         newUsage(t),
	}
	if t.Spec.Process == nil && t.Spec.Container.RunsAsProcess() {
		// A container spec naming a program (api.IsProcessImage) is a
		// process task: Docker nodes are refused for that.
		ti.Runtime = api.RuntimeProcess
	}
	ti.NanoCPUs, ti.MemoryBytes = ti.u.nanoCPUs, ti.u.memory
	ti.HostPorts = ti.u.ports
	if p := t.Spec.Placement; p != nil {
		ti.Constraints, ti.ConstraintsErr = api.ParseConstraints(p.Constraints)
		for _, pref := range p.Preferences {
			if pref.Spread != nil {
				ti.Preferences = append(ti.Preferences, pref.Spread.SpreadDescriptor)
			}
		}
		ti.MaxReplicas = p.MaxReplicas
		ti.Platforms = p.Platforms
	}
	if strings.EqualFold(t.ServiceAnnotations.Labels[StrategyLabel], string(StrategyBinpack)) {
		ti.Strategy = StrategyBinpack
	}
	return ti
}

// groupKey is the key of the group a pending task belongs to: its service,
// spec version and pinned node, or the task itself when it has no service.
type groupKey struct {
	service string
	version uint64
	node    string
	task    string
}

func keyOf(t *api.Task) groupKey {
	if t.ServiceID == "" {
		return groupKey{task: t.ID}
	}
	return groupKey{service: t.ServiceID, version: t.SpecVersion, node: t.NodeID}
}

// NodeAttribute returns the value of a constraint or spread key on a node:
// node.id, node.hostname, node.role, node.platform.os, node.platform.arch,
// node.labels.<name> or engine.labels.<name> (keys as api.ParseConstraint
// returns them). ok is false when the node has no such label or no
// description to read it from.
func NodeAttribute(n *api.Node, key string) (value string, ok bool) {
	switch key {
	case "node.id":
		return n.ID, true
	case "node.hostname":
		if n.Description == nil {
			return "", false
		}
		return n.Description.Hostname, true
	case "node.role":
		role := n.Spec.Role
		if role == "" {
			role = api.NodeRoleWorker
		}
		return string(role), true
	case "node.platform.os":
		if n.Description == nil {
			return "", false
		}
		return n.Description.Platform.OS, true
	case "node.platform.arch":
		if n.Description == nil {
			return "", false
		}
		return n.Description.Platform.Architecture, true
	}
	if name, found := strings.CutPrefix(key, "node.labels."); found {
		v, ok := n.Spec.Labels[name]
		return v, ok
	}
	if name, found := strings.CutPrefix(key, "engine.labels."); found {
		if n.Description == nil {
			return "", false
		}
		v, ok := n.Description.Engine.Labels[name]
		return v, ok
	}
	return "", false
}

// parseSpread checks a spread descriptor and returns its canonical key.
func parseSpread(desc string) (string, error) {
	c, err := api.ParseConstraint(desc + "==x")
	if err != nil {
		return "", fmt.Errorf("placement preference spread=%q: want node.labels.<name>, engine.labels.<name> or another constraint key", desc)
	}
	return c.Key, nil
}
