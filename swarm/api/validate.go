package api

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ValidationError is one problem of a spec: which object, which field, which
// rule. Validate methods return every problem of a spec joined with
// errors.Join, so the message lists them one per line while
//
//	var ve *api.ValidationError
//	errors.As(err, &ve)
//
// finds the first; ValidationErrors returns them all.
type ValidationError struct {
	// Kind is the object's kind: "service", "node", "cluster", "network",
	// "task" or "task spec".
	Kind string
	// Name is the object's name (or ID when it has no name).
	Name string
	// Field is a short, lower-case, dotted path in the words of the Docker
	// CLI, e.g. "replicas" or "task_template.placement.constraints[1]".
	Field string
	// Problem states the rule and what was found, e.g. "must be >= 0, got -1".
	Problem string
}

// Error returns `<kind> "<name>": <field>: <problem>`, e.g.
// `service "web": replicas: must be >= 0, got -1`. When there is no name
// (a service spec that lacks one, a lone task spec) the quoted name is left
// out rather than printed as "", which reads like a bug.
func (e *ValidationError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("%s: %s: %s", e.Kind, e.Field, e.Problem)
	}
	return fmt.Sprintf("%s %q: %s: %s", e.Kind, e.Name, e.Field, e.Problem)
}

// ValidationErrors returns every *ValidationError in err's tree, in order,
// for callers (the control API, the Docker API layer) that report problems
// one by one.
func ValidationErrors(err error) []*ValidationError {
	var out []*ValidationError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *ValidationError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// validator collects the problems of one object so that a user fixes a spec
// in one round instead of one error per attempt.
type validator struct {
	kind, name string
	errs       []error
}

func (v *validator) addf(field, format string, args ...any) {
	v.errs = append(v.errs, &ValidationError{
		Kind:    v.kind,
		Name:    v.name,
		Field:   field,
		Problem: fmt.Sprintf(format, args...),
	})
}

func (v *validator) err() error { return errors.Join(v.errs...) }

// fieldPath joins a field to its parent's path.
func fieldPath(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}

// fieldIndex names element i of a list field.
func fieldIndex(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// maxNameLength is Swarm's limit, which is also a DNS label's: service names
// become DNS names on the cluster's networks.
const maxNameLength = 63

// namePattern is a DNS-label-like name, the form service and network names
// must take so they resolve in the cluster's DNS.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (v *validator) checkName(field, name string) {
	switch {
	case name == "":
		v.addf(field, "must not be empty")
	case len(name) > maxNameLength:
		v.addf(field, "must be at most %d characters, got %d", maxNameLength, len(name))
	case !namePattern.MatchString(name):
		v.addf(field, "must start with a letter or digit and contain only letters, digits, '_', '.' and '-', got %q", name)
	}
}

// labels checks label keys; values are free text. Keys are visited in order
// so the same spec always gives the same message.
func (v *validator) labels(field string, labels map[string]string) {
	if !v.maxItems(field, len(labels), MaxLabels) {
		return
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.TrimSpace(k) == "" {
			v.addf(field, "keys must not be empty, got %q", k)
		}
	}
}

func (v *validator) nonNegative(field string, d time.Duration) {
	if d < 0 {
		v.addf(field, "must be >= 0, got %s", d)
	}
}

// oneOf checks an enumerated string. allowEmpty is for fields whose empty
// value means "the default" (ApplyDefaults fills it in).
func (v *validator) oneOf(field, got string, allowEmpty bool, want ...string) {
	if got == "" && allowEmpty {
		return
	}
	for _, w := range want {
		if got == w {
			return
		}
	}
	v.addf(field, "must be %s, got %q", orList(want), got)
}

// orList writes "a, b or c".
func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// env checks KEY=VALUE entries: a KEY is needed for the entry to mean
// anything, and an entry without '=' is a common mistake (a flag pasted
// into the list).
func (v *validator) env(field string, env []string) {
	if !v.maxItems(field, len(env), MaxEnv) {
		return
	}
	for i, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || strings.TrimSpace(k) == "" {
			v.addf(fieldIndex(field, i), "must be KEY=VALUE with a non-empty KEY, got %q", e)
		}
	}
}

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

