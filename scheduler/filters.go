package scheduler

import (
	"fmt"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// Names of the built-in plugins, in the order DefaultConfig runs them.
const (
	PluginNodeAvailable = "NodeAvailable"
	PluginExecutor      = "Executor"
	PluginPlatform      = "Platform"
	PluginConstraints   = "Constraints"
	PluginMaxReplicas   = "MaxReplicas"
	PluginHostPorts     = "HostPorts"
	PluginResources     = "Resources"

	PluginServiceSpread = "ServiceSpread"
	PluginBinpack       = "Binpack"
	PluginNodeLoad      = "NodeLoad"
)

// NodeAvailable refuses nodes that are not READY, or whose availability is
// pause or drain (an empty availability is read as active).
type NodeAvailable struct{}

// Name implements Plugin.
func (NodeAvailable) Name() string { return PluginNodeAvailable }

// Filter implements FilterPlugin.
func (NodeAvailable) Filter(_ *TaskInfo, n *NodeInfo) *Status {
	node := n.Node
	if node.Status.State != api.NodeStateReady {
		return &Status{Reason: "not available for new tasks", Detail: "node is " + string(node.Status.State)}
	}
	switch node.Spec.Availability {
	case api.NodeAvailabilityActive, "":
		return nil
	}
	return &Status{Reason: "not available for new tasks", Detail: "availability " + string(node.Spec.Availability)}
}

// Executor refuses nodes whose executor cannot run the task's runtime: a
// "process" node runs process tasks (and container tasks whose image is an
// absolute path to an executable, api.TaskSpec.RunsOn), a "docker" node runs
// container tasks, a "fake" node (tests) runs anything. A node that does not report its
// executor, and a task without a runtime, are not refused.
type Executor struct{}

// Name implements Plugin.
func (Executor) Name() string { return PluginExecutor }

// Filter implements FilterPlugin.
func (Executor) Filter(t *TaskInfo, n *NodeInfo) *Status {
	if t.Runtime == "" || n.Node.Description == nil {
		return nil
	}
	if t.Task.Spec.RunsOn(n.Node.Description.Executor) {
		// Its own kind, a fake, or a process node for a container
		// whose image is an executable's path (api.IsProcessImage).
		return nil
	}
	return &Status{Reason: fmt.Sprintf("cannot run %s tasks", t.Runtime), Detail: "executor " + n.Node.Description.Executor}
}

// Platform refuses nodes whose OS and architecture match none of the task's
// Placement.Platforms (an empty OS or architecture on either side matches
// any; x86_64 is amd64 and aarch64 is arm64).
type Platform struct{}

// Name implements Plugin.
func (Platform) Name() string { return PluginPlatform }

// Filter implements FilterPlugin.
func (Platform) Filter(t *TaskInfo, n *NodeInfo) *Status {
	if len(t.Platforms) == 0 {
		return nil
	}
	var have api.Platform
	if n.Node.Description != nil {
		have = n.Node.Description.Platform
	}
	for _, want := range t.Platforms {
		if platformPartMatch(want.OS, have.OS) && platformPartMatch(normArch(want.Architecture), normArch(have.Architecture)) {
			return nil
		}
	}
	wants := make([]string, len(t.Platforms))
	for i, p := range t.Platforms {
		wants[i] = platformString(p)
	}
	return &Status{Reason: "platform not supported (want " + strings.Join(wants, ", ") + ")", Detail: "node is " + platformString(have)}
}

func platformPartMatch(want, have string) bool {
	return want == "" || have == "" || strings.EqualFold(want, have)
}

func normArch(a string) string {
	switch strings.ToLower(a) {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

func platformString(p api.Platform) string {
	os, arch := p.OS, p.Architecture
	if os == "" {
		os = "*"
	}
	if arch == "" {
		arch = "*"
	}
	return os + "/" + arch
}

// Constraints refuses nodes that do not meet every placement constraint, as
// Swarm does: values compare case-insensitively; a node without the label
// fails == and passes !=. A constraint that does not parse makes the task
// unplaceable with the parser's error, which names the expression.
type Constraints struct{}

// Name implements Plugin.
func (Constraints) Name() string { return PluginConstraints }

// PreFilter implements PreFilterPlugin.
func (Constraints) PreFilter(t *TaskInfo) *Status {
	if t.ConstraintsErr != nil {
		return &Status{Reason: "invalid placement constraint: " + t.ConstraintsErr.Error()}
	}
	return nil
}

// Filter implements FilterPlugin.
func (Constraints) Filter(t *TaskInfo, n *NodeInfo) *Status {
	for i := range t.Constraints {
		c := &t.Constraints[i]
		if !ConstraintMatches(c, n.Node) {
			return &Status{Reason: "constraint " + c.String() + " not met"}
		}
	}
	return nil
}

// ConstraintMatches reports whether a node meets one constraint.
func ConstraintMatches(c *api.Constraint, n *api.Node) bool {
	v, _ := NodeAttribute(n, c.Key)
	eq := strings.EqualFold(v, c.Value)
	if c.Operator == api.ConstraintNe {
		return !eq
	}
	return eq
}

// MaxReplicas refuses nodes that already run Placement.MaxReplicas tasks of
// the service.
type MaxReplicas struct{}

// Name implements Plugin.
func (MaxReplicas) Name() string { return PluginMaxReplicas }

// Filter implements FilterPlugin.
func (MaxReplicas) Filter(t *TaskInfo, n *NodeInfo) *Status {
	if t.MaxReplicas == 0 || t.ServiceID == "" {
		return nil
	}
	if uint64(n.ServiceTasks(t.ServiceID)) >= t.MaxReplicas {
		return Rejectf("max replicas per node (%d) reached", t.MaxReplicas)
	}
	return nil
}

// HostPorts refuses nodes where a port the task publishes in host mode is
// already published by another task.
type HostPorts struct{}

// Name implements Plugin.
func (HostPorts) Name() string { return PluginHostPorts }

// Filter implements FilterPlugin.
func (HostPorts) Filter(t *TaskInfo, n *NodeInfo) *Status {
	for _, p := range t.HostPorts {
		if n.HostPortInUse(p) {
			return Rejectf("host port %s in use", p)
		}
	}
	return nil
}

// Resources refuses nodes without enough unreserved CPU, memory or generic
// resources for the task's reservations. Generic resources are counted per
// kind, named and counted units together; a reservation of a named unit
// needs that very unit free.
type Resources struct{}

// Name implements Plugin.
func (Resources) Name() string { return PluginResources }

// Filter implements FilterPlugin.
func (Resources) Filter(t *TaskInfo, n *NodeInfo) *Status {
	if t.NanoCPUs > 0 && n.FreeCPU() < t.NanoCPUs {
		return &Status{Reason: "insufficient CPU", Need: t.NanoCPUs, Free: n.FreeCPU(), Unit: UnitNanoCPUs}
	}
	if t.MemoryBytes > 0 && n.FreeMemory() < t.MemoryBytes {
		return &Status{Reason: "insufficient memory", Need: t.MemoryBytes, Free: n.FreeMemory(), Unit: UnitBytes}
	}
	for _, g := range t.u.generic {
		if g.Named != "" {
			if !n.NamedUnitFree(g.Kind, g.Named) {
				return Rejectf("%s %s not free", g.Kind, g.Named)
			}
		}
		need := t.Generic(g.Kind)
		if free := n.FreeGeneric(g.Kind); free < need {
			return &Status{Reason: "insufficient " + g.Kind, Need: need, Free: free, Unit: UnitCount}
		}
	}
	return nil
}
