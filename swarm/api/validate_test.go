package api

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func durPtr(d time.Duration) *time.Duration { return &d }

// goodService is a valid spec that sets nearly every field, so that each
// table row below breaks exactly one rule of an otherwise valid spec.
func goodService() ServiceSpec {
	return ServiceSpec{
		Annotations: Annotations{Name: "web", Labels: map[string]string{"tier": "front"}},
		Mode:        ServiceMode{Replicated: &ReplicatedService{Replicas: 3}},
		TaskTemplate: TaskSpec{
			Container: &ContainerSpec{
				Image:   "nginx:1.27",
				Labels:  map[string]string{"app": "web"},
				Command: []string{"nginx"},
				Args:    []string{"-g", "daemon off;"},
				Env:     []string{"A=1", "B="},
				Dir:     "/srv",
				User:    "nginx",
				Mounts: []Mount{
					{Type: MountTypeVolume, Source: "data", Target: "/data"},
					{Type: MountTypeBind, Source: "/etc/ssl", Target: "/ssl", ReadOnly: true},
					{Type: MountTypeTmpfs, Target: "/tmp"},
				},
				StopGracePeriod: durPtr(10 * time.Second),
			},
			Resources: &ResourceRequirements{
				Limits: &Resources{NanoCPUs: 2e9, MemoryBytes: 512 << 20},
				Reservations: &Resources{NanoCPUs: 1e9, MemoryBytes: 256 << 20, GenericResources: []GenericResource{
					{DiscreteResourceSpec: &DiscreteGenericResource{Kind: "gpu", Value: 1}},
					{NamedResourceSpec: &NamedGenericResource{Kind: "fpga", Value: "fpga-1"}},
				}},
			},
			RestartPolicy: &RestartPolicy{Condition: RestartConditionOnFailure, Delay: durPtr(5 * time.Second), MaxAttempts: 3, Window: time.Minute},
			Placement: &Placement{
				Constraints: []string{"node.role==worker", "node.labels.zone!=b"},
				Preferences: []PlacementPreference{{Spread: &SpreadOver{SpreadDescriptor: "node.labels.dc"}}},
				MaxReplicas: 2,
				Platforms:   []Platform{{OS: "linux", Architecture: "amd64"}},
			},
			HealthCheck: &HealthConfig{
				Test:     []string{"CMD", "curl", "-f", "http://localhost/"},
				Interval: 10 * time.Second, Timeout: 2 * time.Second, StartPeriod: 5 * time.Second, Retries: 3,
			},
			Networks: []NetworkAttachmentConfig{{Target: "front", Aliases: []string{"www"}}, {Target: "back"}},
		},
		UpdateConfig: &UpdateConfig{
			Parallelism: 2, Delay: 10 * time.Second, FailureAction: UpdateFailureActionRollback,
			Monitor: 30 * time.Second, MaxFailureRatio: 0.2, Order: UpdateOrderStartFirst,
		},
		RollbackConfig: &UpdateConfig{
			Parallelism: 1, FailureAction: UpdateFailureActionPause, Monitor: 5 * time.Second, Order: UpdateOrderStopFirst,
		},
		EndpointSpec: &EndpointSpec{Mode: ResolutionModeVIP, Ports: []PortConfig{
			{Name: "http", Protocol: PortProtocolTCP, TargetPort: 80, PublishedPort: 8080, PublishMode: PublishModeIngress},
			{Name: "dns", Protocol: PortProtocolUDP, TargetPort: 53, PublishedPort: 53, PublishMode: PublishModeHost},
		}},
	}
}

// toProcess swaps the container runtime for a valid process one.
func toProcess(s *ServiceSpec) {
	s.TaskTemplate.Container = nil
	s.TaskTemplate.Process = &ProcessSpec{
		Command:         []string{"/usr/bin/app", "--port", "8080"},
		Env:             []string{"A=1", "B=2"},
		Dir:             "work",
		StopGracePeriod: durPtr(time.Second),
	}
}

type ruleCase struct {
	name    string
	bad     func(*ServiceSpec)
	field   string
	problem string // the exact problem text, or a prefix of it
	// good is a variant close to bad that is valid: the rule's boundary.
	good func(*ServiceSpec)
}

