package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/apiary-io/apiary/swarm/api"
)

// dockerFlags are the flags of `docker service create|update` that the
// first set of serviceFlags lacked: health checks, the restart window, the
// stop signal,
// placement preferences and per-node bounds, generic resources, the
// rollback config, env files, mounts and the job modes' concurrency. Each
// parses as Docker's does; a bad value is refused naming its flag.
type dockerFlags struct {
	maxConcurrent uint64

	healthCmd         string
	healthInterval    time.Duration
	healthTimeout     time.Duration
	healthRetries     int
	healthStartPeriod time.Duration
	noHealthcheck     bool

	restartWindow time.Duration
	stopSignal    string

	placementPrefs   []string
	placementPrefsRm []string
	maxReplicas      uint64
	generic          []string
	genericRm        []string

	updMaxFailureRatio float64
	rbParallelism      uint64
	rbDelay            time.Duration
	rbFailureAction    string
	rbMonitor          time.Duration
	rbMaxFailureRatio  float64
	rbOrder            string

	envFiles []string
	mounts   []string
	mountsRm []string
}

// Bounds on what the flags read from outside the command line.
const (
	// maxEnvFileBytes bounds one --env-file (Docker reads whole files; a
	// spec holds at most api.MaxSpecBytes anyway).
	maxEnvFileBytes = 1 << 20
)

func (f *dockerFlags) register(fs *pflag.FlagSet, create bool) {
	fs.Uint64Var(&f.maxConcurrent, "max-concurrent", 0, "tasks of a replicated job run at once (default 1)")
	fs.StringVar(&f.healthCmd, "health-cmd", "", "command run to check health (CMD-SHELL)")
	fs.DurationVar(&f.healthInterval, "health-interval", 0, "time between health checks (default 30s)")
	fs.DurationVar(&f.healthTimeout, "health-timeout", 0, "how long one check may run (default 30s)")
	fs.IntVar(&f.healthRetries, "health-retries", 0, "consecutive failures that make a task unhealthy (default 3)")
	fs.DurationVar(&f.healthStartPeriod, "health-start-period", 0, "start period: failures in it do not count")
	fs.BoolVar(&f.noHealthcheck, "no-healthcheck", false, "disable any health check the image has")
	fs.DurationVar(&f.restartWindow, "restart-window", 0, "window in which --restart-max-attempts counts restarts")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal that asks a task to stop instead of SIGTERM, e.g. SIGINT or 2")
	if create {
		fs.StringArrayVar(&f.placementPrefs, "placement-pref", nil, "placement preference: spread=node.labels.K (repeatable)")
		fs.StringArrayVar(&f.generic, "generic-resource", nil, "generic resource reserved per task: KIND=COUNT or KIND=NAME (repeatable)")
		fs.StringArrayVar(&f.mounts, "mount", nil, "mount for a Docker task: type=bind|volume|tmpfs,source=S,target=T[,readonly] (repeatable)")
	} else {
		fs.StringArrayVar(&f.placementPrefs, "placement-pref-add", nil, "add a placement preference: spread=node.labels.K (repeatable)")
		fs.StringArrayVar(&f.placementPrefsRm, "placement-pref-rm", nil, "remove a placement preference (repeatable)")
		fs.StringArrayVar(&f.generic, "generic-resource-add", nil, "add a generic resource: KIND=COUNT or KIND=NAME (repeatable)")
		fs.StringArrayVar(&f.genericRm, "generic-resource-rm", nil, "remove the generic resources of a KIND (repeatable)")
		fs.StringArrayVar(&f.mounts, "mount-add", nil, "add or replace a mount (same target), as --mount (repeatable)")
		fs.StringArrayVar(&f.mountsRm, "mount-rm", nil, "remove the mount of a target path (repeatable)")
	}
	fs.Uint64Var(&f.maxReplicas, "max-replicas", 0, "tasks of the service per node (0: unbounded)")
	fs.Float64Var(&f.updMaxFailureRatio, "update-max-failure-ratio", 0, "fraction of tasks that may fail an update, 0 to 1")
	fs.Uint64Var(&f.rbParallelism, "rollback-parallelism", 1, "tasks rolled back at once (0: all)")
	fs.DurationVar(&f.rbDelay, "rollback-delay", 0, "delay between rollback batches")
	fs.StringVar(&f.rbFailureAction, "rollback-failure-action", api.UpdateFailureActionPause, "pause or continue when a rollback fails")
	fs.DurationVar(&f.rbMonitor, "rollback-monitor", 5*time.Second, "how long a rolled-back task is watched for failure")
	fs.Float64Var(&f.rbMaxFailureRatio, "rollback-max-failure-ratio", 0, "fraction of tasks that may fail a rollback, 0 to 1")
	fs.StringVar(&f.rbOrder, "rollback-order", api.UpdateOrderStopFirst, "start-first or stop-first")
	fs.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file, one K=V a line (repeatable)")
}