// Validate checks the service's spec (the rest is the system's own).
func (s *Service) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "service", Field: "service", Problem: "must not be nil"}
	}
	return s.Spec.Validate()
}

// Validate checks a node spec.
func (s *NodeSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "node", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "node", name: s.Name}
	s.validate(v)
	return v.err()
}

func (s *NodeSpec) validate(v *validator) {
	// A node's name is optional (Docker shows the hostname instead), so
	// only its labels are checked.
	v.labels("labels", s.Labels)
	v.oneOf("role", string(s.Role), false, string(NodeRoleWorker), string(NodeRoleManager))
	v.oneOf("availability", string(s.Availability), false,
		string(NodeAvailabilityActive), string(NodeAvailabilityPause), string(NodeAvailabilityDrain))
	v.specBytes("spec", s)
}

// Validate checks the node's spec; problems name the node by its spec name,
// or by its ID when it has none.
func (n *Node) Validate() error {
	if n == nil {
		return &ValidationError{Kind: "node", Field: "node", Problem: "must not be nil"}
	}
	name := n.Spec.Name
	if name == "" {
		name = n.ID
	}
	v := &validator{kind: "node", name: name}
	n.Spec.validate(v)
	return v.err()
}

// minNodeCertExpiry is Swarm's shortest node certificate lifetime: shorter
// ones would be renewed almost continuously.
const minNodeCertExpiry = time.Hour

// Validate checks the cluster spec.
func (s *ClusterSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "cluster", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "cluster", name: s.Name}
	v.checkName("name", s.Name)
	v.labels("labels", s.Labels)
	switch r := s.Orchestration.TaskHistoryRetentionLimit; {
	case r < 0:
		v.addf("orchestration.task_history_retention_limit", "must be >= 0, got %d", r)
	case r > MaxTaskHistoryRetention:
		v.addf("orchestration.task_history_retention_limit", "must be <= %d, got %d", MaxTaskHistoryRetention, r)
	}
	if p := s.Dispatcher.HeartbeatPeriod; p != 0 && (p < MinHeartbeatPeriod || p > MaxHeartbeatPeriod) {
		v.addf("dispatcher.heartbeat_period", "must be 0 (adaptive) or between %s and %s, got %s", MinHeartbeatPeriod, MaxHeartbeatPeriod, p)
	}
	if e := s.CAConfig.NodeCertExpiry; e != 0 && (e < minNodeCertExpiry || e > MaxNodeCertExpiry) {
		v.addf("ca_config.node_cert_expiry", "must be 0 (default %s) or between %s and %s, got %s", DefaultNodeCertExpiry, minNodeCertExpiry, MaxNodeCertExpiry, e)
	}
	if r := s.Gossip.KeyRotation; r != 0 && (r < MinGossipKeyRotation || r > MaxGossipKeyRotation) {
		v.addf("gossip.key_rotation", "must be 0 (default %s) or between %s and %s, got %s", DefaultGossipKeyRotation, MinGossipKeyRotation, MaxGossipKeyRotation, r)
	}
	validateAddrPool(v, "network", s.Network)
	v.specBytes("spec", s)
	return v.err()
}

// Validate checks the cluster's spec.
func (c *Cluster) Validate() error {
	if c == nil {
		return &ValidationError{Kind: "cluster", Field: "cluster", Problem: "must not be nil"}
	}
	return c.Spec.Validate()
}

