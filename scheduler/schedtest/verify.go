package schedtest

import (
	"fmt"
	"strings"

	"github.com/apiary-io/apiary/scheduler"
	"github.com/apiary-io/apiary/swarm/api"
)

// Verify checks decisions against the built-in rules, written here
// independently of the scheduler's filters: one decision per pending task in
// order; every unplaced task has a reason; every placed task is on a known
// node that is READY and active, runs its runtime and platform, meets its
// constraints; and on every node that received tasks, the reservations (of
// the tasks there before and those placed) fit the node's CPU, memory and
// generic resources, no host port is published twice, no named unit is held
// twice, and no service exceeds its max replicas per node (counting every
// task of the service, so this assumes its tasks share one MaxReplicas). It
// returns every violation found.
func Verify(st scheduler.State, pending []*api.Task, res scheduler.Result) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(res.Decisions) != len(pending) {
		fail("%d decisions for %d pending tasks", len(res.Decisions), len(pending))
		return errs
	}
	nodes := map[string]*api.Node{}
	for _, n := range st.Nodes {
		nodes[n.ID] = n
	}
	type acct struct {
		cpu, mem int64
		generic  map[string]int64
		named    map[string]int
		ports    map[string]int
		services map[string]int
	}
	accts := map[string]*acct{}
	get := func(id string) *acct {
		a := accts[id]
		if a == nil {
			a = &acct{generic: map[string]int64{}, named: map[string]int{}, ports: map[string]int{}, services: map[string]int{}}
			accts[id] = a
		}
		return a
	}
	add := func(a *acct, t *api.Task) {
		a.services[t.ServiceID]++
		if r := t.Spec.Resources; r != nil && r.Reservations != nil {
			a.cpu += r.Reservations.NanoCPUs
			a.mem += r.Reservations.MemoryBytes
			for _, g := range r.Reservations.GenericResources {
				if g.DiscreteResourceSpec != nil {
					a.generic[g.DiscreteResourceSpec.Kind] += g.DiscreteResourceSpec.Value
				}
				if g.NamedResourceSpec != nil {
					a.generic[g.NamedResourceSpec.Kind]++
					a.named[g.NamedResourceSpec.Kind+"="+g.NamedResourceSpec.Value]++
				}
			}
		}
		if t.Endpoint != nil {
			ports := t.Endpoint.Ports
			if len(ports) == 0 {
				ports = t.Endpoint.Spec.Ports
			}
			seen := map[string]bool{}
			for _, p := range ports {
				if p.PublishMode == api.PublishModeHost && p.PublishedPort != 0 {
					proto := p.Protocol
					if proto == "" {
						proto = "tcp"
					}
					k := fmt.Sprintf("%d/%s", p.PublishedPort, proto)
					if !seen[k] {
						seen[k] = true
						a.ports[k]++
					}
				}
			}
		}
	}
	for _, t := range st.Tasks {
		if scheduler.TakesResources(t) {
			add(get(t.NodeID), t)
		}
	}
	placed := map[string][]*api.Task{}
	for i, d := range res.Decisions {
		t := pending[i]
		if d.TaskID != t.ID {
			fail("decision %d is for task %q, want %q", i, d.TaskID, t.ID)
			continue
		}
		if d.NodeID == "" {
			if d.Reason == "" {
				fail("task %s: unplaced without a reason", t.ID)
			}
			continue
		}
		n := nodes[d.NodeID]
		if n == nil {
			fail("task %s: placed on unknown node %q", t.ID, d.NodeID)
			continue
		}
		if n.Status.State != api.NodeStateReady {
			fail("task %s: node %s is %s", t.ID, n.ID, n.Status.State)
		}
		if a := n.Spec.Availability; a != api.NodeAvailabilityActive && a != "" {
			fail("task %s: node %s availability is %s", t.ID, n.ID, a)
		}
		if rk := t.Spec.RuntimeKind(); rk != "" && n.Description != nil {
			if e := n.Description.Executor; !t.Spec.RunsOn(e) {
				fail("task %s: node %s runs %s, task needs %s", t.ID, n.ID, e, rk)
			}
		}
		if p := t.Spec.Placement; p != nil {
			cs, err := api.ParseConstraints(p.Constraints)
			if err != nil {
				fail("task %s: placed despite invalid constraint: %v", t.ID, err)
			}
			for _, c := range cs {
				if !constraintHolds(c, n) {
					fail("task %s: node %s does not meet %s", t.ID, n.ID, c)
				}
			}
			if len(p.Platforms) > 0 && !platformOK(p.Platforms, n) {
				fail("task %s: node %s platform not in %v", t.ID, n.ID, p.Platforms)
			}
		}
		add(get(n.ID), t)
		placed[n.ID] = append(placed[n.ID], t)
	}
	for id, ts := range placed {
		n, a := nodes[id], accts[id]
		var res api.Resources
		if n.Description != nil {
			res = n.Description.Resources
		}
		var needCPU, needMem bool
		kinds, units, ports := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, t := range ts {
			tmp := &acct{generic: map[string]int64{}, named: map[string]int{}, ports: map[string]int{}, services: map[string]int{}}
			add(tmp, t)
			for u := range tmp.named {
				units[u] = true
			}
			for p := range tmp.ports {
				ports[p] = true
			}
			if r := t.Spec.Resources; r != nil && r.Reservations != nil {
				needCPU = needCPU || r.Reservations.NanoCPUs > 0
				needMem = needMem || r.Reservations.MemoryBytes > 0
				for _, g := range r.Reservations.GenericResources {
					if g.DiscreteResourceSpec != nil {
						kinds[g.DiscreteResourceSpec.Kind] = true
					}
					if g.NamedResourceSpec != nil {
						kinds[g.NamedResourceSpec.Kind] = true
					}
				}
			}
			if p := t.Spec.Placement; p != nil && p.MaxReplicas > 0 && uint64(a.services[t.ServiceID]) > p.MaxReplicas {
				fail("node %s: %d tasks of %s, max replicas %d", id, a.services[t.ServiceID], t.ServiceID, p.MaxReplicas)
			}
		}
		if needCPU && a.cpu > res.NanoCPUs {
			fail("node %s: %d NanoCPUs reserved of %d", id, a.cpu, res.NanoCPUs)
		}
		if needMem && a.mem > res.MemoryBytes {
			fail("node %s: %d bytes reserved of %d", id, a.mem, res.MemoryBytes)
		}
		offered := map[string]int64{}
		offeredUnits := map[string]bool{}
		for _, g := range res.GenericResources {
			if g.DiscreteResourceSpec != nil {
				offered[g.DiscreteResourceSpec.Kind] += g.DiscreteResourceSpec.Value
			}
			if g.NamedResourceSpec != nil {
				offered[g.NamedResourceSpec.Kind]++
				offeredUnits[g.NamedResourceSpec.Kind+"="+g.NamedResourceSpec.Value] = true
			}
		}
		for k := range kinds {
			if a.generic[k] > offered[k] {
				fail("node %s: %d %s reserved of %d", id, a.generic[k], k, offered[k])
			}
		}
		for u := range units {
			if c := a.named[u]; c > 1 || !offeredUnits[u] {
				fail("node %s: named unit %s held %d times (offered: %v)", id, u, c, offeredUnits[u])
			}
		}
		for p := range ports {
			if c := a.ports[p]; c > 1 {
				fail("node %s: host port %s published by %d tasks", id, p, c)
			}
		}
	}
	return errs
}

