package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/internal/bytesize"
	"github.com/apiary-io/apiary/swarm/api"
)

// serviceFlags are the flags of `service create` and `service update`. On
// update only the flags given change the spec.
type serviceFlags struct {
	name         string
	replicas     int64
	mode         string
	constraints  []string
	constraintRm []string
	publish      []string
	publishAdd   []string
	publishRm    []string
	networks     []string
	networkAdd   []string
	networkRm    []string
	endpointMode string
	// networkID, when set, maps a network's name or ID prefix to its ID,
	// so that --network-rm finds what the cluster stores (IDs); the
	// update command sets it from the cluster's networks.
	networkID func(string) string
	refs      fileRefFlags
	env       []string
	image     string
	labels    []string

	updParallelism   uint64
	updDelay         time.Duration
	updOrder         string
	updFailureAction string
	updMonitor       time.Duration

	restartCondition   string
	restartDelay       time.Duration
	restartMaxAttempts uint64

	reserveCPU    string
	reserveMemory string
	limitCPU      string
	limitMemory   string
	stopGrace     time.Duration
	forceUpdate   bool

	docker dockerFlags
}

func (f *serviceFlags) register(fs *pflag.FlagSet, create bool) {
	if create {
		fs.StringVar(&f.name, "name", "", "service name (required)")
		fs.StringVar(&f.mode, "mode", "replicated", "replicated, global, replicated-job or global-job")
		fs.StringArrayVar(&f.networks, "network", nil, "attach to a network: NAME or name=NAME[,alias=ALIAS...] (repeatable)")
	} else {
		fs.StringArrayVar(&f.networkAdd, "network-add", nil, "attach to a network: NAME or name=NAME[,alias=ALIAS...] (repeatable)")
		fs.StringArrayVar(&f.networkRm, "network-rm", nil, "detach from a network, by name or ID (repeatable)")
		fs.StringArrayVar(&f.publishAdd, "publish-add", nil, "publish a port, as --publish (repeatable)")
		fs.StringArrayVar(&f.publishRm, "publish-rm", nil, "stop publishing a port: PUBLISHED[/PROTOCOL] or published=PUBLISHED[,protocol=PROTOCOL] (repeatable)")
		fs.BoolVar(&f.forceUpdate, "force", false, "roll the tasks out again even if nothing changed")
		fs.StringSliceVar(&f.constraintRm, "constraint-rm", nil, "remove a placement constraint")
	}
	f.refs.register(fs, create)
	f.docker.register(fs, create)
	fs.Int64Var(&f.replicas, "replicas", 1, "number of tasks (replicated mode)")
	fs.StringArrayVar(&f.constraints, "constraint", nil, "placement constraint, e.g. node.labels.zone==a (repeatable)")
	fs.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port: [PUBLISHED:]TARGET[/PROTOCOL] or published=P,target=T[,protocol=tcp|udp|sctp][,mode=ingress|host][,proxy-protocol=v2][,traffic-policy=cluster|local] (repeatable)")
	fs.StringVar(&f.endpointMode, "endpoint-mode", api.ResolutionModeVIP, "how the service is reached: vip or dnsrr")
	fs.StringArrayVar(&f.env, "env", nil, "environment variable K=V (repeatable)")
	fs.StringArrayVar(&f.labels, "label", nil, "service label K=V (repeatable)")
	fs.StringVar(&f.image, "image", "", "run a Docker image instead of a process")
	fs.Uint64Var(&f.updParallelism, "update-parallelism", 1, "tasks updated at once (0: all)")
	fs.DurationVar(&f.updDelay, "update-delay", 0, "delay between update batches")
	fs.StringVar(&f.updOrder, "update-order", api.UpdateOrderStopFirst, "start-first or stop-first")
	fs.StringVar(&f.updFailureAction, "update-failure-action", api.UpdateFailureActionPause, "pause, continue or rollback")
	fs.DurationVar(&f.updMonitor, "update-monitor", 5*time.Second, "how long a new task is watched for failure")
	fs.StringVar(&f.restartCondition, "restart-condition", api.RestartConditionAny, "none, on-failure or any")
	fs.DurationVar(&f.restartDelay, "restart-delay", api.DefaultRestartDelay, "delay before a task is restarted")
	fs.Uint64Var(&f.restartMaxAttempts, "restart-max-attempts", 0, "restarts allowed (0: unlimited)")
	fs.StringVar(&f.reserveCPU, "reserve-cpu", "", "CPUs reserved per task, e.g. 0.5")
	fs.StringVar(&f.reserveMemory, "reserve-memory", "", "memory reserved per task, e.g. 256M or 1G")
	fs.StringVar(&f.limitCPU, "limit-cpu", "", "CPU limit per task")
	fs.StringVar(&f.limitMemory, "limit-memory", "", "memory limit per task")
	fs.DurationVar(&f.stopGrace, "stop-grace-period", api.DefaultStopGracePeriod, "time between SIGTERM and SIGKILL")
}