// driverPattern is a network driver name, including a plugin reference such
// as "vendor/driver:tag".
var driverPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:/-]*$`)

// Validate checks a network spec.
func (s *NetworkSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "network", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "network", name: s.Name}
	v.checkName("name", s.Name)
	v.labels("labels", s.Labels)
	if s.Driver != "" && !driverPattern.MatchString(s.Driver) {
		v.addf("driver", "must be a driver name such as overlay, got %q", s.Driver)
	}
	if s.Ingress {
		// Swarm's rules: the routing mesh is an overlay, and it carries
		// only published ports, never stand-alone containers.
		if s.Driver != "" && s.Driver != "overlay" {
			v.addf("driver", "must be overlay for an ingress network, got %q", s.Driver)
		}
		if s.Attachable {
			v.addf("attachable", "must be false for an ingress network")
		}
	}
	if s.IPAM != nil {
		validateIPAM(v, "ipam", s.IPAM)
	}
	v.specBytes("spec", s)
	return v.err()
}

// validateAddrPool checks the cluster's address pools: IPv4 network
// addresses that do not overlap, each at least as large as the subnets cut
// from it.
func validateAddrPool(v *validator, p string, c NetworkConfig) {
	size := c.Size()
	if c.SubnetSize != 0 && (size < MinSubnetBits || size > MaxSubnetBits) {
		v.addf(fieldPath(p, "subnet_size"), "must be 0 (default %d) or between %d and %d, got %d", DefaultSubnetSize, MinSubnetBits, MaxSubnetBits, c.SubnetSize)
		return
	}
	if !v.maxItems(fieldPath(p, "default_addr_pool"), len(c.DefaultAddrPool), MaxAddrPools) {
		return
	}
	var pools []netip.Prefix
	for i, s := range c.DefaultAddrPool {
		f := fieldIndex(fieldPath(p, "default_addr_pool"), i)
		pool, err := netip.ParsePrefix(s)
		switch {
		case err != nil || !pool.Addr().Is4():
			v.addf(f, "must be an IPv4 CIDR such as 10.0.0.0/8, got %q", s)
			continue
		case pool.Masked() != pool:
			v.addf(f, "must be a network address, %s rather than %s", pool.Masked(), s)
			continue
		case pool.Bits() > size:
			v.addf(f, "must be at least as large as the subnets cut from it (/%d), got %s", size, s)
			continue
		}
		for j, q := range pools {
			if q.Overlaps(pool) {
				v.addf(f, "overlaps default_addr_pool[%d] %s, got %s", j, q, s)
			}
		}
		pools = append(pools, pool)
	}
}

func validateIPAM(v *validator, p string, c *IPAMConfig) {
	if c.Subnet == "" {
		if c.Gateway != "" {
			v.addf(fieldPath(p, "gateway"), "needs %s to be set", fieldPath(p, "subnet"))
		}
		return // the allocator chooses the subnet
	}
	prefix, err := netip.ParsePrefix(c.Subnet)
	switch {
	case err != nil:
		v.addf(fieldPath(p, "subnet"), "must be an IPv4 CIDR such as 10.0.1.0/24, got %q", c.Subnet)
		return
	case !prefix.Addr().Is4():
		v.addf(fieldPath(p, "subnet"), "must be an IPv4 CIDR such as 10.0.1.0/24, got %q", c.Subnet)
		return
	case prefix.Masked() != prefix:
		// Host bits set are almost always a typo for another subnet.
		v.addf(fieldPath(p, "subnet"), "must be a network address, %s rather than %s", prefix.Masked(), c.Subnet)
		return
	case prefix.Bits() < MinSubnetBits || prefix.Bits() > MaxSubnetBits:
		v.addf(fieldPath(p, "subnet"), "must have a prefix length between /%d and /%d, got %s", MinSubnetBits, MaxSubnetBits, c.Subnet)
		return
	case prefix.Addr().IsLoopback() || prefix.Addr().IsMulticast() || prefix.Addr().IsUnspecified():
		v.addf(fieldPath(p, "subnet"), "must not be a loopback, multicast or unspecified range, got %s", c.Subnet)
		return
	}
	if c.Gateway == "" {
		return
	}
	gw, err := netip.ParseAddr(c.Gateway)
	switch {
	case err != nil || !gw.Is4():
		v.addf(fieldPath(p, "gateway"), "must be an IPv4 address, got %q", c.Gateway)
	case !prefix.Contains(gw):
		v.addf(fieldPath(p, "gateway"), "must be inside subnet %s, got %s", prefix, gw)
	case prefix.Bits() < 31 && (gw == prefix.Addr() || gw == lastAddr(prefix)):
		v.addf(fieldPath(p, "gateway"), "must be a host address of subnet %s, not its network or broadcast address, got %s", prefix, gw)
	}
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= host
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// Validate checks the network's spec.
func (n *Network) Validate() error {
	if n == nil {
		return &ValidationError{Kind: "network", Field: "network", Problem: "must not be nil"}
	}
	return n.Spec.Validate()
}

// Validate checks a task: its identity fields, its states and its spec
// (fields "spec.…"). Problems name the task by Name, or by ID.
func (t *Task) Validate() error {
	if t == nil {
		return &ValidationError{Kind: "task", Field: "task", Problem: "must not be nil"}
	}
	name := t.Name
	if name == "" {
		name = t.ID
	}
	v := &validator{kind: "task", name: name}
	if t.ServiceID == "" {
		v.addf("service_id", "must not be empty")
	}
	if t.Slot == 0 && t.NodeID == "" {
		// A replicated task lives in a slot, a global one on a node; with
		// neither the orchestrator cannot tell what the task replaces.
		v.addf("slot", "must be > 0 when node_id is empty (replicated tasks have a slot, global tasks a node)")
	}
	if !validTaskState(t.DesiredState) {
		v.addf("desired_state", "must be a task state, got %d", int(t.DesiredState))
	}
	if !validTaskState(t.Status.State) {
		v.addf("status.state", "must be a task state, got %d", int(t.Status.State))
	}
	validateTaskSpec(v, "spec", &t.Spec)
	return v.err()
}

func validTaskState(s TaskState) bool { return s >= 0 && int(s) < len(taskStateNames) }

// isAbsContainerPath accepts a Unix absolute path, or a Windows one (C:\ or
// C:/) for Windows containers.
func isAbsContainerPath(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	return len(p) >= 3 && isASCIILetter(p[0]) && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// Image references follow the grammar of Docker's distribution/reference:
// [host[:port]/]path-component[/path-component...][:tag][@digest], where
// path components are lower-case and the first component is a registry
// host only when it looks like one (has '.' or ':', or is localhost, or has
// upper case, which a path component cannot).
var (
	refHostComponent = regexp.MustCompile(`^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$`)
	refPort          = regexp.MustCompile(`^[0-9]+$`)
	refIPv6Host      = regexp.MustCompile(`^\[[0-9a-fA-F:.]+\]$`)
	refPathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	refTag           = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	refDigest        = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$`)
)