// rollbackFlags and updateFlags name the flags that write the rollback
// and update configs: a job has neither.
var (
	rollbackFlags = []string{"rollback-parallelism", "rollback-delay", "rollback-failure-action", "rollback-monitor", "rollback-max-failure-ratio", "rollback-order"}
	updateFlags   = []string{"update-parallelism", "update-delay", "update-order", "update-failure-action", "update-monitor", "update-max-failure-ratio"}
)

// mode applies --mode, --replicas and --max-concurrent of `service create`.
func (f *dockerFlags) mode(spec *api.ServiceSpec, mode string, replicas int64, changed func(string) bool) error {
	if changed("max-concurrent") && mode != "replicated-job" {
		return fmt.Errorf("--max-concurrent: only for --mode replicated-job")
	}
	switch mode {
	case "replicated":
		spec.Mode = api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: replicas}}
	case "global", "global-job":
		if changed("replicas") {
			return fmt.Errorf("--replicas: not allowed with --mode %s", mode)
		}
		spec.Mode = api.ServiceMode{Global: &api.GlobalService{}}
		if mode == "global-job" {
			spec.Mode = api.ServiceMode{GlobalJob: &api.GlobalJob{}}
		}
	case "replicated-job":
		if replicas < 0 {
			return fmt.Errorf("--replicas %d: must not be negative", replicas)
		}
		if f.maxConcurrent > api.MaxReplicas {
			return fmt.Errorf("--max-concurrent %d: at most %d", f.maxConcurrent, api.MaxReplicas)
		}
		j := &api.ReplicatedJob{MaxConcurrent: int64(f.maxConcurrent)}
		if changed("replicas") {
			j.TotalCompletions = replicas
		}
		spec.Mode = api.ServiceMode{ReplicatedJob: j}
	default:
		return fmt.Errorf("--mode: %q is not replicated, global, replicated-job or global-job", mode)
	}
	if spec.Mode.IsJob() {
		for _, n := range append(append([]string(nil), updateFlags...), rollbackFlags...) {
			if changed(n) {
				return fmt.Errorf("--%s: jobs are never rolled out (mode %s)", n, mode)
			}
		}
	}
	return nil
}

