package orchestrator

import (
	"github.com/apiary-io/apiary/swarm/api"
)

// eligible reports whether a global service's task belongs on node n. It
// mirrors the scheduler's node filters that depend on the node alone (not on
// what else runs there): readiness, drain, constraints, platform, executor.
func eligible(n *api.Node, spec *api.TaskSpec) bool {
	if n.Status.State != api.NodeStateReady || n.Spec.Availability == api.NodeAvailabilityDrain {
		return false
	}
	d := n.Description
	if d == nil {
		return false
	}
	if kind := spec.RuntimeKind(); d.Executor != "fake" && kind != "" && d.Executor != kind {
		return false
	}
	if spec.Placement == nil {
		return true
	}
	cs, err := api.ParseConstraints(spec.Placement.Constraints)
	if err != nil {
		return false
	}
	for _, c := range cs {
		if !matchConstraint(n, c) {
			return false
		}
	}
	if len(spec.Placement.Platforms) > 0 {
		ok := false
		for _, p := range spec.Placement.Platforms {
			if (p.OS == "" || p.OS == d.Platform.OS) && (p.Architecture == "" || p.Architecture == d.Platform.Architecture) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func matchConstraint(n *api.Node, c api.Constraint) bool {
	var have string
	var present bool
	switch c.Key {
	case "node.id":
		have, present = n.ID, true
	case "node.hostname":
		have, present = n.Description.Hostname, true
	case "node.role":
		have, present = string(n.Spec.Role), true
	case "node.platform.os":
		have, present = n.Description.Platform.OS, true
	case "node.platform.arch":
		have, present = n.Description.Platform.Architecture, true
	default:
		if k, ok := cutPrefix(c.Key, "node.labels."); ok {
			have, present = n.Spec.Labels[k]
		} else if k, ok := cutPrefix(c.Key, "engine.labels."); ok {
			have, present = n.Description.Engine.Labels[k]
		}
	}
	if c.Operator == api.ConstraintEq {
		return present && have == c.Value
	}
	return !present || have != c.Value
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return "", false
}