// maxImageNameLength is the reference grammar's limit on the name part.
const maxImageNameLength = 255

// validImageReference reports whether ref is a plausible image reference.
func validImageReference(ref string) bool {
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !refDigest.MatchString(digest) {
		return false
	}
	// A tag is after the last ':' that follows the last '/', so that a
	// registry port ("host:5000/app") is not taken for one.
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		if !refTag.MatchString(name[i+1:]) {
			return false
		}
		name = name[:i]
	}
	if name == "" || len(name) > maxImageNameLength {
		return false
	}
	parts := strings.Split(name, "/")
	if len(parts) > 1 && looksLikeRegistry(parts[0]) {
		if !validRegistryHost(parts[0]) {
			return false
		}
		parts = parts[1:]
	}
	for _, c := range parts {
		if !refPathComponent.MatchString(c) {
			return false
		}
	}
	return true
}

func looksLikeRegistry(s string) bool {
	return strings.ContainsAny(s, ".:[") || s == "localhost" || strings.ToLower(s) != s
}

func validRegistryHost(s string) bool {
	host := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 && i > strings.LastIndexByte(s, ']') {
		if !refPort.MatchString(s[i+1:]) {
			return false
		}
		host = s[:i]
	}
	if refIPv6Host.MatchString(host) {
		return true
	}
	for _, c := range strings.Split(host, ".") {
		if !refHostComponent.MatchString(c) {
			return false
		}
	}
	return true
}