// apply writes the given flags into spec.
func (f *dockerFlags) apply(spec *api.ServiceSpec, changed func(string) bool, create bool) error {
	t := &spec.TaskTemplate
	if err := f.applyHealth(t, changed); err != nil {
		return err
	}
	if changed("restart-window") {
		if f.restartWindow < 0 {
			return fmt.Errorf("--restart-window %s: must not be negative", f.restartWindow)
		}
		if t.RestartPolicy == nil {
			t.RestartPolicy = &api.RestartPolicy{}
		}
		t.RestartPolicy.Window = f.restartWindow
	}
	if changed("stop-signal") {
		if f.stopSignal != "" {
			if _, _, err := api.ParseStopSignal(f.stopSignal); err != nil {
				return fmt.Errorf("--stop-signal: %w", err)
			}
		}
		switch {
		case t.Container != nil:
			t.Container.StopSignal = f.stopSignal
		case t.Process != nil:
			t.Process.StopSignal = f.stopSignal
		}
	}
	if err := f.applyPlacement(t, changed); err != nil {
		return err
	}
	if err := f.applyGeneric(t, changed); err != nil {
		return err
	}
	if changed("max-concurrent") && !create {
		if spec.Mode.ReplicatedJob == nil {
			return fmt.Errorf("--max-concurrent: service %q is not a replicated job", spec.Name)
		}
		spec.Mode.ReplicatedJob.MaxConcurrent = int64(f.maxConcurrent)
	}
	if err := checkRatio("update-max-failure-ratio", f.updMaxFailureRatio); err != nil {
		return err
	}
	if err := checkRatio("rollback-max-failure-ratio", f.rbMaxFailureRatio); err != nil {
		return err
	}
	if anyChanged(changed, rollbackFlags...) || (create && !spec.Mode.IsJob()) {
		if spec.Mode.IsJob() {
			return fmt.Errorf("--rollback-*: service %q is a job, never rolled out", spec.Name)
		}
		if changed("rollback-failure-action") && f.rbFailureAction == api.UpdateFailureActionRollback {
			return fmt.Errorf("--rollback-failure-action %q: want pause or continue", f.rbFailureAction)
		}
		setUpdateConfig(&spec.RollbackConfig, changed, "rollback", api.UpdateConfig{Parallelism: f.rbParallelism, Delay: f.rbDelay,
			FailureAction: f.rbFailureAction, Monitor: f.rbMonitor, MaxFailureRatio: f.rbMaxFailureRatio, Order: f.rbOrder})
	}
	return f.applyMounts(t, changed, create)
}

// setUpdateConfig writes the --PREFIX-* flags given (update or rollback)
// into *dst, from Swarm's defaults when it is unset.
func setUpdateConfig(dst **api.UpdateConfig, changed func(string) bool, prefix string, v api.UpdateConfig) {
	u := api.DefaultUpdateConfig()
	if *dst != nil {
		u = **dst
	}
	setIf(changed, prefix+"-parallelism", &u.Parallelism, v.Parallelism)
	setIf(changed, prefix+"-delay", &u.Delay, v.Delay)
	setIf(changed, prefix+"-failure-action", &u.FailureAction, v.FailureAction)
	setIf(changed, prefix+"-monitor", &u.Monitor, v.Monitor)
	setIf(changed, prefix+"-max-failure-ratio", &u.MaxFailureRatio, v.MaxFailureRatio)
	setIf(changed, prefix+"-order", &u.Order, v.Order)
	*dst = &u
}

func checkRatio(flag string, v float64) error {
	if !(v >= 0 && v <= 1) { // NaN fails both
		return fmt.Errorf("--%s %v: want a fraction from 0 to 1", flag, v)
	}
	return nil
}

func (f *dockerFlags) applyHealth(t *api.TaskSpec, changed func(string) bool) error {
	timing := []string{"health-interval", "health-timeout", "health-retries", "health-start-period"}
	if f.noHealthcheck {
		if changed("health-cmd") || anyChanged(changed, timing...) {
			return fmt.Errorf("--no-healthcheck: conflicts with --health-* options")
		}
		t.HealthCheck = &api.HealthConfig{Test: []string{"NONE"}}
		return nil
	}
	if !changed("health-cmd") && !anyChanged(changed, timing...) {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"health-interval", f.healthInterval}, {"health-timeout", f.healthTimeout}, {"health-start-period", f.healthStartPeriod}} {
		if d.v < 0 {
			return fmt.Errorf("--%s %s: must not be negative", d.name, d.v)
		}
	}
	if f.healthRetries < 0 {
		return fmt.Errorf("--health-retries %d: must not be negative", f.healthRetries)
	}
	h := &api.HealthConfig{}
	if t.HealthCheck != nil {
		c := *t.HealthCheck
		h = &c
	}
	if changed("health-cmd") {
		h.Test = nil
		if f.healthCmd != "" {
			h.Test = []string{"CMD-SHELL", f.healthCmd}
		}
	}
	setIf(changed, "health-interval", &h.Interval, f.healthInterval)
	setIf(changed, "health-timeout", &h.Timeout, f.healthTimeout)
	setIf(changed, "health-retries", &h.Retries, f.healthRetries)
	setIf(changed, "health-start-period", &h.StartPeriod, f.healthStartPeriod)
	t.HealthCheck = h
	return nil
}

