package api

import (
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The rules of a service spec and of the task template it holds.

// Validate checks a service spec against Swarm's rules and returns every
// problem, each naming the field. It does not fill defaults: call
// ApplyDefaults first to accept what Docker accepts when fields are left out
// (a spec without a mode, for example, is replicated with one replica).
func (s *ServiceSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "service", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "service", name: s.Name}
	s.validate(v)
	return v.err()
}

func (s *ServiceSpec) validate(v *validator) {
	v.checkName("name", s.Name)
	v.labels("labels", s.Labels)
	oneMode := s.validateMode(v)
	validateTaskSpec(v, "task_template", &s.TaskTemplate)
	if oneMode && s.Mode.IsGlobal() && s.TaskTemplate.Placement != nil && s.TaskTemplate.Placement.MaxReplicas > 0 {
		// Docker's rule: a global service runs one task per node already.
		v.addf("task_template.placement.max_replicas", "must be 0 for a %s service (it runs one task per node), got %d",
			s.Mode.ModeName(), s.TaskTemplate.Placement.MaxReplicas)
	}
	validateUpdateConfig(v, "update_config", s.UpdateConfig, false)
	validateUpdateConfig(v, "rollback_config", s.RollbackConfig, true)
	validateEndpointSpec(v, "endpoint_spec", s.EndpointSpec)
	s.validateBounds(v)
}

// validateMode reports whether exactly one mode is set, so that checks that
// depend on the mode are made only when it is clear.
func (s *ServiceSpec) validateMode(v *validator) bool {
	var set []string
	if s.Mode.Replicated != nil {
		set = append(set, "replicated")
	}
	if s.Mode.Global != nil {
		set = append(set, "global")
	}
	if s.Mode.ReplicatedJob != nil {
		set = append(set, "replicated-job")
	}
	if s.Mode.GlobalJob != nil {
		set = append(set, "global-job")
	}
	switch len(set) {
	case 0:
		v.addf("mode", "must be one of replicated, global, replicated-job or global-job, got none")
	case 1:
	default:
		v.addf("mode", "must be exactly one of replicated, global, replicated-job or global-job, got %s", strings.Join(set, " and "))
	}
	if r := s.Mode.Replicated; r != nil {
		v.countInRange("replicas", r.Replicas)
	}
	if j := s.Mode.ReplicatedJob; j != nil {
		v.countInRange("max_concurrent", j.MaxConcurrent)
		v.countInRange("total_completions", j.TotalCompletions)
	}
	if s.Mode.IsJob() {
		// Docker's rule: jobs run to completion and are re-run, never
		// rolled, so an update (and so a rollback) config means nothing.
		if s.UpdateConfig != nil {
			v.addf("update_config", "must not be set for a %s service (jobs are never rolled)", s.Mode.ModeName())
		}
		if s.RollbackConfig != nil {
			v.addf("rollback_config", "must not be set for a %s service (jobs are never rolled)", s.Mode.ModeName())
		}
	}
	return len(set) == 1
}

// countInRange checks a signed count of tasks: 0 to MaxReplicas.
func (v *validator) countInRange(field string, n int64) {
	switch {
	case n < 0:
		v.addf(field, "must be >= 0, got %d", n)
	case n > MaxReplicas:
		v.addf(field, "must be <= %d, got %d", MaxReplicas, n)
	}
}