// apply writes the given flags into spec; changed tells which were given
// (all count on create). args is the command after "--".
func (f *serviceFlags) apply(spec *api.ServiceSpec, changed func(string) bool, args []string, create bool) error {
	if create {
		spec.Name = f.name
		if err := f.docker.mode(spec, f.mode, f.replicas, changed); err != nil {
			return err
		}
	} else if changed("replicas") {
		switch {
		case spec.Mode.Replicated != nil:
			spec.Mode.Replicated.Replicas = f.replicas
		case spec.Mode.ReplicatedJob != nil:
			spec.Mode.ReplicatedJob.TotalCompletions = f.replicas
		default:
			return fmt.Errorf("--replicas: service %q is %s, not replicated", spec.Name, spec.Mode.ModeName())
		}
	}
	t := &spec.TaskTemplate
	if create || changed("image") || len(args) > 0 {
		if err := f.runtime(t, changed, args, create); err != nil {
			return err
		}
	}
	if changed("env") || changed("env-file") {
		for _, e := range f.env {
			if !strings.Contains(e, "=") {
				return fmt.Errorf("--env %q: want K=V", e)
			}
		}
		// Docker's order: the files, then --env over them.
		env, err := readEnvFiles(f.docker.envFiles)
		if err != nil {
			return err
		}
		env = append(env, f.env...)
		if t.Container != nil {
			t.Container.Env = mergeEnv(t.Container.Env, env)
		} else if t.Process != nil {
			t.Process.Env = mergeEnv(t.Process.Env, env)
		}
	}
	if changed("stop-grace-period") {
		g := f.stopGrace
		if t.Container != nil {
			t.Container.StopGracePeriod = &g
		} else if t.Process != nil {
			t.Process.StopGracePeriod = &g
		}
	}
	if changed("label") {
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		for _, l := range f.labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return fmt.Errorf("--label %q: want K=V", l)
			}
			spec.Labels[k] = v
		}
	}
	if changed("constraint") || changed("constraint-rm") {
		if t.Placement == nil {
			t.Placement = &api.Placement{}
		}
		var keep []string
		for _, c := range t.Placement.Constraints {
			if !contains(f.constraintRm, c) {
				keep = append(keep, c)
			}
		}
		t.Placement.Constraints = append(keep, f.constraints...)
	}
	if err := f.applyEndpoint(spec, changed); err != nil {
		return err
	}
	if err := f.applyNetworks(t, changed); err != nil {
		return err
	}
	if err := f.refs.apply(t); err != nil {
		return err
	}
	if anyChanged(changed, updateFlags...) || (create && !spec.Mode.IsJob()) {
		if spec.Mode.IsJob() {
			return fmt.Errorf("--update-*: service %q is a job, never rolled out", spec.Name)
		}
		if err := checkRatio("update-max-failure-ratio", f.docker.updMaxFailureRatio); err != nil {
			return err
		}
		setUpdateConfig(&spec.UpdateConfig, changed, "update", api.UpdateConfig{Parallelism: f.updParallelism, Delay: f.updDelay,
			FailureAction: f.updFailureAction, Monitor: f.updMonitor, MaxFailureRatio: f.docker.updMaxFailureRatio, Order: f.updOrder})
	}
	if anyChanged(changed, "restart-condition", "restart-delay", "restart-max-attempts") {
		r := api.RestartPolicy{}
		if t.RestartPolicy != nil {
			r = *t.RestartPolicy
		}
		setIf(changed, "restart-condition", &r.Condition, f.restartCondition)
		if changed("restart-delay") {
			d := f.restartDelay
			r.Delay = &d
		}
		setIf(changed, "restart-max-attempts", &r.MaxAttempts, f.restartMaxAttempts)
		t.RestartPolicy = &r
	}
	if anyChanged(changed, "reserve-cpu", "reserve-memory", "limit-cpu", "limit-memory") {
		if t.Resources == nil {
			t.Resources = &api.ResourceRequirements{}
		}
		if err := setResources(&t.Resources.Reservations, changed, "reserve", f.reserveCPU, f.reserveMemory); err != nil {
			return err
		}
		if err := setResources(&t.Resources.Limits, changed, "limit", f.limitCPU, f.limitMemory); err != nil {
			return err
		}
	}
	if err := f.docker.apply(spec, changed, create); err != nil {
		return err
	}
	if f.forceUpdate {
		t.ForceUpdate++
	}
	return nil
}

