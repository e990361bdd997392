package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/swarm/api"
)

// applyFlags parses args as service create (or update of base) parses its
// flags and applies them.
func applyFlags(t *testing.T, create bool, base api.ServiceSpec, args ...string) (api.ServiceSpec, error) {
	t.Helper()
	var fl serviceFlags
	fs := pflag.NewFlagSet("service", pflag.ContinueOnError)
	fs.SetOutput(nopWriter{})
	fl.register(fs, create)
	if err := fs.Parse(args); err != nil {
		return base, err
	}
	spec := base.Copy()
	err := fl.apply(&spec, fs.Changed, fs.Args(), create)
	return spec, err
}

func dockerSpec() api.ServiceSpec {
	s := existingSpec()
	s.TaskTemplate.Process = nil
	s.TaskTemplate.Container = &api.ContainerSpec{Image: "nginx", Mounts: []api.Mount{{Type: "volume", Source: "data", Target: "/data"}}}
	return s
}

// Docker's service flags land in the spec as docker puts them there.
func TestDockerServiceFlags(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, []byte("# comment\n\nA=from-file\nB=2\nFROM_ENV\nUNSET_XYZ\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FROM_ENV", "env-value")
	five := 5 * time.Second
	cases := []struct {
		name   string
		create bool
		base   api.ServiceSpec
		args   []string
		check  func(api.ServiceSpec) bool
	}{
		{"replicated job", true, api.ServiceSpec{}, []string{"--name", "j", "--mode", "replicated-job", "--replicas", "6", "--max-concurrent", "2", "/bin/job"},
			func(s api.ServiceSpec) bool {
				return reflect.DeepEqual(s.Mode.ReplicatedJob, &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 6}) && s.UpdateConfig == nil && s.RollbackConfig == nil
			}},
		{"global job", true, api.ServiceSpec{}, []string{"--name", "g", "--mode", "global-job", "/bin/job"},
			func(s api.ServiceSpec) bool { return s.Mode.GlobalJob != nil && s.UpdateConfig == nil }},
		{"health check", true, api.ServiceSpec{}, []string{"--name", "h", "--health-cmd", "curl -f localhost", "--health-interval", "2s", "--health-timeout", "1s", "--health-retries", "4", "--health-start-period", "3s", "/bin/app"},
			func(s api.ServiceSpec) bool {
				return reflect.DeepEqual(s.TaskTemplate.HealthCheck, &api.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}, Interval: 2 * time.Second, Timeout: time.Second, Retries: 4, StartPeriod: 3 * time.Second})
			}},
		{"no healthcheck", false, existingSpec(), []string{"--no-healthcheck"},
			func(s api.ServiceSpec) bool {
				return reflect.DeepEqual(s.TaskTemplate.HealthCheck.Test, []string{"NONE"})
			}},
		{"health interval alone keeps the command", false, func() api.ServiceSpec {
			s := existingSpec()
			s.TaskTemplate.HealthCheck = &api.HealthConfig{Test: []string{"CMD", "true"}, Retries: 3}
			return s
		}(), []string{"--health-interval", "5s"},
			func(s api.ServiceSpec) bool {
				return reflect.DeepEqual(s.TaskTemplate.HealthCheck, &api.HealthConfig{Test: []string{"CMD", "true"}, Retries: 3, Interval: five})
			}},
		{"restart window", false, existingSpec(), []string{"--restart-window", "1m", "--restart-max-attempts", "3"},
			func(s api.ServiceSpec) bool {
				r := s.TaskTemplate.RestartPolicy
				return r.Window == time.Minute && r.MaxAttempts == 3 && r.Condition == api.RestartConditionAny
			}},
		{"placement preference and max replicas", true, api.ServiceSpec{}, []string{"--name", "p", "--placement-pref", "spread=node.labels.zone", "--placement-pref", "spread=node.labels.rack", "--max-replicas", "2", "/bin/app"},
			func(s api.ServiceSpec) bool {
				p := s.TaskTemplate.Placement
				return p.MaxReplicas == 2 && len(p.Preferences) == 2 && p.Preferences[0].Spread.SpreadDescriptor == "node.labels.zone" && p.Preferences[1].Spread.SpreadDescriptor == "node.labels.rack"
			}},
		{"placement preference add and rm", false, func() api.ServiceSpec {
			s := existingSpec()
			s.TaskTemplate.Placement = &api.Placement{Preferences: []api.PlacementPreference{{Spread: &api.SpreadOver{SpreadDescriptor: "node.labels.zone"}}}}
			return s
		}(), []string{"--placement-pref-rm", "spread=node.labels.zone", "--placement-pref-add", "spread=node.labels.dc"},
			func(s api.ServiceSpec) bool {
				p := s.TaskTemplate.Placement.Preferences
				return len(p) == 1 && p[0].Spread.SpreadDescriptor == "node.labels.dc"
			}},
		{"generic resources", true, api.ServiceSpec{}, []string{"--name", "g", "--generic-resource", "gpu=2", "--generic-resource", "ssd=disk-a", "/bin/app"},
			func(s api.ServiceSpec) bool {
				g := s.TaskTemplate.Resources.Reservations.GenericResources
				return len(g) == 2 && g[0].DiscreteResourceSpec.Kind == "gpu" && g[0].DiscreteResourceSpec.Value == 2 &&
					g[1].NamedResourceSpec.Kind == "ssd" && g[1].NamedResourceSpec.Value == "disk-a"
			}},
		{"generic resource rm", false, func() api.ServiceSpec {
			s := existingSpec()
			s.TaskTemplate.Resources = &api.ResourceRequirements{Reservations: &api.Resources{GenericResources: []api.GenericResource{{DiscreteResourceSpec: &api.DiscreteGenericResource{Kind: "gpu", Value: 1}}}}}
			return s
		}(), []string{"--generic-resource-rm", "gpu", "--generic-resource-add", "fpga=1"},
			func(s api.ServiceSpec) bool {
				g := s.TaskTemplate.Resources.Reservations.GenericResources
				return len(g) == 1 && g[0].DiscreteResourceSpec.Kind == "fpga"
			}},
		{"update max failure ratio", false, existingSpec(), []string{"--update-max-failure-ratio", "0.25"},
			func(s api.ServiceSpec) bool {
				return s.UpdateConfig.MaxFailureRatio == 0.25 && s.UpdateConfig.Parallelism == 1
			}},
		{"rollback config", false, existingSpec(), []string{"--rollback-parallelism", "3", "--rollback-delay", "2s", "--rollback-failure-action", "continue", "--rollback-monitor", "7s", "--rollback-max-failure-ratio", "0.5", "--rollback-order", "start-first"},
			func(s api.ServiceSpec) bool {
				return reflect.DeepEqual(*s.RollbackConfig, api.UpdateConfig{Parallelism: 3, Delay: 2 * time.Second, FailureAction: "continue", Monitor: 7 * time.Second, MaxFailureRatio: 0.5, Order: "start-first"})
			}},
		{"env file under env", true, api.ServiceSpec{}, []string{"--name", "e", "--env-file", envFile, "--env", "B=from-flag", "/bin/app"},
			func(s api.ServiceSpec) bool {
				return reflect.DeepEqual(s.TaskTemplate.Process.Env, []string{"A=from-file", "B=from-flag", "FROM_ENV=env-value"})
			}},
		{"mounts", true, api.ServiceSpec{}, []string{"--name", "m", "--image", "nginx", "--mount", "type=bind,source=/srv,target=/srv,readonly", "--mount", "type=tmpfs,dst=/tmp", "--mount", "src=data,target=/data,ro=false"},
			func(s api.ServiceSpec) bool {
				return reflect.DeepEqual(s.TaskTemplate.Container.Mounts, []api.Mount{
					{Type: "bind", Source: "/srv", Target: "/srv", ReadOnly: true}, {Type: "tmpfs", Target: "/tmp"}, {Type: "volume", Source: "data", Target: "/data"}})
			}},
		{"mount add replaces by target, rm removes", false, dockerSpec(), []string{"--mount-add", "type=volume,source=other,target=/data", "--mount-add", "type=tmpfs,target=/run", "--mount-rm", "/nothing"},
			func(s api.ServiceSpec) bool {
				return reflect.DeepEqual(s.TaskTemplate.Container.Mounts, []api.Mount{{Type: "volume", Source: "other", Target: "/data"}, {Type: "tmpfs", Target: "/run"}})
			}},
		{"stop signal", true, api.ServiceSpec{}, []string{"--name", "s", "--stop-signal", "SIGINT", "/bin/app"},
			func(s api.ServiceSpec) bool { return s.TaskTemplate.Process.StopSignal == "SIGINT" }},
		{"stop signal of a docker task", false, dockerSpec(), []string{"--stop-signal", "3"},
			func(s api.ServiceSpec) bool { return s.TaskTemplate.Container.StopSignal == "3" }},
		{"mount rm", false, dockerSpec(), []string{"--mount-rm", "/data"},
			func(s api.ServiceSpec) bool { return len(s.TaskTemplate.Container.Mounts) == 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := applyFlags(t, c.create, c.base, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(spec) {
				t.Fatalf("spec: %+v", spec)
			}
			// What the flags make, the control API takes.
			spec.ApplyDefaults()
			if err := spec.Validate(); err != nil {
				t.Fatalf("does not validate: %v", err)
			}
		})
	}
}