// Validate checks a task spec on its own (field paths are relative to it,
// e.g. "container.image"). A service validates its template through
// ServiceSpec.Validate, which names the fields "task_template.…".
func (t *TaskSpec) Validate() error {
	if t == nil {
		return &ValidationError{Kind: "task spec", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "task spec"}
	validateTaskSpec(v, "", t)
	return v.err()
}

func validateTaskSpec(v *validator, p string, t *TaskSpec) {
	switch {
	case t.Container == nil && t.Process == nil:
		v.addf(fieldPath(p, "runtime"), "must set one of container or process, got none")
	case t.Container != nil && t.Process != nil:
		v.addf(fieldPath(p, "runtime"), "must set exactly one of container or process, got both")
	}
	if t.Container != nil {
		validateContainer(v, fieldPath(p, "container"), t.Container)
	}
	if t.Process != nil {
		validateProcess(v, fieldPath(p, "process"), t.Process)
	}
	if t.Resources != nil {
		validateResourceRequirements(v, fieldPath(p, "resources"), t.Resources)
	}
	if t.RestartPolicy != nil {
		validateRestartPolicy(v, fieldPath(p, "restart_policy"), t.RestartPolicy)
	}
	if t.Placement != nil {
		validatePlacement(v, fieldPath(p, "placement"), t.Placement)
	}
	if t.HealthCheck != nil {
		validateHealthCheck(v, fieldPath(p, "health_check"), t.HealthCheck, t.Container != nil)
	}
	validateNetworkAttachments(v, fieldPath(p, "networks"), t.Networks)
	validateTaskFileRefs(v, p, t)
}

func validateContainer(v *validator, p string, c *ContainerSpec) {
	switch {
	case c.Image == "":
		v.addf(fieldPath(p, "image"), "must not be empty")
	case IsProcessImage(c.Image):
		// An executable on the node, for process-executor nodes
		// (processimage.go); the scheduler places it on those only.
	case strings.HasPrefix(c.Image, ProcessImageHost+"/"):
		v.addf(fieldPath(p, "image"), "a process image is %s/PATH[:TAG], PATH a clean path to the program and no digest, got %q", ProcessImageHost, c.Image)
	case !validImageReference(c.Image):
		v.addf(fieldPath(p, "image"), "must be an image reference such as nginx:1.27 or registry.example.com:5000/team/app@sha256:<digest>, got %q", c.Image)
	}
	v.labels(fieldPath(p, "labels"), c.Labels)
	v.args(p, c.Command, c.Args)
	v.env(fieldPath(p, "env"), c.Env)
	if c.Dir != "" && !isAbsContainerPath(c.Dir) {
		// Docker refuses a relative working directory: it would depend on
		// the image.
		v.addf(fieldPath(p, "dir"), "must be an absolute path, got %q", c.Dir)
	}
	mounts := c.Mounts
	if !v.maxItems(fieldPath(p, "mounts"), len(mounts), MaxMounts) {
		mounts = nil
	}
	targets := map[string]int{}
	for i, m := range mounts {
		mp := fieldIndex(fieldPath(p, "mounts"), i)
		v.oneOf(fieldPath(mp, "type"), m.Type, false, MountTypeBind, MountTypeVolume, MountTypeTmpfs)
		switch {
		case m.Target == "":
			v.addf(fieldPath(mp, "target"), "must not be empty")
		case !isAbsContainerPath(m.Target):
			v.addf(fieldPath(mp, "target"), "must be an absolute path, got %q", m.Target)
		default:
			if j, dup := targets[m.Target]; dup {
				// Docker's rule: two mounts on one path hide each other.
				v.addf(fieldPath(mp, "target"), "duplicate mount point %q (also mounts[%d])", m.Target, j)
			} else {
				targets[m.Target] = i
			}
		}
		switch m.Type {
		case MountTypeBind:
			// A bind mount needs a host path, and a relative one would
			// depend on the agent's working directory.
			if m.Source == "" {
				v.addf(fieldPath(mp, "source"), "must not be empty for a bind mount")
			} else if !isAbsContainerPath(m.Source) {
				v.addf(fieldPath(mp, "source"), "must be an absolute host path for a bind mount, got %q", m.Source)
			}
		case MountTypeTmpfs:
			if m.Source != "" {
				v.addf(fieldPath(mp, "source"), "must be empty for a tmpfs mount, got %q", m.Source)
			}
		}
	}
	if c.StopGracePeriod != nil {
		v.nonNegative(fieldPath(p, "stop_grace_period"), *c.StopGracePeriod)
	}
	v.stopSignal(fieldPath(p, "stop_signal"), c.StopSignal)
}

// args checks that a runtime's command and arguments together stay within
// MaxArgs; the field named is the one that crosses the limit.
func (v *validator) args(p string, command, args []string) {
	if !v.maxItems(fieldPath(p, "command"), len(command), MaxArgs) {
		return
	}
	if n := len(command) + len(args); n > MaxArgs {
		v.addf(fieldPath(p, "args"), "must have at most %d entries with the command's %d, got %d", MaxArgs-len(command), len(command), len(args))
	}
}

func validateProcess(v *validator, p string, s *ProcessSpec) {
	switch {
	case len(s.Command) == 0:
		v.addf(fieldPath(p, "command"), "must not be empty")
	case s.Command[0] == "":
		v.addf(fieldIndex(fieldPath(p, "command"), 0), "must not be empty (it names the program)")
	}
	v.args(p, s.Command, s.Args)
	v.env(fieldPath(p, "env"), s.Env)
	if s.StopGracePeriod != nil {
		v.nonNegative(fieldPath(p, "stop_grace_period"), *s.StopGracePeriod)
	}
	v.stopSignal(fieldPath(p, "stop_signal"), s.StopSignal)
}

// Swarm's smallest accepted amounts: below them a task cannot run, so a
// smaller value is a unit mistake (CPUs for nano-CPUs, MB for bytes).
const (
	minNanoCPUs    = 1_000_000       // 0.001 CPU
	minMemoryBytes = 4 * 1024 * 1024 // 4 MiB
)

func validateResourceRequirements(v *validator, p string, r *ResourceRequirements) {
	if r.Limits != nil {
		validateResources(v, fieldPath(p, "limits"), r.Limits)
	}
	if r.Reservations != nil {
		validateResources(v, fieldPath(p, "reservations"), r.Reservations)
	}
	if r.Limits == nil || r.Reservations == nil {
		return
	}
	// A reservation above the limit could never be used: the task would
	// hold resources it is not allowed to consume.
	if l, res := r.Limits.NanoCPUs, r.Reservations.NanoCPUs; l > 0 && res > l {
		v.addf(fieldPath(p, "reservations.nano_cpus"), "must be <= %s (%d), got %d", fieldPath(p, "limits.nano_cpus"), l, res)
	}
	if l, res := r.Limits.MemoryBytes, r.Reservations.MemoryBytes; l > 0 && res > l {
		v.addf(fieldPath(p, "reservations.memory_bytes"), "must be <= %s (%d), got %d", fieldPath(p, "limits.memory_bytes"), l, res)
	}
}

func validateResources(v *validator, p string, r *Resources) {
	switch n := r.NanoCPUs; {
	case n < 0:
		v.addf(fieldPath(p, "nano_cpus"), "must be >= 0, got %d", n)
	case n > 0 && n < minNanoCPUs:
		v.addf(fieldPath(p, "nano_cpus"), "must be 0 (none) or at least %d (0.001 CPU), got %d", minNanoCPUs, n)
	}
	switch m := r.MemoryBytes; {
	case m < 0:
		v.addf(fieldPath(p, "memory_bytes"), "must be >= 0, got %d", m)
	case m > 0 && m < minMemoryBytes:
		v.addf(fieldPath(p, "memory_bytes"), "must be 0 (none) or at least %d (4MiB), got %d", minMemoryBytes, m)
	}
	generic := r.GenericResources
	if !v.maxItems(fieldPath(p, "generic_resources"), len(generic), MaxGenericResources) {
		generic = nil
	}
	discrete := map[string]int{}
	for i, g := range generic {
		gp := fieldIndex(fieldPath(p, "generic_resources"), i)
		switch {
		case g.NamedResourceSpec == nil && g.DiscreteResourceSpec == nil:
			v.addf(gp, "must set one of named_resource_spec or discrete_resource_spec, got none")
		case g.NamedResourceSpec != nil && g.DiscreteResourceSpec != nil:
			v.addf(gp, "must set exactly one of named_resource_spec or discrete_resource_spec, got both")
		case g.DiscreteResourceSpec != nil:
			d := g.DiscreteResourceSpec
			if d.Kind == "" {
				v.addf(fieldPath(gp, "kind"), "must not be empty")
			} else if j, dup := discrete[d.Kind]; dup {
				// Two counts of one kind: which one holds is unclear.
				v.addf(fieldPath(gp, "kind"), "duplicate discrete resource %q (also generic_resources[%d])", d.Kind, j)
			} else {
				discrete[d.Kind] = i
			}
			if d.Value <= 0 {
				v.addf(fieldPath(gp, "value"), "must be > 0, got %d", d.Value)
			}
		default:
			nr := g.NamedResourceSpec
			if nr.Kind == "" {
				v.addf(fieldPath(gp, "kind"), "must not be empty")
			}
			if nr.Value == "" {
				v.addf(fieldPath(gp, "value"), "must not be empty")
			}
		}
	}
}

func validateRestartPolicy(v *validator, p string, r *RestartPolicy) {
	v.oneOf(fieldPath(p, "condition"), r.Condition, true, RestartConditionNone, RestartConditionOnFailure, RestartConditionAny)
	if r.Delay != nil {
		v.nonNegative(fieldPath(p, "delay"), *r.Delay)
	}
	v.nonNegative(fieldPath(p, "window"), r.Window)
	v.maxCount(fieldPath(p, "max_attempts"), r.MaxAttempts, MaxRestartAttempts)
}

func validatePlacement(v *validator, p string, pl *Placement) {
	v.maxCount(fieldPath(p, "max_replicas"), pl.MaxReplicas, MaxReplicas)
	constraints, prefs, platforms := pl.Constraints, pl.Preferences, pl.Platforms
	if !v.maxItems(fieldPath(p, "constraints"), len(constraints), MaxConstraints) {
		constraints = nil
	}
	if !v.maxItems(fieldPath(p, "preferences"), len(prefs), MaxPreferences) {
		prefs = nil
	}
	if !v.maxItems(fieldPath(p, "platforms"), len(platforms), MaxPlatforms) {
		platforms = nil
	}
	for i, c := range constraints {
		if _, err := ParseConstraint(c); err != nil {
			v.addf(fieldIndex(fieldPath(p, "constraints"), i), "%v", err)
		}
	}
	for i, pref := range prefs {
		pp := fieldPath(fieldIndex(fieldPath(p, "preferences"), i), "spread")
		switch {
		case pref.Spread == nil:
			v.addf(pp, "must be set (spread is the only placement preference)")
		case !validSpreadDescriptor(pref.Spread.SpreadDescriptor):
			v.addf(pp, "must be node.labels.<name> or engine.labels.<name>, got %q", pref.Spread.SpreadDescriptor)
		}
	}
	for i, pf := range platforms {
		// An architecture may be left out (any), an OS may not: a platform
		// entry without one matches nothing a user meant.
		if pf.OS == "" {
			v.addf(fieldPath(fieldIndex(fieldPath(p, "platforms"), i), "os"), "must not be empty")
		}
	}
}

// validSpreadDescriptor accepts what the scheduler can spread over: a node
// or engine label, read as the key of a constraint exactly as the scheduler
// reads it. A prefix check alone accepted "node.labels. " and
// "node.labels.a==b", which the scheduler then refused for ever, leaving
// the tasks pending (found by FuzzPlacementExpressions).
func validSpreadDescriptor(d string) bool {
	c, err := ParseConstraint(d + ConstraintEq + "x")
	return err == nil && (strings.HasPrefix(c.Key, "node.labels.") || strings.HasPrefix(c.Key, "engine.labels."))
}

// Health check test forms.
const (
	healthTestNone     = "NONE"
	healthTestCmd      = "CMD"
	healthTestCmdShell = "CMD-SHELL"
	healthTestHTTP     = "HTTP"
	healthTestTCP      = "TCP"
)

// minHealthDuration is Docker's smallest non-zero health check period.
const minHealthDuration = time.Millisecond

func validateHealthCheck(v *validator, p string, h *HealthConfig, container bool) {
	tp := fieldPath(p, "test")
	switch {
	case !v.maxItems(tp, len(h.Test), MaxArgs):
	case len(h.Test) == 0:
		// Empty means "inherit the image's HEALTHCHECK" in Docker; a
		// process has no image to inherit from.
		if !container {
			v.addf(tp, "must not be empty for a process (there is no image health check to inherit); use [\"NONE\"] to disable")
		}
	case h.Test[0] == healthTestNone:
		if len(h.Test) != 1 {
			v.addf(tp, "must be [\"NONE\"] alone, got %d arguments after NONE", len(h.Test)-1)
		}
	case h.Test[0] == healthTestCmd:
		if len(h.Test) < 2 || h.Test[1] == "" {
			v.addf(tp, "must be [\"CMD\", program, args...] with a program")
		}
	case h.Test[0] == healthTestCmdShell:
		if len(h.Test) != 2 || strings.TrimSpace(h.Test[1]) == "" {
			v.addf(tp, "must be [\"CMD-SHELL\", command] with one non-empty command")
		}
	case h.Test[0] == healthTestHTTP:
		if len(h.Test) != 2 {
			v.addf(tp, "must be [\"HTTP\", url] with one URL")
		} else if u, err := url.Parse(h.Test[1]); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.addf(tp, "must be [\"HTTP\", url] with an http:// or https:// URL, got %q", h.Test[1])
		}
	case h.Test[0] == healthTestTCP:
		if len(h.Test) != 2 {
			v.addf(tp, "must be [\"TCP\", host:port] with one address")
		} else if !validHostPort(h.Test[1]) {
			v.addf(tp, "must be [\"TCP\", host:port] with a port from 1 to 65535, got %q", h.Test[1])
		}
	default:
		v.addf(tp, "must start with NONE, CMD, CMD-SHELL, HTTP or TCP, got %q", h.Test[0])
	}
	for _, d := range []struct {
		field string
		value time.Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}} {
		switch {
		case d.value < 0:
			v.addf(fieldPath(p, d.field), "must be >= 0, got %s", d.value)
		case d.value > 0 && d.value < minHealthDuration:
			// Docker's rule: sub-millisecond periods are a unit mistake.
			v.addf(fieldPath(p, d.field), "must be 0 (default) or at least %s, got %s", minHealthDuration, d.value)
		}
	}
	if h.Retries < 0 {
		v.addf(fieldPath(p, "retries"), "must be >= 0, got %d", h.Retries)
	}
}