func (f *serviceFlags) runtime(t *api.TaskSpec, changed func(string) bool, args []string, create bool) error {
	image := f.image
	if !changed("image") && t.Container != nil {
		image = t.Container.Image
	}
	if image != "" {
		c := t.Container
		if c == nil {
			c = &api.ContainerSpec{}
		}
		c.Image = image
		if len(args) > 0 {
			c.Command = args
		}
		t.Container, t.Process = c, nil
		return nil
	}
	if len(args) == 0 {
		if create {
			return fmt.Errorf("no command: give the process to run after --, or --image")
		}
		return nil
	}
	p := t.Process
	if p == nil {
		p = &api.ProcessSpec{}
	}
	p.Command = args
	t.Process, t.Container = p, nil
	return nil
}

func setResources(dst **api.Resources, changed func(string) bool, prefix, cpu, mem string) error {
	if !changed(prefix+"-cpu") && !changed(prefix+"-memory") {
		return nil
	}
	if *dst == nil {
		*dst = &api.Resources{}
	}
	if changed(prefix + "-cpu") {
		v, err := parseCPUs(cpu)
		if err != nil {
			return fmt.Errorf("--%s-cpu %q: %v", prefix, cpu, err)
		}
		(*dst).NanoCPUs = v
	}
	if changed(prefix + "-memory") {
		v, err := parseBytes(prefix+"-memory", mem)
		if err != nil {
			return err
		}
		(*dst).MemoryBytes = v
	}
	return nil
}

// parseBytes reads the size given to a flag as docker's --memory does
// (binary units: 512m is 512 MiB); an error names the flag.
func parseBytes(flag, s string) (int64, error) {
	v, err := bytesize.Parse(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: %w", flag, s, err)
	}
	return v, nil
}

// parseCPUs reads a number of CPUs such as 0.5 as nano-CPUs.
func parseCPUs(s string) (int64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0) { // NaN is not >= 0
		return 0, fmt.Errorf("want a non-negative number of CPUs such as 0.5")
	}
	// Rounded, not truncated: 8.001 × 1e9 is 8000999999.999999 in floating
	// point (found by FuzzParseCPUs).
	return floatToInt64(math.Round(v*1e9), "number of CPUs")
}

// floatToInt64 converts a parsed non-negative amount, refusing one an
// int64 cannot hold: Go's conversion of such a float is
// implementation-defined (on amd64 it comes out as -9223372036854775808).
func floatToInt64(v float64, what string) (int64, error) {
	if v >= math.MaxInt64 { // the float nearest MaxInt64 is 2^63, out of range
		return 0, fmt.Errorf("%s too large", what)
	}
	return int64(v), nil
}

func mergeEnv(cur, add []string) []string {
	out := append([]string(nil), cur...)
	for _, e := range add {
		k, _, _ := strings.Cut(e, "=")
		replaced := false
		for i, c := range out {
			if ck, _, _ := strings.Cut(c, "="); ck == k {
				out[i], replaced = e, true
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}

func setIf[T any](changed func(string) bool, name string, dst *T, v T) {
	if changed(name) {
		*dst = v
	}
}

func anyChanged(changed func(string) bool, names ...string) bool {
	for _, n := range names {
		if changed(n) {
			return true
		}
	}
	return false
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
