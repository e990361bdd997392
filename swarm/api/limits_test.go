package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

// words returns n distinct strings made by f from 0..n-1.
func words(n int, f func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// labelMap returns n labels k0=v .. k<n-1>=v.
func labelMap(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

// templateBytes is the size the bound on replicas × template uses.
func templateBytes(s *ServiceSpec) int {
	b, err := json.Marshal(s.TaskTemplate)
	if err != nil {
		panic(err)
	}
	return len(b)
}

// limitRules are the rules of limits.go, one row per bound: the bad
// variant is one past it, the good one exactly at it (each is a whole
// service spec, run through TestServiceSpecRules).
func limitRules() []ruleCase {
	tt := func(s *ServiceSpec) *TaskSpec { return &s.TaskTemplate }
	ctr := func(s *ServiceSpec) *ContainerSpec { return s.TaskTemplate.Container }
	pl := func(s *ServiceSpec) *Placement { return s.TaskTemplate.Placement }
	job := func(s *ServiceSpec, concurrent, total int64) {
		s.Mode = ServiceMode{ReplicatedJob: &ReplicatedJob{MaxConcurrent: concurrent, TotalCompletions: total}}
		s.UpdateConfig, s.RollbackConfig = nil, nil
	}
	replicas := func(n int64) func(*ServiceSpec) { return func(s *ServiceSpec) { s.Mode.Replicated.Replicas = n } }
	// big makes the template about n bytes with one long environment
	// entry, so that replicas × template crosses its bound.
	big := func(s *ServiceSpec, n int) {
		ctr(s).Env = append(ctr(s).Env, "BIG="+strings.Repeat("x", n))
	}
	// atProduct sets the replicas to the largest the template allows,
	// plus extra.
	atProduct := func(n int, extra int64) func(*ServiceSpec) {
		return func(s *ServiceSpec) {
			big(s, n)
			s.Mode.Replicated.Replicas = int64(MaxTemplateBytesTimesReplicas/templateBytes(s)) + extra
		}
	}
	mounts := func(n int) func(*ServiceSpec) {
		return func(s *ServiceSpec) {
			ctr(s).Mounts = make([]Mount, n)
			for i := range n {
				ctr(s).Mounts[i] = Mount{Type: MountTypeTmpfs, Target: fmt.Sprintf("/m%d", i)}
			}
		}
	}
	ports := func(n int) func(*ServiceSpec) {
		return func(s *ServiceSpec) {
			s.EndpointSpec.Ports = make([]PortConfig, n)
			for i := range n {
				s.EndpointSpec.Ports[i] = PortConfig{TargetPort: 80}
			}
		}
	}
	platforms := func(n int) func(*ServiceSpec) {
		return func(s *ServiceSpec) {
			pl(s).Platforms = make([]Platform, n)
			for i := range n {
				pl(s).Platforms[i] = Platform{OS: "linux", Architecture: fmt.Sprintf("arch%d", i)}
			}
		}
	}
	prefs := func(n int) func(*ServiceSpec) {
		return func(s *ServiceSpec) {
			pl(s).Preferences = make([]PlacementPreference, n)
			for i := range n {
				pl(s).Preferences[i] = PlacementPreference{Spread: &SpreadOver{SpreadDescriptor: fmt.Sprintf("node.labels.l%d", i)}}
			}
		}
	}
	generic := func(n int) func(*ServiceSpec) {
		return func(s *ServiceSpec) {
			g := make([]GenericResource, n)
			for i := range n {
				g[i] = GenericResource{DiscreteResourceSpec: &DiscreteGenericResource{Kind: fmt.Sprintf("k%d", i), Value: 1}}
			}
			tt(s).Resources.Reservations.GenericResources = g
		}
	}
	networks := func(n int) func(*ServiceSpec) {
		return func(s *ServiceSpec) {
			tt(s).Networks = make([]NetworkAttachmentConfig, n)
			for i := range n {
				tt(s).Networks[i] = NetworkAttachmentConfig{Target: fmt.Sprintf("net%d", i)}
			}
		}
	}
	aliases := func(n int) func(*ServiceSpec) {
		return func(s *ServiceSpec) {
			tt(s).Networks[0].Aliases = words(n, func(i int) string { return fmt.Sprint("a", i) })
		}
	}
	env := func(n int) []string { return words(n, func(i int) string { return fmt.Sprintf("K%d=v", i) }) }
	args := func(n int) []string { return words(n, func(i int) string { return fmt.Sprint("arg", i) }) }
	return []ruleCase{
		// Counts of tasks.
		{"replicas a billion", replicas(1_000_000_000),
			"replicas", "must be <= 100000, got 1000000000", replicas(MaxReplicas)},
		{"replicas one past the limit", replicas(MaxReplicas + 1),
			"replicas", "must be <= 100000, got 100001", replicas(MaxReplicas)},
		{"job max concurrent", func(s *ServiceSpec) { job(s, MaxReplicas+1, MaxReplicas) },
			"max_concurrent", "must be <= 100000, got 100001", func(s *ServiceSpec) { job(s, MaxReplicas, MaxReplicas) }},
		{"job total completions", func(s *ServiceSpec) { job(s, 1, MaxReplicas+1) },
			"total_completions", "must be <= 100000, got 100001", func(s *ServiceSpec) { job(s, 1, MaxReplicas) }},
		{"placement max replicas", func(s *ServiceSpec) { pl(s).MaxReplicas = MaxReplicas + 1 },
			"task_template.placement.max_replicas", "must be <= 100000, got 100001", func(s *ServiceSpec) { pl(s).MaxReplicas = MaxReplicas }},
		{"update parallelism", func(s *ServiceSpec) { s.UpdateConfig.Parallelism = MaxReplicas + 1 },
			"update_config.parallelism", "must be <= 100000, got 100001", func(s *ServiceSpec) { s.UpdateConfig.Parallelism = MaxReplicas }},
		{"rollback parallelism", func(s *ServiceSpec) { s.RollbackConfig.Parallelism = 1 << 40 },
			"rollback_config.parallelism", "must be <= 100000, got 1099511627776", func(s *ServiceSpec) { s.RollbackConfig.Parallelism = 0 }},
		{"restart max attempts", func(s *ServiceSpec) { tt(s).RestartPolicy.MaxAttempts = MaxRestartAttempts + 1 },
			"task_template.restart_policy.max_attempts", "must be <= 100, got 101",
			func(s *ServiceSpec) { tt(s).RestartPolicy.MaxAttempts = MaxRestartAttempts }},

		// Sizes.
		{"replicas times template", atProduct(8<<10, 1),
			"replicas", "must be <= ", atProduct(8<<10, 0)},
		{"job completions times template", func(s *ServiceSpec) {
			big(s, 8<<10)
			job(s, 1, int64(MaxTemplateBytesTimesReplicas/templateBytes(s))+1)
		}, "total_completions", "must be <= ", func(s *ServiceSpec) {
			big(s, 8<<10)
			job(s, 1, int64(MaxTemplateBytesTimesReplicas/templateBytes(s)))
		}},
		{"spec too large", func(s *ServiceSpec) { s.Labels["big"] = strings.Repeat("x", MaxSpecBytes) },
			"spec", "must encode to at most 131072 bytes of JSON, got ",
			func(s *ServiceSpec) { s.Labels["big"] = strings.Repeat("x", MaxSpecBytes-4<<10) }},

		// Lists.
		{"service labels", func(s *ServiceSpec) { s.Labels = labelMap(MaxLabels + 1) },
			"labels", "must have at most 1000 entries, got 1001", func(s *ServiceSpec) { s.Labels = labelMap(MaxLabels) }},
		{"container labels", func(s *ServiceSpec) { ctr(s).Labels = labelMap(MaxLabels + 1) },
			"task_template.container.labels", "must have at most 1000 entries, got 1001",
			func(s *ServiceSpec) { ctr(s).Labels = labelMap(MaxLabels) }},
		{"container env count", func(s *ServiceSpec) { ctr(s).Env = append(env(MaxEnv), "bad") },
			"task_template.container.env", "must have at most 1000 entries, got 1001", func(s *ServiceSpec) { ctr(s).Env = env(MaxEnv) }},
		{"process env", func(s *ServiceSpec) { toProcess(s); tt(s).Process.Env = env(MaxEnv + 1) },
			"task_template.process.env", "must have at most 1000 entries, got 1001",
			func(s *ServiceSpec) { toProcess(s); tt(s).Process.Env = env(MaxEnv) }},
		{"process command", func(s *ServiceSpec) { toProcess(s); tt(s).Process.Command = args(MaxArgs + 1) },
			"task_template.process.command", "must have at most 1000 entries, got 1001",
			func(s *ServiceSpec) { toProcess(s); tt(s).Process.Command = args(MaxArgs) }},
		{"process args with the command", func(s *ServiceSpec) {
			toProcess(s)
			tt(s).Process.Command, tt(s).Process.Args = args(2), args(MaxArgs-1)
		}, "task_template.process.args", "must have at most 998 entries with the command's 2, got 999", func(s *ServiceSpec) {
			toProcess(s)
			tt(s).Process.Command, tt(s).Process.Args = args(2), args(MaxArgs-2)
		}},
		{"container args", func(s *ServiceSpec) { ctr(s).Args = args(MaxArgs) },
			"task_template.container.args", "must have at most 999 entries with the command's 1, got 1000",
			func(s *ServiceSpec) { ctr(s).Args = args(MaxArgs - 1) }},
		{"mounts", mounts(MaxMounts + 1),
			"task_template.container.mounts", "must have at most 1000 entries, got 1001", mounts(MaxMounts)},
		{"published ports", ports(MaxPorts + 1),
			"endpoint_spec.ports", "must have at most 1000 entries, got 1001", ports(MaxPorts)},
		{"constraints", func(s *ServiceSpec) {
			pl(s).Constraints = words(MaxConstraints+1, func(int) string { return "node.role==worker" })
		},
			"task_template.placement.constraints", "must have at most 100 entries, got 101",
			func(s *ServiceSpec) {
				pl(s).Constraints = words(MaxConstraints, func(int) string { return "node.role==worker" })
			}},
		{"preferences", prefs(MaxPreferences + 1),
			"task_template.placement.preferences", "must have at most 10 entries, got 11", prefs(MaxPreferences)},
		{"platforms", platforms(MaxPlatforms + 1),
			"task_template.placement.platforms", "must have at most 100 entries, got 101", platforms(MaxPlatforms)},
		{"generic resources", generic(MaxGenericResources + 1),
			"task_template.resources.reservations.generic_resources", "must have at most 100 entries, got 101", generic(MaxGenericResources)},
		{"networks", networks(MaxNetworks + 1),
			"task_template.networks", "must have at most 100 entries, got 101", networks(MaxNetworks)},
		{"aliases", aliases(MaxAliases + 1),
			"task_template.networks[0].aliases", "must have at most 100 entries, got 101", aliases(MaxAliases)},
		{"health check test", func(s *ServiceSpec) { tt(s).HealthCheck.Test = append([]string{"CMD"}, args(MaxArgs)...) },
			"task_template.health_check.test", "must have at most 1000 entries, got 1001",
			func(s *ServiceSpec) { tt(s).HealthCheck.Test = append([]string{"CMD"}, args(MaxArgs-1)...) }},
	}
}

// TestReplicasTimesTemplateMessage: the product's message says the bound
// for this template, the template's size and why.
func TestReplicasTimesTemplateMessage(t *testing.T) {
	s := goodService()
	s.TaskTemplate.Container.Env = []string{"BIG=" + strings.Repeat("x", 16<<10)}
	s.Mode.Replicated.Replicas = MaxReplicas
	n := templateBytes(&s)
	want := fmt.Sprintf(`service "web": replicas: must be <= %d for a task template of %d bytes (replicas × template at most 512 MiB), got 100000`,
		MaxTemplateBytesTimesReplicas/n, n)
	if err := s.Validate(); err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// TestLimitsRefuseHugeListsOnce: a list far beyond its bound gives one
// problem, not one per bad item.
func TestLimitsRefuseHugeListsOnce(t *testing.T) {
	s := goodService()
	s.TaskTemplate.Container.Env = words(200_000, func(int) string { return "not-key-value" })
	err := s.Validate()
	if n := len(ValidationErrors(err)); n != 2 {
		t.Fatalf("%d problems, want 2 (the count and the spec size):\n%.500v", n, err)
	}
	for _, want := range []string{
		`service "web": task_template.container.env: must have at most 1000 entries, got 200000`,
		`service "web": spec: must encode to at most 131072 bytes of JSON, got `,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%.500v\ndoes not say %s", err, want)
		}
	}
}

func TestOtherSpecLimits(t *testing.T) {
	huge := strings.Repeat("x", MaxSpecBytes)
	for _, tc := range []struct {
		name      string
		bad, good func() error
		want      string
	}{
		{"cluster retention",
			func() error {
				s := DefaultClusterSpec()
				s.Orchestration.TaskHistoryRetentionLimit = MaxTaskHistoryRetention + 1
				return s.Validate()
			},
			func() error {
				s := DefaultClusterSpec()
				s.Orchestration.TaskHistoryRetentionLimit = MaxTaskHistoryRetention
				return s.Validate()
			},
			`cluster "default": orchestration.task_history_retention_limit: must be <= 100, got 101`},
		{"cluster size",
			func() error { s := DefaultClusterSpec(); s.Labels = map[string]string{"k": huge}; return s.Validate() },
			func() error {
				s := DefaultClusterSpec()
				s.Labels = map[string]string{"k": huge[:MaxSpecBytes-1024]}
				return s.Validate()
			},
			`cluster "default": spec: must encode to at most 131072 bytes of JSON, got 131`},
		{"cluster labels",
			func() error { s := DefaultClusterSpec(); s.Labels = labelMap(MaxLabels + 1); return s.Validate() },
			func() error { s := DefaultClusterSpec(); s.Labels = labelMap(MaxLabels); return s.Validate() },
			`cluster "default": labels: must have at most 1000 entries, got 1001`},
		{"node labels",
			func() error {
				return (&NodeSpec{Role: NodeRoleWorker, Availability: NodeAvailabilityActive, Annotations: Annotations{Name: "n1", Labels: labelMap(MaxLabels + 1)}}).Validate()
			},
			func() error {
				return (&NodeSpec{Role: NodeRoleWorker, Availability: NodeAvailabilityActive, Annotations: Annotations{Name: "n1", Labels: labelMap(MaxLabels)}}).Validate()
			},
			`node "n1": labels: must have at most 1000 entries, got 1001`},
		{"node size",
			func() error {
				return (&NodeSpec{Role: NodeRoleWorker, Availability: NodeAvailabilityActive, Annotations: Annotations{Name: "n1", Labels: map[string]string{"k": huge}}}).Validate()
			},
			func() error {
				return (&NodeSpec{Role: NodeRoleWorker, Availability: NodeAvailabilityActive, Annotations: Annotations{Name: "n1", Labels: map[string]string{"k": huge[:1000]}}}).Validate()
			},
			`node "n1": spec: must encode to at most 131072 bytes of JSON, got 131`},
		{"network labels",
			func() error {
				return (&NetworkSpec{Annotations: Annotations{Name: "front", Labels: labelMap(MaxLabels + 1)}}).Validate()
			},
			func() error {
				return (&NetworkSpec{Annotations: Annotations{Name: "front", Labels: labelMap(MaxLabels)}}).Validate()
			},
			`network "front": labels: must have at most 1000 entries, got 1001`},
		{"network size",
			func() error {
				return (&NetworkSpec{Annotations: Annotations{Name: "front", Labels: map[string]string{"k": huge}}}).Validate()
			},
			func() error {
				return (&NetworkSpec{Annotations: Annotations{Name: "front", Labels: map[string]string{"k": "v"}}}).Validate()
			},
			`network "front": spec: must encode to at most 131072 bytes of JSON, got 131`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.good(); err != nil {
				t.Errorf("at the limit: %v", err)
			}
			err := tc.bad()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || len(ValidationErrors(err)) != 1 {
				t.Errorf("got %.300v\nwant one problem: %s", err, tc.want)
			}
		})
	}
}

// TestTaskSpecListLimits: a lone task spec (Task.Validate, TaskSpec.Validate)
// has the same list bounds, with paths relative to it.
func TestTaskSpecListLimits(t *testing.T) {
	s := goodService().TaskTemplate
	s.Placement.Constraints = make([]string, MaxConstraints+1)
	err := s.Validate()
	if err == nil || err.Error() != "task spec: placement.constraints: must have at most 100 entries, got 101" {
		t.Fatalf("got %v", err)
	}
}

// jsonSize is the length json.Marshal gives, escapes and all, and fails
// where json.Marshal fails.
func TestJSONSizeIsMarshalsLength(t *testing.T) {
	for _, x := range []any{
		ServiceSpec{},
		ServiceSpec{Annotations: Annotations{Name: "web", Labels: map[string]string{"a<b": "c&d>", "é": "\u2028 \"q\""}}},
		&ServiceSpec{TaskTemplate: TaskSpec{Process: &ProcessSpec{Command: []string{"app", "--flag=<x>"}}}},
		map[string]any{"n": 1.5, "s": []string{"", "x"}},
		nil,
	} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		n, err := jsonSize(x)
		if err != nil || n != len(b) {
			t.Errorf("jsonSize(%#v) = %d, %v; json.Marshal gives %d bytes", x, n, err, len(b))
		}
	}
	if _, err := jsonSize(math.NaN()); err == nil {
		t.Error("jsonSize(NaN): no error, json.Marshal refuses it")
	}
}