func rules() []ruleCase {
	tt := func(s *ServiceSpec) *TaskSpec { return &s.TaskTemplate }
	ctr := func(s *ServiceSpec) *ContainerSpec { return s.TaskTemplate.Container }
	res := func(s *ServiceSpec) *ResourceRequirements { return s.TaskTemplate.Resources }
	hc := func(s *ServiceSpec) *HealthConfig { return s.TaskTemplate.HealthCheck }
	pl := func(s *ServiceSpec) *Placement { return s.TaskTemplate.Placement }
	ep := func(s *ServiceSpec) *EndpointSpec { return s.EndpointSpec }
	port := func(s *ServiceSpec, i int) *PortConfig { return &s.EndpointSpec.Ports[i] }
	job := func(s *ServiceSpec) {
		s.Mode = ServiceMode{ReplicatedJob: &ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 10}}
		s.UpdateConfig, s.RollbackConfig = nil, nil
	}
	generic := func(s *ServiceSpec, g ...GenericResource) { res(s).Reservations.GenericResources = g }
	discrete := func(kind string, v int64) GenericResource {
		return GenericResource{DiscreteResourceSpec: &DiscreteGenericResource{Kind: kind, Value: v}}
	}
	named := func(kind, v string) GenericResource {
		return GenericResource{NamedResourceSpec: &NamedGenericResource{Kind: kind, Value: v}}
	}
	health := func(test ...string) func(*ServiceSpec) { return func(s *ServiceSpec) { hc(s).Test = test } }
	return []ruleCase{
		// Name and labels.
		{"name empty", func(s *ServiceSpec) { s.Name = "" },
			"name", "must not be empty", func(s *ServiceSpec) { s.Name = "a" }},
		{"name too long", func(s *ServiceSpec) { s.Name = strings.Repeat("a", 64) },
			"name", "must be at most 63 characters, got 64", func(s *ServiceSpec) { s.Name = strings.Repeat("a", 63) }},
		{"name leading dash", func(s *ServiceSpec) { s.Name = "-web" },
			"name", `must start with a letter or digit and contain only letters, digits, '_', '.' and '-', got "-web"`,
			func(s *ServiceSpec) { s.Name = "9web_1.a-B" }},
		{"name with space", func(s *ServiceSpec) { s.Name = "my web" },
			"name", `must start with a letter or digit and contain only letters, digits, '_', '.' and '-', got "my web"`,
			func(s *ServiceSpec) { s.Name = "my-web" }},
		{"label key empty", func(s *ServiceSpec) { s.Labels[""] = "x" },
			"labels", `keys must not be empty, got ""`, func(s *ServiceSpec) { s.Labels["com.example.x"] = "" }},
		{"label key blank", func(s *ServiceSpec) { s.Labels["  "] = "x" },
			"labels", `keys must not be empty, got "  "`, func(s *ServiceSpec) { s.Labels = nil }},

		// Mode.
		{"no mode", func(s *ServiceSpec) { s.Mode = ServiceMode{} },
			"mode", "must be one of replicated, global, replicated-job or global-job, got none",
			func(s *ServiceSpec) { s.Mode = ServiceMode{Global: &GlobalService{}}; pl(s).MaxReplicas = 0 }},
		{"two modes", func(s *ServiceSpec) { s.Mode.Global = &GlobalService{} },
			"mode", "must be exactly one of replicated, global, replicated-job or global-job, got replicated and global",
			func(s *ServiceSpec) { job(s); s.Mode = ServiceMode{GlobalJob: &GlobalJob{}}; pl(s).MaxReplicas = 0 }},
		{"negative replicas", func(s *ServiceSpec) { s.Mode.Replicated.Replicas = -1 },
			"replicas", "must be >= 0, got -1", func(s *ServiceSpec) { s.Mode.Replicated.Replicas = 0 }},
		{"negative max concurrent", func(s *ServiceSpec) { job(s); s.Mode.ReplicatedJob.MaxConcurrent = -1 },
			"max_concurrent", "must be >= 0, got -1", func(s *ServiceSpec) { job(s); s.Mode.ReplicatedJob.MaxConcurrent = 0 }},
		{"negative total completions", func(s *ServiceSpec) { job(s); s.Mode.ReplicatedJob.TotalCompletions = -5 },
			"total_completions", "must be >= 0, got -5", func(s *ServiceSpec) { job(s); s.Mode.ReplicatedJob.TotalCompletions = 0 }},
		{"job with update config", func(s *ServiceSpec) { job(s); s.UpdateConfig = &UpdateConfig{} },
			"update_config", "must not be set for a replicated-job service (jobs are never rolled)", job},
		{"job with rollback config", func(s *ServiceSpec) {
			job(s)
			s.Mode = ServiceMode{GlobalJob: &GlobalJob{}}
			pl(s).MaxReplicas = 0
			s.RollbackConfig = &UpdateConfig{}
		},
			"rollback_config", "must not be set for a global-job service (jobs are never rolled)",
			func(s *ServiceSpec) { job(s); s.Mode = ServiceMode{GlobalJob: &GlobalJob{}}; pl(s).MaxReplicas = 0 }},
		{"global with max replicas", func(s *ServiceSpec) { s.Mode = ServiceMode{Global: &GlobalService{}} },
			"task_template.placement.max_replicas", "must be 0 for a global service (it runs one task per node), got 2",
			func(s *ServiceSpec) { s.Mode = ServiceMode{Global: &GlobalService{}}; pl(s).MaxReplicas = 0 }},

		// Runtime.
		{"no runtime", func(s *ServiceSpec) { tt(s).Container = nil },
			"task_template.runtime", "must set one of container or process, got none", toProcess},
		{"two runtimes", func(s *ServiceSpec) { c := tt(s).Container; toProcess(s); tt(s).Container = c },
			"task_template.runtime", "must set exactly one of container or process, got both", func(*ServiceSpec) {}},
		{"process command empty", func(s *ServiceSpec) { toProcess(s); tt(s).Process.Command = nil },
			"task_template.process.command", "must not be empty",
			func(s *ServiceSpec) { toProcess(s); tt(s).Process.Command = []string{"x"} }},
		{"process program empty", func(s *ServiceSpec) { toProcess(s); tt(s).Process.Command = []string{"", "arg"} },
			"task_template.process.command[0]", "must not be empty (it names the program)",
			func(s *ServiceSpec) { toProcess(s); tt(s).Process.Command = []string{"prog", ""} }},
		{"process env without =", func(s *ServiceSpec) { toProcess(s); tt(s).Process.Env[1] = "B" },
			"task_template.process.env[1]", `must be KEY=VALUE with a non-empty KEY, got "B"`,
			func(s *ServiceSpec) { toProcess(s); tt(s).Process.Env[1] = "B=" }},
		{"process env empty key", func(s *ServiceSpec) { toProcess(s); tt(s).Process.Env[0] = "=1" },
			"task_template.process.env[0]", `must be KEY=VALUE with a non-empty KEY, got "=1"`,
			func(s *ServiceSpec) { toProcess(s); tt(s).Process.Env[0] = "K==1" }},
		{"process negative grace", func(s *ServiceSpec) { toProcess(s); tt(s).Process.StopGracePeriod = durPtr(-time.Second) },
			"task_template.process.stop_grace_period", "must be >= 0, got -1s",
			func(s *ServiceSpec) { toProcess(s); tt(s).Process.StopGracePeriod = durPtr(0) }},

		// Container.
		{"image empty", func(s *ServiceSpec) { ctr(s).Image = "" },
			"task_template.container.image", "must not be empty", func(s *ServiceSpec) { ctr(s).Image = "busybox" }},
		{"image not a reference", func(s *ServiceSpec) { ctr(s).Image = "Nginx:1.27" },
			"task_template.container.image", `must be an image reference such as nginx:1.27 or registry.example.com:5000/team/app@sha256:<digest>, got "Nginx:1.27"`,
			func(s *ServiceSpec) { ctr(s).Image = "Registry.Example.com:5000/team/nginx:1.27" }},
		{"container label key empty", func(s *ServiceSpec) { ctr(s).Labels[""] = "v" },
			"task_template.container.labels", `keys must not be empty, got ""`, func(s *ServiceSpec) { ctr(s).Labels["k"] = "" }},
		{"container env", func(s *ServiceSpec) { ctr(s).Env = append(ctr(s).Env, "PATH") },
			"task_template.container.env[2]", `must be KEY=VALUE with a non-empty KEY, got "PATH"`,
			func(s *ServiceSpec) { ctr(s).Env = append(ctr(s).Env, "PATH=/bin") }},
		{"container dir relative", func(s *ServiceSpec) { ctr(s).Dir = "srv" },
			"task_template.container.dir", `must be an absolute path, got "srv"`, func(s *ServiceSpec) { ctr(s).Dir = `C:\app` }},
		{"mount type empty", func(s *ServiceSpec) { ctr(s).Mounts[0].Type = "" },
			"task_template.container.mounts[0].type", `must be bind, volume or tmpfs, got ""`,
			func(s *ServiceSpec) { ctr(s).Mounts[0].Source = "" }},
		{"mount type unknown", func(s *ServiceSpec) { ctr(s).Mounts[0].Type = "npipe" },
			"task_template.container.mounts[0].type", `must be bind, volume or tmpfs, got "npipe"`,
			func(s *ServiceSpec) { ctr(s).Mounts[0].Type = MountTypeTmpfs; ctr(s).Mounts[0].Source = "" }},
		{"mount target empty", func(s *ServiceSpec) { ctr(s).Mounts[1].Target = "" },
			"task_template.container.mounts[1].target", "must not be empty", func(s *ServiceSpec) { ctr(s).Mounts[1].Target = "/" }},
		{"mount target relative", func(s *ServiceSpec) { ctr(s).Mounts[1].Target = "ssl" },
			"task_template.container.mounts[1].target", `must be an absolute path, got "ssl"`,
			func(s *ServiceSpec) { ctr(s).Mounts[1].Target = "/ssl/certs" }},
		{"mount target duplicate", func(s *ServiceSpec) { ctr(s).Mounts[2].Target = "/data" },
			"task_template.container.mounts[2].target", `duplicate mount point "/data" (also mounts[0])`,
			func(s *ServiceSpec) { ctr(s).Mounts[2].Target = "/data/tmp" }},
		{"bind source empty", func(s *ServiceSpec) { ctr(s).Mounts[1].Source = "" },
			"task_template.container.mounts[1].source", "must not be empty for a bind mount",
			func(s *ServiceSpec) { ctr(s).Mounts[1].Type = MountTypeVolume; ctr(s).Mounts[1].Source = "" }},
		{"bind source relative", func(s *ServiceSpec) { ctr(s).Mounts[1].Source = "etc/ssl" },
			"task_template.container.mounts[1].source", `must be an absolute host path for a bind mount, got "etc/ssl"`,
			func(s *ServiceSpec) { ctr(s).Mounts[1].Type = MountTypeVolume; ctr(s).Mounts[1].Source = "etc-ssl" }},
		{"tmpfs with source", func(s *ServiceSpec) { ctr(s).Mounts[2].Source = "/host" },
			"task_template.container.mounts[2].source", `must be empty for a tmpfs mount, got "/host"`,
			func(s *ServiceSpec) { ctr(s).Mounts[2].Type = MountTypeBind; ctr(s).Mounts[2].Source = "/host" }},
		{"container negative grace", func(s *ServiceSpec) { ctr(s).StopGracePeriod = durPtr(-time.Millisecond) },
			"task_template.container.stop_grace_period", "must be >= 0, got -1ms",
			func(s *ServiceSpec) { ctr(s).StopGracePeriod = nil }},

		// Resources.
		{"limit cpu negative", func(s *ServiceSpec) { res(s).Limits.NanoCPUs = -1 },
			"task_template.resources.limits.nano_cpus", "must be >= 0, got -1",
			func(s *ServiceSpec) { res(s).Limits.NanoCPUs = 0 }},
		{"limit cpu tiny", func(s *ServiceSpec) { res(s).Limits.NanoCPUs = 999_999; res(s).Reservations.NanoCPUs = 0 },
			"task_template.resources.limits.nano_cpus", "must be 0 (none) or at least 1000000 (0.001 CPU), got 999999",
			func(s *ServiceSpec) { res(s).Limits.NanoCPUs = 1_000_000; res(s).Reservations.NanoCPUs = 0 }},
		{"limit memory negative", func(s *ServiceSpec) { res(s).Limits.MemoryBytes = -1 },
			"task_template.resources.limits.memory_bytes", "must be >= 0, got -1",
			func(s *ServiceSpec) { res(s).Limits.MemoryBytes = 0 }},
		{"limit memory tiny", func(s *ServiceSpec) { res(s).Limits.MemoryBytes = 4<<20 - 1; res(s).Reservations.MemoryBytes = 0 },
			"task_template.resources.limits.memory_bytes", "must be 0 (none) or at least 4194304 (4MiB), got 4194303",
			func(s *ServiceSpec) { res(s).Limits.MemoryBytes = 4 << 20; res(s).Reservations.MemoryBytes = 0 }},
		{"reservation cpu negative", func(s *ServiceSpec) { res(s).Reservations.NanoCPUs = -1e9 },
			"task_template.resources.reservations.nano_cpus", "must be >= 0, got -1000000000",
			func(s *ServiceSpec) { res(s).Reservations.NanoCPUs = 0 }},
		{"reservation memory tiny", func(s *ServiceSpec) { res(s).Reservations.MemoryBytes = 1024 },
			"task_template.resources.reservations.memory_bytes", "must be 0 (none) or at least 4194304 (4MiB), got 1024",
			func(s *ServiceSpec) { res(s).Reservations.MemoryBytes = 0 }},
		{"reservation above cpu limit", func(s *ServiceSpec) { res(s).Reservations.NanoCPUs = 2e9 + 1 },
			"task_template.resources.reservations.nano_cpus", "must be <= task_template.resources.limits.nano_cpus (2000000000), got 2000000001",
			func(s *ServiceSpec) { res(s).Reservations.NanoCPUs = 2e9 }},
		{"reservation above memory limit", func(s *ServiceSpec) { res(s).Reservations.MemoryBytes = 1 << 30 },
			"task_template.resources.reservations.memory_bytes", "must be <= task_template.resources.limits.memory_bytes (536870912), got 1073741824",
			func(s *ServiceSpec) { res(s).Reservations.MemoryBytes = 1 << 30; res(s).Limits = nil }},
		{"generic resource empty", func(s *ServiceSpec) { generic(s, GenericResource{}) },
			"task_template.resources.reservations.generic_resources[0]", "must set one of named_resource_spec or discrete_resource_spec, got none",
			func(s *ServiceSpec) { generic(s) }},
		{"generic resource both", func(s *ServiceSpec) {
			g := discrete("gpu", 1)
			g.NamedResourceSpec = named("gpu", "a").NamedResourceSpec
			generic(s, g)
		},
			"task_template.resources.reservations.generic_resources[0]", "must set exactly one of named_resource_spec or discrete_resource_spec, got both",
			func(s *ServiceSpec) { generic(s, discrete("gpu", 1), named("gpu", "a")) }},
		{"discrete kind empty", func(s *ServiceSpec) { generic(s, discrete("", 1)) },
			"task_template.resources.reservations.generic_resources[0].kind", "must not be empty",
			func(s *ServiceSpec) { generic(s, discrete("g", 1)) }},
		{"discrete value zero", func(s *ServiceSpec) { generic(s, named("fpga", "x"), discrete("gpu", 0)) },
			"task_template.resources.reservations.generic_resources[1].value", "must be > 0, got 0",
			func(s *ServiceSpec) { generic(s, named("fpga", "x"), discrete("gpu", 1)) }},
		{"discrete kind duplicate", func(s *ServiceSpec) { generic(s, discrete("gpu", 1), discrete("gpu", 2)) },
			"task_template.resources.reservations.generic_resources[1].kind", `duplicate discrete resource "gpu" (also generic_resources[0])`,
			func(s *ServiceSpec) { generic(s, discrete("gpu", 1), discrete("ssd", 2)) }},
		{"named kind empty", func(s *ServiceSpec) { generic(s, named("", "x")) },
			"task_template.resources.reservations.generic_resources[0].kind", "must not be empty",
			func(s *ServiceSpec) { generic(s, named("k", "x"), named("k", "y")) }},
		{"named value empty", func(s *ServiceSpec) { res(s).Limits.GenericResources = []GenericResource{named("gpu", "")} },
			"task_template.resources.limits.generic_resources[0].value", "must not be empty",
			func(s *ServiceSpec) { res(s).Limits.GenericResources = []GenericResource{named("gpu", "GPU-0")} }},

		// Restart policy.
		{"restart condition unknown", func(s *ServiceSpec) { tt(s).RestartPolicy.Condition = "always" },
			"task_template.restart_policy.condition", `must be none, on-failure or any, got "always"`,
			func(s *ServiceSpec) { tt(s).RestartPolicy.Condition = "" }},
		{"restart delay negative", func(s *ServiceSpec) { tt(s).RestartPolicy.Delay = durPtr(-time.Second) },
			"task_template.restart_policy.delay", "must be >= 0, got -1s",
			func(s *ServiceSpec) { tt(s).RestartPolicy.Delay = durPtr(0) }},
		{"restart window negative", func(s *ServiceSpec) { tt(s).RestartPolicy.Window = -time.Minute },
			"task_template.restart_policy.window", "must be >= 0, got -1m0s",
			func(s *ServiceSpec) { tt(s).RestartPolicy.Window = 0 }},

		// Placement.
		{"constraint unknown key", func(s *ServiceSpec) { pl(s).Constraints[1] = "node.foo==x" },
			"task_template.placement.constraints[1]", `constraint "node.foo==x": unknown key "node.foo"`,
			func(s *ServiceSpec) { pl(s).Constraints[1] = "node.platform.os==linux" }},
		{"constraint without operator", func(s *ServiceSpec) { pl(s).Constraints[0] = "node.role=manager" },
			"task_template.placement.constraints[0]", `constraint "node.role=manager": expected KEY==VALUE or KEY!=VALUE`,
			func(s *ServiceSpec) { pl(s).Constraints[0] = "node.role == manager" }},
		{"preference without spread", func(s *ServiceSpec) { pl(s).Preferences[0].Spread = nil },
			"task_template.placement.preferences[0].spread", "must be set (spread is the only placement preference)",
			func(s *ServiceSpec) { pl(s).Preferences = nil }},
		{"spread over non-label", func(s *ServiceSpec) { pl(s).Preferences[0].Spread.SpreadDescriptor = "node.hostname" },
			"task_template.placement.preferences[0].spread", `must be node.labels.<name> or engine.labels.<name>, got "node.hostname"`,
			func(s *ServiceSpec) { pl(s).Preferences[0].Spread.SpreadDescriptor = "Engine.Labels.rack" }},
		{"spread without label name", func(s *ServiceSpec) { pl(s).Preferences[0].Spread.SpreadDescriptor = "node.labels." },
			"task_template.placement.preferences[0].spread", `must be node.labels.<name> or engine.labels.<name>, got "node.labels."`,
			func(s *ServiceSpec) { pl(s).Preferences[0].Spread.SpreadDescriptor = "node.labels.x" }},
		{"platform without os", func(s *ServiceSpec) { pl(s).Platforms = append(pl(s).Platforms, Platform{Architecture: "arm64"}) },
			"task_template.placement.platforms[1].os", "must not be empty",
			func(s *ServiceSpec) { pl(s).Platforms = append(pl(s).Platforms, Platform{OS: "linux"}) }},

		// Health check.
		{"health CMD without program", health("CMD"),
			"task_template.health_check.test", `must be ["CMD", program, args...] with a program`, health("CMD", "true")},
		{"health CMD empty program", health("CMD", ""),
			"task_template.health_check.test", `must be ["CMD", program, args...] with a program`, health("CMD", "/bin/check", "")},
		{"health CMD-SHELL two commands", health("CMD-SHELL", "a", "b"),
			"task_template.health_check.test", `must be ["CMD-SHELL", command] with one non-empty command`, health("CMD-SHELL", "a && b")},
		{"health CMD-SHELL blank", health("CMD-SHELL", " "),
			"task_template.health_check.test", `must be ["CMD-SHELL", command] with one non-empty command`, health("CMD-SHELL", "exit 0")},
		{"health NONE with args", health("NONE", "x"),
			"task_template.health_check.test", `must be ["NONE"] alone, got 1 arguments after NONE`, health("NONE")},
		{"health HTTP bad scheme", health("HTTP", "ftp://localhost/"),
			"task_template.health_check.test", `must be ["HTTP", url] with an http:// or https:// URL, got "ftp://localhost/"`,
			health("HTTP", "https://localhost:8443/healthz")},
		{"health HTTP no host", health("HTTP", "/healthz"),
			"task_template.health_check.test", `must be ["HTTP", url] with an http:// or https:// URL, got "/healthz"`,
			health("HTTP", "http://127.0.0.1/healthz")},
		{"health HTTP without url", health("HTTP"),
			"task_template.health_check.test", `must be ["HTTP", url] with one URL`, health("HTTP", "http://localhost")},
		{"health TCP without port", health("TCP", "localhost"),
			"task_template.health_check.test", `must be ["TCP", host:port] with a port from 1 to 65535, got "localhost"`,
			health("TCP", ":8080")},
		{"health TCP port zero", health("TCP", "db:0"),
			"task_template.health_check.test", `must be ["TCP", host:port] with a port from 1 to 65535, got "db:0"`,
			health("TCP", "db:1")},
		{"health TCP port too big", health("TCP", "[::1]:65536"),
			"task_template.health_check.test", `must be ["TCP", host:port] with a port from 1 to 65535, got "[::1]:65536"`,
			health("TCP", "[::1]:65535")},
		{"health TCP two addresses", health("TCP", "a:1", "b:2"),
			"task_template.health_check.test", `must be ["TCP", host:port] with one address`, health("TCP", "a:1")},
		{"health unknown form", health("cmd", "true"),
			"task_template.health_check.test", `must start with NONE, CMD, CMD-SHELL, HTTP or TCP, got "cmd"`, health("CMD", "true")},
		{"health empty for process", func(s *ServiceSpec) { toProcess(s); hc(s).Test = nil },
			"task_template.health_check.test", `must not be empty for a process (there is no image health check to inherit); use ["NONE"] to disable`,
			health()}, // a container inherits its image's check
		{"health interval negative", func(s *ServiceSpec) { hc(s).Interval = -time.Second },
			"task_template.health_check.interval", "must be >= 0, got -1s", func(s *ServiceSpec) { hc(s).Interval = 0 }},
		{"health interval tiny", func(s *ServiceSpec) { hc(s).Interval = time.Microsecond },
			"task_template.health_check.interval", "must be 0 (default) or at least 1ms, got 1µs",
			func(s *ServiceSpec) { hc(s).Interval = time.Millisecond }},
		{"health timeout negative", func(s *ServiceSpec) { hc(s).Timeout = -time.Second },
			"task_template.health_check.timeout", "must be >= 0, got -1s", func(s *ServiceSpec) { hc(s).Timeout = 0 }},
		{"health start period tiny", func(s *ServiceSpec) { hc(s).StartPeriod = 500 * time.Microsecond },
			"task_template.health_check.start_period", "must be 0 (default) or at least 1ms, got 500µs",
			func(s *ServiceSpec) { hc(s).StartPeriod = 0 }},
		{"health retries negative", func(s *ServiceSpec) { hc(s).Retries = -1 },
			"task_template.health_check.retries", "must be >= 0, got -1", func(s *ServiceSpec) { hc(s).Retries = 0 }},

		// Networks.
		{"network target empty", func(s *ServiceSpec) { tt(s).Networks[1].Target = "" },
			"task_template.networks[1].target", "must not be empty", func(s *ServiceSpec) { tt(s).Networks[1].Target = "db" }},
		{"network duplicate", func(s *ServiceSpec) { tt(s).Networks[1].Target = "front" },
			"task_template.networks[1].target", `duplicate network "front" (also networks[0])`,
			func(s *ServiceSpec) { tt(s).Networks[1].Target = "Front" }},
		{"network alias empty", func(s *ServiceSpec) { tt(s).Networks[0].Aliases = []string{"www", ""} },
			"task_template.networks[0].aliases[1]", "must not be empty",
			func(s *ServiceSpec) { tt(s).Networks[0].Aliases = []string{"www", "web"} }},

		// Update and rollback configs.
		{"update delay negative", func(s *ServiceSpec) { s.UpdateConfig.Delay = -time.Second },
			"update_config.delay", "must be >= 0, got -1s", func(s *ServiceSpec) { s.UpdateConfig.Delay = 0 }},
		{"update monitor negative", func(s *ServiceSpec) { s.UpdateConfig.Monitor = -time.Second },
			"update_config.monitor", "must be >= 0, got -1s", func(s *ServiceSpec) { s.UpdateConfig.Monitor = 0 }},
		{"update failure action unknown", func(s *ServiceSpec) { s.UpdateConfig.FailureAction = "stop" },
			"update_config.failure_action", `must be pause, continue or rollback, got "stop"`,
			func(s *ServiceSpec) { s.UpdateConfig.FailureAction = UpdateFailureActionContinue }},
		{"update failure ratio above 1", func(s *ServiceSpec) { s.UpdateConfig.MaxFailureRatio = 1.5 },
			"update_config.max_failure_ratio", "must be between 0 and 1, got 1.5",
			func(s *ServiceSpec) { s.UpdateConfig.MaxFailureRatio = 1 }},
		{"update failure ratio negative", func(s *ServiceSpec) { s.UpdateConfig.MaxFailureRatio = -0.1 },
			"update_config.max_failure_ratio", "must be between 0 and 1, got -0.1",
			func(s *ServiceSpec) { s.UpdateConfig.MaxFailureRatio = 0 }},
		{"update failure ratio NaN", func(s *ServiceSpec) { s.UpdateConfig.MaxFailureRatio = math.NaN() },
			"update_config.max_failure_ratio", "must be between 0 and 1, got NaN",
			func(s *ServiceSpec) { s.UpdateConfig.MaxFailureRatio = 0.5 }},
		{"update order unknown", func(s *ServiceSpec) { s.UpdateConfig.Order = "random" },
			"update_config.order", `must be stop-first or start-first, got "random"`,
			func(s *ServiceSpec) { s.UpdateConfig.Order = "" }},
		{"rollback failure action rollback", func(s *ServiceSpec) { s.RollbackConfig.FailureAction = UpdateFailureActionRollback },
			"rollback_config.failure_action", `must be pause or continue (a rollback cannot roll back), got "rollback"`,
			func(s *ServiceSpec) { s.RollbackConfig.FailureAction = UpdateFailureActionContinue }},
		{"rollback failure action unknown", func(s *ServiceSpec) { s.RollbackConfig.FailureAction = "retry" },
			"rollback_config.failure_action", `must be pause or continue, got "retry"`,
			func(s *ServiceSpec) { s.RollbackConfig.FailureAction = "" }},
		{"rollback order unknown", func(s *ServiceSpec) { s.RollbackConfig.Order = "Start-First" },
			"rollback_config.order", `must be stop-first or start-first, got "Start-First"`,
			func(s *ServiceSpec) { s.RollbackConfig.Order = UpdateOrderStartFirst }},
		{"rollback monitor negative", func(s *ServiceSpec) { s.RollbackConfig.Monitor = -1 },
			"rollback_config.monitor", "must be >= 0, got -1ns", func(s *ServiceSpec) { s.RollbackConfig = nil }},
		{"rollback failure ratio", func(s *ServiceSpec) { s.RollbackConfig.MaxFailureRatio = 2 },
			"rollback_config.max_failure_ratio", "must be between 0 and 1, got 2",
			func(s *ServiceSpec) { s.RollbackConfig.MaxFailureRatio = 0.99 }},

		// Endpoint.
		{"endpoint mode unknown", func(s *ServiceSpec) { ep(s).Mode = "rr" },
			"endpoint_spec.mode", `must be vip or dnsrr, got "rr"`, func(s *ServiceSpec) { ep(s).Mode = "" }},
		{"target port zero", func(s *ServiceSpec) { port(s, 0).TargetPort = 0 },
			"endpoint_spec.ports[0].target_port", "must be between 1 and 65535, got 0",
			func(s *ServiceSpec) { port(s, 0).TargetPort = 1 }},
		{"target port too big", func(s *ServiceSpec) { port(s, 1).TargetPort = 65536 },
			"endpoint_spec.ports[1].target_port", "must be between 1 and 65535, got 65536",
			func(s *ServiceSpec) { port(s, 1).TargetPort = 65535 }},
		{"published port too big", func(s *ServiceSpec) { port(s, 0).PublishedPort = 70000 },
			"endpoint_spec.ports[0].published_port", "must be between 0 (any) and 65535, got 70000",
			func(s *ServiceSpec) { port(s, 0).PublishedPort = 0 }},
		{"protocol unknown", func(s *ServiceSpec) { port(s, 0).Protocol = "TCP" },
			"endpoint_spec.ports[0].protocol", `must be tcp, udp or sctp, got "TCP"`,
			func(s *ServiceSpec) { port(s, 0).Protocol = PortProtocolSCTP }},
		{"publish mode unknown", func(s *ServiceSpec) { port(s, 1).PublishMode = "global" },
			"endpoint_spec.ports[1].publish_mode", `must be ingress or host, got "global"`,
			func(s *ServiceSpec) { port(s, 1).PublishMode = "" }},
		{"proxy protocol unknown", func(s *ServiceSpec) { port(s, 0).ProxyProtocol = "v1" },
			"endpoint_spec.ports[0].proxy_protocol", `must be v2, got "v1"`,
			func(s *ServiceSpec) { port(s, 0).ProxyProtocol = ProxyProtocolV2 }},
		{"proxy protocol on udp", func(s *ServiceSpec) { port(s, 1).ProxyProtocol = ProxyProtocolV2 },
			"endpoint_spec.ports[1].proxy_protocol", `must be empty for a udp port (the PROXY protocol header is sent on TCP connections), got "v2"`,
			func(s *ServiceSpec) { port(s, 1).ProxyProtocol = "" }},
		{"traffic policy unknown", func(s *ServiceSpec) { port(s, 0).TrafficPolicy = "node" },
			"endpoint_spec.ports[0].traffic_policy", `must be cluster or local, got "node"`,
			func(s *ServiceSpec) { port(s, 0).TrafficPolicy = TrafficPolicyLocal }},
		{"dnsrr with ingress port", func(s *ServiceSpec) { ep(s).Mode = ResolutionModeDNSRR; ep(s).Ports = ep(s).Ports[:1] },
			"endpoint_spec.ports[0].publish_mode", `must be host when endpoint_spec.mode is dnsrr (the ingress routing mesh needs a virtual IP), got "ingress"`,
			func(s *ServiceSpec) { ep(s).Mode = ResolutionModeDNSRR; ep(s).Ports = ep(s).Ports[1:] }},
		{"dnsrr with default publish mode", func(s *ServiceSpec) {
			ep(s).Mode = ResolutionModeDNSRR
			port(s, 0).PublishMode = ""
			port(s, 1).PublishMode = PublishModeHost
		},
			"endpoint_spec.ports[0].publish_mode", `must be host when endpoint_spec.mode is dnsrr`,
			func(s *ServiceSpec) { ep(s).Mode = ResolutionModeDNSRR; ep(s).Ports = nil }},
		{"duplicate published port", func(s *ServiceSpec) { port(s, 1).PublishedPort = 8080; port(s, 1).Protocol = "" },
			"endpoint_spec.ports[1].published_port", "duplicate published port 8080/tcp (also ports[0])",
			func(s *ServiceSpec) { port(s, 1).PublishedPort = 8080 }}, // 8080/udp next to 8080/tcp
		{"duplicate published port across modes", func(s *ServiceSpec) {
			ep(s).Ports = append(ep(s).Ports, PortConfig{Protocol: PortProtocolUDP, TargetPort: 5353, PublishedPort: 53, PublishMode: PublishModeIngress})
		}, "endpoint_spec.ports[2].published_port", "duplicate published port 53/udp (also ports[1])",
			func(s *ServiceSpec) { // published 0 is chosen by the allocator: never a duplicate
				for range 2 {
					ep(s).Ports = append(ep(s).Ports, PortConfig{TargetPort: 5353})
				}
			}},
	}
}