// validHostPort accepts "host:port" and ":port" (the task's own address).
func validHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n >= 1
}

func validateNetworkAttachments(v *validator, p string, nets []NetworkAttachmentConfig) {
	if !v.maxItems(p, len(nets), MaxNetworks) {
		return
	}
	seen := map[string]int{}
	for i, n := range nets {
		np := fieldIndex(p, i)
		if n.Target == "" {
			v.addf(fieldPath(np, "target"), "must not be empty")
		} else if j, dup := seen[n.Target]; dup {
			// A task has one address per network.
			v.addf(fieldPath(np, "target"), "duplicate network %q (also networks[%d])", n.Target, j)
		} else {
			seen[n.Target] = i
		}
		if !v.maxItems(fieldPath(np, "aliases"), len(n.Aliases), MaxAliases) {
			continue
		}
		for k, a := range n.Aliases {
			if a == "" {
				v.addf(fieldIndex(fieldPath(np, "aliases"), k), "must not be empty")
			}
		}
	}
}

func validateUpdateConfig(v *validator, p string, u *UpdateConfig, rollback bool) {
	if u == nil {
		return
	}
	v.maxCount(fieldPath(p, "parallelism"), u.Parallelism, MaxReplicas)
	v.nonNegative(fieldPath(p, "delay"), u.Delay)
	v.nonNegative(fieldPath(p, "monitor"), u.Monitor)
	if rollback {
		// A rollback that fails cannot itself be rolled back: there is no
		// earlier spec to return to.
		if u.FailureAction == UpdateFailureActionRollback {
			v.addf(fieldPath(p, "failure_action"), "must be pause or continue (a rollback cannot roll back), got %q", u.FailureAction)
		} else {
			v.oneOf(fieldPath(p, "failure_action"), u.FailureAction, true, UpdateFailureActionPause, UpdateFailureActionContinue)
		}
	} else {
		v.oneOf(fieldPath(p, "failure_action"), u.FailureAction, true,
			UpdateFailureActionPause, UpdateFailureActionContinue, UpdateFailureActionRollback)
	}
	if r := u.MaxFailureRatio; math.IsNaN(r) || r < 0 || r > 1 {
		v.addf(fieldPath(p, "max_failure_ratio"), "must be between 0 and 1, got %g", r)
	}
	v.oneOf(fieldPath(p, "order"), u.Order, true, UpdateOrderStopFirst, UpdateOrderStartFirst)
}