func (f *dockerFlags) applyPlacement(t *api.TaskSpec, changed func(string) bool) error {
	prefs := f.placementPrefs
	if !changed("placement-pref") && !changed("placement-pref-add") && !changed("placement-pref-rm") && !changed("max-replicas") {
		return nil
	}
	if t.Placement == nil {
		t.Placement = &api.Placement{}
	}
	p := t.Placement
	if changed("max-replicas") {
		p.MaxReplicas = f.maxReplicas
	}
	parse := func(flag, s string) (string, error) {
		strategy, desc, ok := strings.Cut(s, "=")
		if !ok || strategy != "spread" || desc == "" {
			return "", fmt.Errorf("--%s %q: want spread=node.labels.K", flag, s)
		}
		return desc, nil
	}
	var rm []string
	for _, s := range f.placementPrefsRm {
		d, err := parse("placement-pref-rm", s)
		if err != nil {
			return err
		}
		rm = append(rm, d)
	}
	var keep []api.PlacementPreference
	for _, x := range p.Preferences {
		if x.Spread == nil || !contains(rm, x.Spread.SpreadDescriptor) {
			keep = append(keep, x)
		}
	}
	flag := "placement-pref"
	if changed("placement-pref-add") {
		flag = "placement-pref-add"
	}
	for _, s := range prefs {
		d, err := parse(flag, s)
		if err != nil {
			return err
		}
		keep = append(keep, api.PlacementPreference{Spread: &api.SpreadOver{SpreadDescriptor: d}})
	}
	p.Preferences = keep
	return nil
}

// parseGeneric reads KIND=COUNT (a discrete count, as Docker's
// --generic-resource gpu=2) or KIND=NAME (one named unit).
func parseGeneric(flag, s string) (api.GenericResource, error) {
	kind, v, ok := strings.Cut(s, "=")
	if !ok || kind == "" || v == "" {
		return api.GenericResource{}, fmt.Errorf("--%s %q: want KIND=COUNT or KIND=NAME", flag, s)
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return api.GenericResource{}, fmt.Errorf("--%s %q: a count must be positive", flag, s)
		}
		return api.GenericResource{DiscreteResourceSpec: &api.DiscreteGenericResource{Kind: kind, Value: n}}, nil
	}
	return api.GenericResource{NamedResourceSpec: &api.NamedGenericResource{Kind: kind, Value: v}}, nil
}

func genericKind(g api.GenericResource) string {
	if g.DiscreteResourceSpec != nil {
		return g.DiscreteResourceSpec.Kind
	}
	if g.NamedResourceSpec != nil {
		return g.NamedResourceSpec.Kind
	}
	return ""
}

func (f *dockerFlags) applyGeneric(t *api.TaskSpec, changed func(string) bool) error {
	if !changed("generic-resource") && !changed("generic-resource-add") && !changed("generic-resource-rm") {
		return nil
	}
	flag := "generic-resource"
	if changed("generic-resource-add") {
		flag = "generic-resource-add"
	}
	var add []api.GenericResource
	for _, s := range f.generic {
		g, err := parseGeneric(flag, s)
		if err != nil {
			return err
		}
		add = append(add, g)
	}
	if t.Resources == nil {
		t.Resources = &api.ResourceRequirements{}
	}
	if t.Resources.Reservations == nil {
		t.Resources.Reservations = &api.Resources{}
	}
	r := t.Resources.Reservations
	var keep []api.GenericResource
	for _, g := range r.GenericResources {
		if !contains(f.genericRm, genericKind(g)) {
			keep = append(keep, g)
		}
	}
	r.GenericResources = append(keep, add...)
	return nil
}