func TestGoodSpecsPass(t *testing.T) {
	s := goodService()
	if err := s.Validate(); err != nil {
		t.Fatalf("container spec: %v", err)
	}
	toProcess(&s)
	if err := s.Validate(); err != nil {
		t.Fatalf("process spec: %v", err)
	}
	for _, m := range []ServiceMode{
		{Global: &GlobalService{}}, {GlobalJob: &GlobalJob{}}, {ReplicatedJob: &ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 1}},
	} {
		s := goodService()
		s.Mode = m
		s.TaskTemplate.Placement.MaxReplicas = 0
		if m.IsJob() {
			s.UpdateConfig, s.RollbackConfig = nil, nil
		}
		if err := s.Validate(); err != nil {
			t.Errorf("%s: %v", m.ModeName(), err)
		}
	}
	// The smallest valid spec: everything optional left out.
	min := ServiceSpec{
		Annotations:  Annotations{Name: "a"},
		Mode:         ServiceMode{Replicated: &ReplicatedService{}},
		TaskTemplate: TaskSpec{Process: &ProcessSpec{Command: []string{"true"}}},
	}
	if err := min.Validate(); err != nil {
		t.Errorf("minimal spec: %v", err)
	}
}

func TestServiceSpecRules(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range append(rules(), limitRules()...) {
		t.Run(tc.name, func(t *testing.T) {
			if seen[tc.name] {
				t.Fatalf("duplicate case name")
			}
			seen[tc.name] = true
			if tc.good == nil {
				t.Fatal("every rule needs a valid variant")
			}
			good := goodService()
			tc.good(&good)
			if err := good.Validate(); err != nil {
				t.Errorf("valid variant refused: %v", err)
			}

			bad := goodService()
			tc.bad(&bad)
			err := bad.Validate()
			if err == nil {
				t.Fatalf("accepted; want %s: %s", tc.field, tc.problem)
			}
			all := ValidationErrors(err)
			if len(all) != 1 {
				t.Fatalf("want exactly one problem, got %d:\n%v", len(all), err)
			}
			ve := all[0]
			if ve.Kind != "service" || ve.Name != bad.Name || ve.Field != tc.field || !strings.HasPrefix(ve.Problem, tc.problem) {
				t.Fatalf("got %#v\nwant field %q, problem %q", ve, tc.field, tc.problem)
			}
			prefix := "service: "
			if bad.Name != "" {
				prefix = `service "` + bad.Name + `": `
			}
			if want := prefix + tc.field + ": " + tc.problem; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("message\n%s\ndoes not start with\n%s", err, want)
			}
		})
	}
}