func attr(n *api.Node, key string) string {
	d := n.Description
	if d == nil {
		d = &api.NodeDescription{}
	}
	switch key {
	case "node.id":
		return n.ID
	case "node.hostname":
		return d.Hostname
	case "node.role":
		if n.Spec.Role == "" {
			return string(api.NodeRoleWorker)
		}
		return string(n.Spec.Role)
	case "node.platform.os":
		return d.Platform.OS
	case "node.platform.arch":
		return d.Platform.Architecture
	}
	if k, ok := strings.CutPrefix(key, "node.labels."); ok {
		return n.Spec.Labels[k]
	}
	if k, ok := strings.CutPrefix(key, "engine.labels."); ok {
		return d.Engine.Labels[k]
	}
	return ""
}

func constraintHolds(c api.Constraint, n *api.Node) bool {
	eq := strings.EqualFold(attr(n, c.Key), c.Value)
	if c.Operator == api.ConstraintNe {
		return !eq
	}
	return eq
}

func platformOK(ps []api.Platform, n *api.Node) bool {
	var have api.Platform
	if n.Description != nil {
		have = n.Description.Platform
	}
	arch := func(a string) string {
		switch strings.ToLower(a) {
		case "x86_64", "x86-64":
			return "amd64"
		case "aarch64":
			return "arm64"
		}
		return strings.ToLower(a)
	}
	for _, p := range ps {
		osOK := p.OS == "" || have.OS == "" || strings.EqualFold(p.OS, have.OS)
		archOK := p.Architecture == "" || have.Architecture == "" || arch(p.Architecture) == arch(have.Architecture)
		if osOK && archOK {
			return true
		}
	}
	return false
}