// Bad values are refused naming the flag.
func TestDockerServiceFlagsRefused(t *testing.T) {
	job := api.ServiceSpec{Annotations: api.Annotations{Name: "j"}, Mode: api.ServiceMode{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 1}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"/bin/job"}}}}
	cases := []struct {
		create bool
		base   api.ServiceSpec
		args   []string
		want   string
	}{
		{true, api.ServiceSpec{}, []string{"--name", "x", "--mode", "cron", "/a"}, `--mode: "cron" is not replicated, global, replicated-job or global-job`},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--mode", "global-job", "--replicas", "2", "/a"}, "--replicas: not allowed with --mode global-job"},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--max-concurrent", "2", "/a"}, "--max-concurrent: only for --mode replicated-job"},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--mode", "replicated-job", "--update-delay", "1s", "/a"}, "--update-delay: jobs are never rolled out"},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--mode", "global-job", "--rollback-order", "start-first", "/a"}, "--rollback-order: jobs are never rolled out"},
		{false, job, []string{"--update-parallelism", "2"}, "--update-*: service \"j\" is a job"},
		{false, existingSpec(), []string{"--max-concurrent", "2"}, "--max-concurrent: service \"web\" is not a replicated job"},
		{false, existingSpec(), []string{"--no-healthcheck", "--health-cmd", "true"}, "--no-healthcheck: conflicts with --health-* options"},
		{false, existingSpec(), []string{"--health-interval", "-1s"}, "--health-interval -1s: must not be negative"},
		{false, existingSpec(), []string{"--health-retries", "-2"}, "--health-retries -2: must not be negative"},
		{false, existingSpec(), []string{"--restart-window", "-1s"}, "--restart-window -1s: must not be negative"},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--placement-pref", "pack=node.labels.zone", "/a"}, `--placement-pref "pack=node.labels.zone": want spread=node.labels.K`},
		{false, existingSpec(), []string{"--placement-pref-add", "spread="}, `--placement-pref-add "spread=": want spread=node.labels.K`},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--generic-resource", "gpu", "/a"}, `--generic-resource "gpu": want KIND=COUNT or KIND=NAME`},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--generic-resource", "gpu=0", "/a"}, `--generic-resource "gpu=0": a count must be positive`},
		{false, existingSpec(), []string{"--update-max-failure-ratio", "1.5"}, "--update-max-failure-ratio 1.5: want a fraction from 0 to 1"},
		{false, existingSpec(), []string{"--rollback-max-failure-ratio", "-0.1"}, "--rollback-max-failure-ratio -0.1: want a fraction from 0 to 1"},
		{false, existingSpec(), []string{"--rollback-failure-action", "rollback"}, `--rollback-failure-action "rollback": want pause or continue`},
		{false, existingSpec(), []string{"--stop-signal", "SIGNOPE"}, `--stop-signal: "SIGNOPE" is not a signal name`},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--env-file", "/nonexistent/env", "/a"}, "--env-file: open /nonexistent/env"},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--mount", "type=bind,target=/x", "/a"}, "--mount: mounts are for Docker tasks (--image)"},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--image", "nginx", "--mount", "type=bind,target=/x"}, `--mount "type=bind,target=/x": a bind mount needs a source`},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--image", "nginx", "--mount", "type=nfs,target=/x"}, `--mount "type=nfs,target=/x": type "nfs": want bind, volume or tmpfs`},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--image", "nginx", "--mount", "source=a"}, `--mount "source=a": target is required`},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--image", "nginx", "--mount", "target=/a,color=red"}, `--mount "target=/a,color=red": unknown field "color"`},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--image", "nginx", "--mount", "type=tmpfs,source=a,target=/a"}, "a tmpfs mount takes no source"},
		{true, api.ServiceSpec{}, []string{"--name", "x", "--image", "nginx", "--mount", "target=/a,readonly=maybe"}, `readonly="maybe": want true or false`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, err := applyFlags(t, c.create, c.base, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "--") {
				t.Fatalf("error %v, want one with %q", err, c.want)
			}
		})
	}
}

// An env file too large or with a line that is not K=V is refused naming
// the file and line.
func TestEnvFileBounds(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("A=1\n", maxEnvFileBytes/4+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("A=1\nnot a var\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readEnvFiles([]string{big}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a file over the bound: %v", err)
	}
	if _, err := readEnvFiles([]string{bad}); err == nil || !strings.Contains(err.Error(), bad+":2") {
		t.Errorf("a bad line: %v", err)
	}
}