func TestValidationErrorShape(t *testing.T) {
	s := goodService()
	s.Mode.Replicated.Replicas = -1
	err := s.Validate()
	if got, want := err.Error(), `service "web": replicas: must be >= 0, got -1`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatal("errors.As found no *ValidationError")
	}
	if *ve != (ValidationError{Kind: "service", Name: "web", Field: "replicas", Problem: "must be >= 0, got -1"}) {
		t.Fatalf("got %#v", ve)
	}
	if got := (&ValidationError{Kind: "task spec", Field: "runtime", Problem: "p"}).Error(); got != "task spec: runtime: p" {
		t.Fatalf("nameless error: %q", got)
	}
	if ValidationErrors(nil) != nil || ValidationErrors(errors.New("x")) != nil {
		t.Fatal("ValidationErrors of a non-validation error")
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	s := goodService()
	s.Mode.Replicated.Replicas = -1
	s.TaskTemplate.Container.Image = ""
	s.EndpointSpec.Ports[0].TargetPort = 0
	s.UpdateConfig.Order = "x"
	err := s.Validate()
	want := []string{
		`service "web": replicas: must be >= 0, got -1`,
		`service "web": task_template.container.image: must not be empty`,
		`service "web": update_config.order: must be stop-first or start-first, got "x"`,
		`service "web": endpoint_spec.ports[0].target_port: must be between 1 and 65535, got 0`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "replicas" {
		t.Fatalf("errors.As found %#v, want the first problem", ve)
	}
	if n := len(ValidationErrors(err)); n != 4 {
		t.Fatalf("ValidationErrors: %d, want 4", n)
	}
	// Wrapped, the problems are still found.
	if n := len(ValidationErrors(errors.Join(errors.New("create service"), err))); n != 4 {
		t.Fatalf("wrapped: %d, want 4", n)
	}
}

func TestValidateNil(t *testing.T) {
	for name, err := range map[string]error{
		"service spec": (*ServiceSpec)(nil).Validate(),
		"task spec":    (*TaskSpec)(nil).Validate(),
		"node spec":    (*NodeSpec)(nil).Validate(),
		"cluster spec": (*ClusterSpec)(nil).Validate(),
		"network spec": (*NetworkSpec)(nil).Validate(),
		"service":      (*Service)(nil).Validate(),
		"node":         (*Node)(nil).Validate(),
		"cluster":      (*Cluster)(nil).Validate(),
		"network":      (*Network)(nil).Validate(),
		"task":         (*Task)(nil).Validate(),
	} {
		var ve *ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), "must not be nil") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTaskSpecValidate(t *testing.T) {
	ts := goodService().TaskTemplate
	if err := ts.Validate(); err != nil {
		t.Fatal(err)
	}
	ts.Container.Image = ""
	ts.Placement.Constraints = []string{"x"}
	want := "task spec: container.image: must not be empty\n" +
		`task spec: placement.constraints[0]: constraint "x": expected KEY==VALUE or KEY!=VALUE`
	if err := ts.Validate(); err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestServiceValidate(t *testing.T) {
	svc := &Service{ID: NewID(), Spec: goodService()}
	if err := svc.Validate(); err != nil {
		t.Fatal(err)
	}
	svc.Spec.Mode.Replicated.Replicas = -2
	if err := svc.Validate(); err == nil || err.Error() != `service "web": replicas: must be >= 0, got -2` {
		t.Fatalf("got %v", err)
	}
}

func TestImageReferences(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, ref := range []string{
		"nginx", "nginx:1.27", "nginx:latest", "library/nginx", "docker.io/library/nginx:1.27",
		"registry.example.com:5000/team/app:v1.2-rc_3", "localhost/app", "localhost:5000/app",
		"[::1]:5000/app", "Registry.Example.com/app", "app@sha256:" + hex64, "app:tag@sha256:" + hex64,
		"a/b/c/d", "my_app", "my__app", "my-app", "my---app", "my.app", "app:" + strings.Repeat("t", 128),
		"ghcr.io/org/app:_tag",
	} {
		if !validImageReference(ref) {
			t.Errorf("refused %q", ref)
		}
	}
	for _, ref := range []string{
		"", "Nginx", "nginx:", ":tag", "nginx:-tag", "nginx:a/b", "nginx@sha256:abc", "nginx@", "nginx@" + hex64,
		"/nginx", "nginx/", "a//b", "-app", "app-", "app_", "my___app", "a b", "host:port/app",
		"app:" + strings.Repeat("t", 129), strings.Repeat("a", 256), "nginx:1.27:2", "exa_mple.com/app",
		"-host.com/app", "host-.com/app",
	} {
		if validImageReference(ref) {
			t.Errorf("accepted %q", ref)
		}
	}
}

func TestNodeSpecRules(t *testing.T) {
	good := func() NodeSpec {
		return NodeSpec{Annotations: Annotations{Name: "n1", Labels: map[string]string{"zone": "a"}},
			Role: NodeRoleWorker, Availability: NodeAvailabilityActive}
	}
	for _, s := range []NodeSpec{
		good(),
		{Role: NodeRoleManager, Availability: NodeAvailabilityPause}, // the name is optional
		{Role: NodeRoleManager, Availability: NodeAvailabilityDrain},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	for _, tc := range []struct {
		bad  func(*NodeSpec)
		want string
	}{
		{func(s *NodeSpec) { s.Role = "" }, `node "n1": role: must be worker or manager, got ""`},
		{func(s *NodeSpec) { s.Role = "Manager" }, `node "n1": role: must be worker or manager, got "Manager"`},
		{func(s *NodeSpec) { s.Availability = "" }, `node "n1": availability: must be active, pause or drain, got ""`},
		{func(s *NodeSpec) { s.Availability = "paused" }, `node "n1": availability: must be active, pause or drain, got "paused"`},
		{func(s *NodeSpec) { s.Labels[""] = "x" }, `node "n1": labels: keys must not be empty, got ""`},
	} {
		s := good()
		tc.bad(&s)
		if err := s.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
	// A Node without a spec name is named by its ID.
	n := &Node{ID: "abc", Spec: NodeSpec{Role: "boss", Availability: NodeAvailabilityActive}}
	if err := n.Validate(); err == nil || err.Error() != `node "abc": role: must be worker or manager, got "boss"` {
		t.Errorf("got %v", err)
	}
	n.Spec.Role = NodeRoleWorker
	if err := n.Validate(); err != nil {
		t.Error(err)
	}
}

func TestClusterSpecRules(t *testing.T) {
	d := DefaultClusterSpec()
	if err := d.Validate(); err != nil {
		t.Fatalf("default cluster spec: %v", err)
	}
	goods := []func(*ClusterSpec){
		func(s *ClusterSpec) { s.Orchestration.TaskHistoryRetentionLimit = 0 },
		func(s *ClusterSpec) { s.Dispatcher.HeartbeatPeriod = 0 },
		func(s *ClusterSpec) { s.Dispatcher.HeartbeatPeriod = 5 * time.Second },
		func(s *ClusterSpec) { s.Dispatcher.HeartbeatPeriod = MinHeartbeatPeriod },
		func(s *ClusterSpec) { s.Dispatcher.HeartbeatPeriod = MaxHeartbeatPeriod },
		func(s *ClusterSpec) { s.CAConfig.NodeCertExpiry = MaxNodeCertExpiry },
		func(s *ClusterSpec) { s.CAConfig.NodeCertExpiry = 0 },
		func(s *ClusterSpec) { s.CAConfig.NodeCertExpiry = time.Hour },
	}
	for i, g := range goods {
		s := DefaultClusterSpec()
		g(&s)
		if err := s.Validate(); err != nil {
			t.Errorf("good %d: %v", i, err)
		}
	}
	for _, tc := range []struct {
		bad  func(*ClusterSpec)
		want string
	}{
		{func(s *ClusterSpec) { s.Name = "" }, `cluster: name: must not be empty`},
		{func(s *ClusterSpec) { s.Name = "my cluster" }, `cluster "my cluster": name: must start with a letter or digit`},
		{func(s *ClusterSpec) { s.Labels = map[string]string{"": ""} }, `cluster "default": labels: keys must not be empty`},
		{func(s *ClusterSpec) { s.Orchestration.TaskHistoryRetentionLimit = -1 },
			`cluster "default": orchestration.task_history_retention_limit: must be >= 0, got -1`},
		{func(s *ClusterSpec) { s.Dispatcher.HeartbeatPeriod = -time.Second },
			`cluster "default": dispatcher.heartbeat_period: must be 0 (adaptive) or between 100ms and 1h0m0s, got -1s`},
		{func(s *ClusterSpec) { s.Dispatcher.HeartbeatPeriod = 99 * time.Millisecond },
			`cluster "default": dispatcher.heartbeat_period: must be 0 (adaptive) or between 100ms and 1h0m0s, got 99ms`},
		{func(s *ClusterSpec) { s.Dispatcher.HeartbeatPeriod = time.Hour + time.Second },
			`cluster "default": dispatcher.heartbeat_period: must be 0 (adaptive) or between 100ms and 1h0m0s, got 1h0m1s`},
		{func(s *ClusterSpec) { s.CAConfig.NodeCertExpiry = 59 * time.Minute },
			`cluster "default": ca_config.node_cert_expiry: must be 0 (default 2160h0m0s) or between 1h0m0s and 87600h0m0s, got 59m0s`},
		{func(s *ClusterSpec) { s.CAConfig.NodeCertExpiry = -time.Hour },
			`cluster "default": ca_config.node_cert_expiry: must be 0 (default 2160h0m0s) or between 1h0m0s and 87600h0m0s, got -1h0m0s`},
		{func(s *ClusterSpec) { s.CAConfig.NodeCertExpiry = MaxNodeCertExpiry + time.Hour },
			`cluster "default": ca_config.node_cert_expiry: must be 0 (default 2160h0m0s) or between 1h0m0s and 87600h0m0s, got 87601h0m0s`},
		{func(s *ClusterSpec) { s.Network.SubnetSize = 30 },
			`cluster "default": network.subnet_size: must be 0 (default 24) or between 8 and 29, got 30`},
		{func(s *ClusterSpec) { s.Network.DefaultAddrPool = []string{"10.0.0.0"} },
			`cluster "default": network.default_addr_pool[0]: must be an IPv4 CIDR such as 10.0.0.0/8, got "10.0.0.0"`},
		{func(s *ClusterSpec) { s.Network.DefaultAddrPool = []string{"10.1.0.0/8"} },
			`cluster "default": network.default_addr_pool[0]: must be a network address, 10.0.0.0/8 rather than 10.1.0.0/8`},
		{func(s *ClusterSpec) { s.Network.DefaultAddrPool = []string{"10.0.0.0/25"} },
			`cluster "default": network.default_addr_pool[0]: must be at least as large as the subnets cut from it (/24), got 10.0.0.0/25`},
		{func(s *ClusterSpec) { s.Network.DefaultAddrPool = []string{"10.0.0.0/8", "10.20.0.0/16"} },
			`cluster "default": network.default_addr_pool[1]: overlaps default_addr_pool[0] 10.0.0.0/8, got 10.20.0.0/16`},
	} {
		s := DefaultClusterSpec()
		tc.bad(&s)
		if err := s.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) || len(ValidationErrors(err)) != 1 {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
	c := &Cluster{ID: "c1", Spec: DefaultClusterSpec()}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestNetworkSpecRules(t *testing.T) {
	good := func() NetworkSpec {
		return NetworkSpec{Annotations: Annotations{Name: "front"}, Driver: "overlay",
			IPAM: &IPAMConfig{Subnet: "10.0.1.0/24", Gateway: "10.0.1.1"}}
	}
	goods := []func(*NetworkSpec){
		func(*NetworkSpec) {},
		func(s *NetworkSpec) { s.Driver = "" },
		func(s *NetworkSpec) { s.Driver = "weaveworks/net-plugin:2.1" },
		func(s *NetworkSpec) { s.IPAM = nil },
		func(s *NetworkSpec) { s.IPAM = &IPAMConfig{} },
		func(s *NetworkSpec) { s.IPAM.Gateway = "" },
		func(s *NetworkSpec) { s.IPAM.Gateway = "10.0.1.254" },
		func(s *NetworkSpec) { s.IPAM = &IPAMConfig{Subnet: "10.0.0.8/29", Gateway: "10.0.0.9"} },
		func(s *NetworkSpec) { s.IPAM = &IPAMConfig{Subnet: "10.0.0.0/8"} },
		func(s *NetworkSpec) { s.Ingress = true },
		func(s *NetworkSpec) { s.Ingress, s.Driver = true, "" },
		func(s *NetworkSpec) { s.Attachable, s.Internal = true, true },
	}
	for i, g := range goods {
		s := good()
		g(&s)
		if err := s.Validate(); err != nil {
			t.Errorf("good %d: %v", i, err)
		}
	}
	for _, tc := range []struct {
		bad  func(*NetworkSpec)
		want string
	}{
		{func(s *NetworkSpec) { s.Name = "" }, `network: name: must not be empty`},
		{func(s *NetworkSpec) { s.Name = "_front" }, `network "_front": name: must start with a letter or digit`},
		{func(s *NetworkSpec) { s.Name = strings.Repeat("n", 64) }, `: name: must be at most 63 characters, got 64`},
		{func(s *NetworkSpec) { s.Labels = map[string]string{" ": ""} }, `network "front": labels: keys must not be empty`},
		{func(s *NetworkSpec) { s.Driver = "over lay" }, `network "front": driver: must be a driver name such as overlay, got "over lay"`},
		{func(s *NetworkSpec) { s.Ingress, s.Driver = true, "bridge" }, `network "front": driver: must be overlay for an ingress network, got "bridge"`},
		{func(s *NetworkSpec) { s.Ingress, s.Attachable = true, true }, `network "front": attachable: must be false for an ingress network`},
		{func(s *NetworkSpec) { s.IPAM.Subnet = "10.0.1.0" }, `network "front": ipam.subnet: must be an IPv4 CIDR such as 10.0.1.0/24, got "10.0.1.0"`},
		{func(s *NetworkSpec) { s.IPAM.Subnet = "10.0.1.0/33" }, `network "front": ipam.subnet: must be an IPv4 CIDR such as 10.0.1.0/24, got "10.0.1.0/33"`},
		{func(s *NetworkSpec) { s.IPAM.Subnet = "fd00::/64" }, `network "front": ipam.subnet: must be an IPv4 CIDR such as 10.0.1.0/24, got "fd00::/64"`},
		{func(s *NetworkSpec) { s.IPAM.Subnet = "10.0.1.1/24" }, `network "front": ipam.subnet: must be a network address, 10.0.1.0/24 rather than 10.0.1.1/24`},
		{func(s *NetworkSpec) { s.IPAM.Subnet = "" }, `network "front": ipam.gateway: needs ipam.subnet to be set`},
		{func(s *NetworkSpec) { s.IPAM = &IPAMConfig{Subnet: "10.0.0.0/31"} },
			`network "front": ipam.subnet: must have a prefix length between /8 and /29, got 10.0.0.0/31`},
		{func(s *NetworkSpec) { s.IPAM = &IPAMConfig{Subnet: "8.0.0.0/7"} },
			`network "front": ipam.subnet: must have a prefix length between /8 and /29, got 8.0.0.0/7`},
		{func(s *NetworkSpec) { s.IPAM = &IPAMConfig{Subnet: "127.100.0.0/16"} },
			`network "front": ipam.subnet: must not be a loopback, multicast or unspecified range, got 127.100.0.0/16`},
		{func(s *NetworkSpec) { s.IPAM.Gateway = "gw" }, `network "front": ipam.gateway: must be an IPv4 address, got "gw"`},
		{func(s *NetworkSpec) { s.IPAM.Gateway = "fd00::1" }, `network "front": ipam.gateway: must be an IPv4 address, got "fd00::1"`},
		{func(s *NetworkSpec) { s.IPAM.Gateway = "10.0.2.1" }, `network "front": ipam.gateway: must be inside subnet 10.0.1.0/24, got 10.0.2.1`},
		{func(s *NetworkSpec) { s.IPAM.Gateway = "10.0.1.0" },
			`network "front": ipam.gateway: must be a host address of subnet 10.0.1.0/24, not its network or broadcast address, got 10.0.1.0`},
		{func(s *NetworkSpec) { s.IPAM.Gateway = "10.0.1.255" },
			`network "front": ipam.gateway: must be a host address of subnet 10.0.1.0/24, not its network or broadcast address, got 10.0.1.255`},
	} {
		s := good()
		tc.bad(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) || len(ValidationErrors(err)) != 1 {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
	n := &Network{ID: "n1", Spec: good()}
	if err := n.Validate(); err != nil {
		t.Error(err)
	}
}

func TestTaskValidate(t *testing.T) {
	good := func() *Task {
		return &Task{ID: "t1", Name: "web.1", ServiceID: "s1", Slot: 1, Spec: goodService().TaskTemplate,
			DesiredState: TaskStateRunning, Status: TaskStatus{State: TaskStateNew}}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	global := good()
	global.Slot, global.NodeID = 0, "node1"
	if err := global.Validate(); err != nil {
		t.Fatalf("global task: %v", err)
	}
	for _, tc := range []struct {
		bad  func(*Task)
		want string
	}{
		{func(x *Task) { x.ServiceID = "" }, `task "web.1": service_id: must not be empty`},
		{func(x *Task) { x.Slot = 0 }, `task "web.1": slot: must be > 0 when node_id is empty`},
		{func(x *Task) { x.DesiredState = 99 }, `task "web.1": desired_state: must be a task state, got 99`},
		{func(x *Task) { x.Status.State = -1 }, `task "web.1": status.state: must be a task state, got -1`},
		{func(x *Task) { x.Spec.Container = nil }, `task "web.1": spec.runtime: must set one of container or process, got none`},
		{func(x *Task) { x.Spec.Container.Mounts[0].Target = "data" }, `task "web.1": spec.container.mounts[0].target: must be an absolute path`},
		{func(x *Task) { x.Name = ""; x.ServiceID = "" }, `task "t1": service_id: must not be empty`},
	} {
		x := good()
		tc.bad(x)
		if err := x.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) || len(ValidationErrors(err)) != 1 {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
}

func TestIsAbsContainerPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/a/b": true, `C:\x`: true, "c:/x": true,
		"": false, "a": false, "./a": false, "C:": false, "C:x": false, `\\server\share`: false, "1:/x": false,
	} {
		if got := isAbsContainerPath(p); got != want {
			t.Errorf("isAbsContainerPath(%q) = %v, want %v", p, got, want)
		}
	}
}