func validateEndpointSpec(v *validator, p string, e *EndpointSpec) {
	if e == nil {
		return
	}
	v.oneOf(fieldPath(p, "mode"), e.Mode, true, ResolutionModeVIP, ResolutionModeDNSRR)
	type published struct {
		port     uint32
		protocol string
	}
	if !v.maxItems(fieldPath(p, "ports"), len(e.Ports), MaxPorts) {
		return
	}
	seen := map[published]int{}
	for i, port := range e.Ports {
		pp := fieldIndex(fieldPath(p, "ports"), i)
		if port.TargetPort < 1 || port.TargetPort > 65535 {
			v.addf(fieldPath(pp, "target_port"), "must be between 1 and 65535, got %d", port.TargetPort)
		}
		if port.PublishedPort > 65535 {
			v.addf(fieldPath(pp, "published_port"), "must be between 0 (any) and 65535, got %d", port.PublishedPort)
		}
		v.oneOf(fieldPath(pp, "protocol"), port.Protocol, true, PortProtocolTCP, PortProtocolUDP, PortProtocolSCTP)
		v.oneOf(fieldPath(pp, "publish_mode"), port.PublishMode, true, PublishModeIngress, PublishModeHost)
		mode := port.PublishMode
		if mode == "" {
			mode = PublishModeIngress
		}
		v.oneOf(fieldPath(pp, "proxy_protocol"), port.ProxyProtocol, true, ProxyProtocolV2)
		if port.ProxyProtocol != "" && port.Protocol != "" && port.Protocol != PortProtocolTCP {
			v.addf(fieldPath(pp, "proxy_protocol"), "must be empty for a %s port (the PROXY protocol header is sent on TCP connections), got %q", port.Protocol, port.ProxyProtocol)
		}
		v.oneOf(fieldPath(pp, "traffic_policy"), port.TrafficPolicy, true, TrafficPolicyCluster, TrafficPolicyLocal)
		if e.Mode == ResolutionModeDNSRR && mode == PublishModeIngress {
			// Docker's rule: the routing mesh balances over a virtual IP,
			// which a DNS round-robin service does not have.
			v.addf(fieldPath(pp, "publish_mode"), "must be host when endpoint_spec.mode is dnsrr (the ingress routing mesh needs a virtual IP), got %q", mode)
		}
		if port.PublishedPort == 0 {
			continue // the allocator picks a free port: no conflict possible
		}
		proto := port.Protocol
		if proto == "" {
			proto = PortProtocolTCP
		}
		key := published{port.PublishedPort, proto}
		if j, dup := seen[key]; dup {
			// Docker's rule: one published port and protocol per service,
			// whatever the publish mode.
			v.addf(fieldPath(pp, "published_port"), "duplicate published port %d/%s (also ports[%d])", port.PublishedPort, proto, j)
		} else {
			seen[key] = i
		}
	}
}

// isAbsContainerPath accepts a Unix absolute path, or a Windows one (C:\ or
// C:/) for Windows containers.
func isAbsContainerPath(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	return len(p) >= 3 && isASCIILetter(p[0]) && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