// readEnvFiles reads K=V lines as docker's --env-file: blank lines and
// lines starting with # skipped, a bare K taken from this environment
// (left out when unset), at most maxEnvFileBytes a file.
func readEnvFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fh, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		st, err := fh.Stat()
		if err == nil && st.Size() > maxEnvFileBytes {
			err = fmt.Errorf("%d bytes, at most %d", st.Size(), maxEnvFileBytes)
		}
		if err != nil {
			fh.Close()
			return nil, fmt.Errorf("--env-file %s: %w", p, err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), maxEnvFileBytes)
		line := 0
		for sc.Scan() {
			line++
			l := strings.TrimLeft(sc.Text(), " \t")
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			k, _, hasValue := strings.Cut(l, "=")
			if k == "" || strings.ContainsAny(k, " \t") {
				fh.Close()
				return nil, fmt.Errorf("--env-file %s:%d: %q is not K=V", p, line, l)
			}
			if !hasValue {
				v, ok := os.LookupEnv(k)
				if !ok {
					continue
				}
				l = k + "=" + v
			}
			out = append(out, l)
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", p, err)
		}
	}
	return out, nil
}

// parseMount reads Docker's --mount: comma-separated key=value fields,
// type (bind, volume or tmpfs; volume by default), source|src, target|dst|
// destination, readonly|ro (bare or =true|false|1|0).
func parseMount(flag, s string) (api.Mount, error) {
	m := api.Mount{Type: api.MountTypeVolume}
	bad := func(why string, a ...any) (api.Mount, error) {
		return api.Mount{}, fmt.Errorf("--%s %q: %s", flag, s, fmt.Sprintf(why, a...))
	}
	for _, field := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(strings.TrimSpace(field), "=")
		switch strings.ToLower(k) {
		case "type":
			switch v {
			case api.MountTypeBind, api.MountTypeVolume, api.MountTypeTmpfs:
				m.Type = v
			default:
				return bad("type %q: want bind, volume or tmpfs", v)
			}
		case "source", "src":
			m.Source = v
		case "target", "dst", "destination":
			m.Target = v
		case "readonly", "ro":
			if !hasValue {
				m.ReadOnly = true
				continue
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("%s=%q: want true or false", k, v)
			}
			m.ReadOnly = b
		default:
			return bad("unknown field %q", k)
		}
	}
	switch {
	case m.Target == "":
		return bad("target is required")
	case m.Type == api.MountTypeBind && m.Source == "":
		return bad("a bind mount needs a source")
	case m.Type == api.MountTypeTmpfs && m.Source != "":
		return bad("a tmpfs mount takes no source")
	}
	return m, nil
}

func (f *dockerFlags) applyMounts(t *api.TaskSpec, changed func(string) bool, create bool) error {
	name := "mount"
	if !create {
		name = "mount-add"
	}
	if !changed(name) && !changed("mount-rm") {
		return nil
	}
	if t.Container == nil {
		return fmt.Errorf("--%s: mounts are for Docker tasks (--image)", name)
	}
	var keep []api.Mount
	for _, m := range t.Container.Mounts {
		if !contains(f.mountsRm, m.Target) {
			keep = append(keep, m)
		}
	}
	for _, s := range f.mounts {
		m, err := parseMount(name, s)
		if err != nil {
			return err
		}
		replaced := false
		for i := range keep {
			if keep[i].Target == m.Target {
				keep[i], replaced = m, true
			}
		}
		if !replaced {
			keep = append(keep, m)
		}
	}
	t.Container.Mounts = keep
	return nil
}
