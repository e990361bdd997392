package stack

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/apiary-io/apiary/swarm/api"
)

// convertService maps one compose service; an error starts with the
// field's path below services.KEY.
func convertService(stack string, s types.ServiceConfig, refs names) (api.ServiceSpec, error) {
	if s.Image == "" {
		return api.ServiceSpec{}, errors.New("image: not set (a stack cannot build images)")
	}
	c := &api.ContainerSpec{
		Image:   s.Image,
		Command: []string(s.Entrypoint),
		Args:    []string(s.Command),
		Env:     environment(s.Environment),
		Dir:     s.WorkingDir,
		User:    s.User,
		Labels:  withNamespace(s.Labels, stack),
	}
	if s.StopGracePeriod != nil {
		d := time.Duration(*s.StopGracePeriod)
		c.StopGracePeriod = &d
	}
	for i, v := range s.Volumes {
		m, err := mount(v, refs.volumes)
		if err != nil {
			return api.ServiceSpec{}, fmt.Errorf("volumes[%d]: %w", i, err)
		}
		c.Mounts = append(c.Mounts, m)
	}
	spec := api.ServiceSpec{
		Annotations:  api.Annotations{Name: stack + "_" + s.Name},
		TaskTemplate: api.TaskSpec{Container: c},
	}
	var deployLabels map[string]string
	if s.Deploy != nil {
		deployLabels = s.Deploy.Labels
	}
	spec.Labels = withNamespace(deployLabels, stack)
	spec.Labels[LabelImage] = s.Image

	mode, err := serviceMode(s)
	if err != nil {
		return api.ServiceSpec{}, fmt.Errorf("deploy.%w", err)
	}
	spec.Mode = mode
	if err := deploy(&spec, s); err != nil {
		return api.ServiceSpec{}, err
	}
	if hc := s.HealthCheck; hc != nil {
		spec.TaskTemplate.HealthCheck = healthCheck(hc)
	}
	ports, err := ports(s.Ports)
	if err != nil {
		return api.ServiceSpec{}, err
	}
	if len(ports) > 0 || spec.EndpointSpec != nil {
		if spec.EndpointSpec == nil {
			spec.EndpointSpec = &api.EndpointSpec{}
		}
		spec.EndpointSpec.Ports = ports
	}
	nets, err := networks(s, refs.networks)
	if err != nil {
		return api.ServiceSpec{}, err
	}
	spec.TaskTemplate.Networks = nets
	for i, r := range s.Secrets {
		ref, err := fileRef(types.FileReferenceConfig(r), refs.secrets, false)
		if err != nil {
			return api.ServiceSpec{}, fmt.Errorf("secrets[%d]: %w", i, err)
		}
		spec.TaskTemplate.Secrets = append(spec.TaskTemplate.Secrets, api.SecretReference{SecretName: ref.name, File: ref.file})
	}
	for i, r := range s.Configs {
		ref, err := fileRef(types.FileReferenceConfig(r), refs.configs, true)
		if err != nil {
			return api.ServiceSpec{}, fmt.Errorf("configs[%d]: %w", i, err)
		}
		spec.TaskTemplate.Configs = append(spec.TaskTemplate.Configs, api.ConfigReference{ConfigName: ref.name, File: ref.file})
	}
	return spec, nil
}

// environment is the resolved environment (env_file merged by the
// loader) as sorted KEY=VALUE; a variable without a value is left out,
// as Docker leaves it.
func environment(env types.MappingWithEquals) []string {
	var out []string
	for k, v := range env {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

func serviceMode(s types.ServiceConfig) (api.ServiceMode, error) {
	replicas := int64(1)
	mode := ""
	if d := s.Deploy; d != nil {
		mode = d.Mode
		if d.Replicas != nil {
			replicas = int64(*d.Replicas)
		}
	}
	switch mode {
	case "", "replicated":
		return api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: replicas}}, nil
	case "global":
		if s.Deploy.Replicas != nil {
			return api.ServiceMode{}, errors.New("replicas: not allowed with mode global")
		}
		return api.ServiceMode{Global: &api.GlobalService{}}, nil
	case "replicated-job":
		return api.ServiceMode{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: replicas, TotalCompletions: replicas}}, nil
	case "global-job":
		return api.ServiceMode{GlobalJob: &api.GlobalJob{}}, nil
	}
	return api.ServiceMode{}, fmt.Errorf("mode: %q, want replicated, global, replicated-job or global-job", mode)
}

// deploy maps deploy: update and rollback configs, restart policy,
// placement, resources, endpoint mode; and restart: without a
// deploy.restart_policy.
func deploy(spec *api.ServiceSpec, s types.ServiceConfig) error {
	t := &spec.TaskTemplate
	rp, err := restartPolicy(s)
	if err != nil {
		return err
	}
	t.RestartPolicy = rp
	d := s.Deploy
	if d == nil {
		return nil
	}
	spec.UpdateConfig = updateConfig(d.UpdateConfig)
	spec.RollbackConfig = updateConfig(d.RollbackConfig)
	if pl := d.Placement; len(pl.Constraints) > 0 || len(pl.Preferences) > 0 || pl.MaxReplicas > 0 {
		t.Placement = &api.Placement{Constraints: pl.Constraints, MaxReplicas: pl.MaxReplicas}
		for _, p := range pl.Preferences {
			t.Placement.Preferences = append(t.Placement.Preferences, api.PlacementPreference{Spread: &api.SpreadOver{SpreadDescriptor: p.Spread}})
		}
	}
	if r := d.Resources; r.Limits != nil || r.Reservations != nil {
		t.Resources = &api.ResourceRequirements{Limits: resources(r.Limits), Reservations: resources(r.Reservations)}
	}
	switch d.EndpointMode {
	case "":
	case api.ResolutionModeVIP, api.ResolutionModeDNSRR:
		spec.EndpointSpec = &api.EndpointSpec{Mode: d.EndpointMode}
	default:
		return fmt.Errorf("deploy.endpoint_mode: %q, want vip or dnsrr", d.EndpointMode)
	}
	return nil
}

func restartPolicy(s types.ServiceConfig) (*api.RestartPolicy, error) {
	if s.Deploy != nil && s.Deploy.RestartPolicy != nil {
		r := s.Deploy.RestartPolicy
		p := &api.RestartPolicy{Condition: r.Condition}
		switch r.Condition {
		case "", api.RestartConditionNone, api.RestartConditionOnFailure, api.RestartConditionAny:
		default:
			return nil, fmt.Errorf("deploy.restart_policy.condition: %q, want none, on-failure or any", r.Condition)
		}
		if r.Delay != nil {
			d := time.Duration(*r.Delay)
			p.Delay = &d
		}
		if r.MaxAttempts != nil {
			p.MaxAttempts = *r.MaxAttempts
		}
		if r.Window != nil {
			p.Window = time.Duration(*r.Window)
		}
		return p, nil
	}
	// restart: as docker stack maps it.
	switch policy, arg, _ := strings.Cut(s.Restart, ":"); policy {
	case "":
		return nil, nil
	case "no":
		return &api.RestartPolicy{Condition: api.RestartConditionNone}, nil
	case "always", "unless-stopped":
		return &api.RestartPolicy{Condition: api.RestartConditionAny}, nil
	case "on-failure":
		p := &api.RestartPolicy{Condition: api.RestartConditionOnFailure}
		if arg != "" {
			n, err := strconv.ParseUint(arg, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("restart: %q: the attempts are not a number", s.Restart)
			}
			p.MaxAttempts = n
		}
		return p, nil
	}
	return nil, fmt.Errorf("restart: %q, want no, always, unless-stopped or on-failure[:N]", s.Restart)
}

func updateConfig(u *types.UpdateConfig) *api.UpdateConfig {
	if u == nil {
		return nil
	}
	c := api.DefaultUpdateConfig()
	if u.Parallelism != nil {
		c.Parallelism = *u.Parallelism
	}
	c.Delay = time.Duration(u.Delay)
	if u.FailureAction != "" {
		c.FailureAction = u.FailureAction
	}
	if u.Monitor != 0 {
		c.Monitor = time.Duration(u.Monitor)
	}
	c.MaxFailureRatio = float64(u.MaxFailureRatio)
	if u.Order != "" {
		c.Order = u.Order
	}
	return &c
}

func resources(r *types.Resource) *api.Resources {
	if r == nil {
		return nil
	}
	out := &api.Resources{NanoCPUs: int64(float64(r.NanoCPUs) * 1e9), MemoryBytes: int64(r.MemoryBytes)}
	for _, g := range r.GenericResources {
		if g.DiscreteResourceSpec != nil {
			out.GenericResources = append(out.GenericResources, api.GenericResource{DiscreteResourceSpec: &api.DiscreteGenericResource{Kind: g.DiscreteResourceSpec.Kind, Value: g.DiscreteResourceSpec.Value}})
		}
	}
	return out
}

func healthCheck(hc *types.HealthCheckConfig) *api.HealthConfig {
	if hc.Disable {
		return &api.HealthConfig{Test: []string{"NONE"}}
	}
	h := &api.HealthConfig{Test: []string(hc.Test)}
	if hc.Interval != nil {
		h.Interval = time.Duration(*hc.Interval)
	}
	if hc.Timeout != nil {
		h.Timeout = time.Duration(*hc.Timeout)
	}
	if hc.StartPeriod != nil {
		h.StartPeriod = time.Duration(*hc.StartPeriod)
	}
	if hc.Retries != nil {
		h.Retries = int(min(*hc.Retries, 1<<31-1))
	}
	return h
}

func ports(in []types.ServicePortConfig) ([]api.PortConfig, error) {
	var out []api.PortConfig
	for i, p := range in {
		pc := api.PortConfig{Name: p.Name, Protocol: p.Protocol, TargetPort: p.Target, PublishMode: p.Mode}
		if p.Published != "" {
			n, err := strconv.ParseUint(p.Published, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("ports[%d].published: %q is not a port (ranges are not supported)", i, p.Published)
			}
			pc.PublishedPort = uint32(n)
		}
		out = append(out, pc)
	}
	return out, nil
}

// networks attaches the service to its networks (the stack's default
// network when it names none) with its key as an alias, as docker stack
// does, so tasks reach it by its short name.
func networks(s types.ServiceConfig, names map[string]string) ([]api.NetworkAttachmentConfig, error) {
	nets := s.Networks
	if len(nets) == 0 {
		nets = map[string]*types.ServiceNetworkConfig{defaultNetwork: nil}
	}
	var out []api.NetworkAttachmentConfig
	for _, key := range sortedKeys(nets) {
		target, ok := names[key]
		if !ok {
			return nil, fmt.Errorf("networks.%s: not declared in the top-level networks", key)
		}
		aliases := []string{s.Name}
		if n := nets[key]; n != nil {
			aliases = append(aliases, n.Aliases...)
		}
		out = append(out, api.NetworkAttachmentConfig{Target: target, Aliases: aliases})
	}
	return out, nil
}

// secretsDir is where Docker puts a secret's file, which compose-go
// writes into short-form targets; ours are relative to the task's secrets
// directory.
const secretsDir = "/run/secrets/"

type fileReference struct {
	name string
	file *api.FileTarget
}

// fileRef maps a service's secret or config: the object's name in the
// cluster, and its file (target default the source; a config's path is
// relative to the configs' root, Docker's absolute one made relative).
func fileRef(r types.FileReferenceConfig, names map[string]string, config bool) (fileReference, error) {
	name, ok := names[r.Source]
	if !ok {
		return fileReference{}, fmt.Errorf("source %q: not declared in the top-level section", r.Source)
	}
	target := orKey(r.Target, r.Source)
	if config {
		target = strings.TrimPrefix(target, "/")
	} else {
		// The loader writes a short form's target as Docker's path.
		target = strings.TrimPrefix(target, secretsDir)
	}
	f := &api.FileTarget{Name: target, UID: orKey(r.UID, "0"), GID: orKey(r.GID, "0"), Mode: 0o444}
	if r.Mode != nil {
		f.Mode = os.FileMode(*r.Mode)
	}
	return fileReference{name: name, file: f}, nil
}

// mount maps a volume: bind, volume (a named one of the stack is
// NAME_x) or tmpfs.
func mount(v types.ServiceVolumeConfig, volumes map[string]string) (api.Mount, error) {
	m := api.Mount{Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
	switch v.Type {
	case api.MountTypeBind, api.MountTypeTmpfs:
	case api.MountTypeVolume:
		if v.Source != "" {
			name, ok := volumes[v.Source]
			if !ok {
				return api.Mount{}, fmt.Errorf("source %q: not declared in the top-level volumes", v.Source)
			}
			m.Source = name
		}
	default:
		return api.Mount{}, fmt.Errorf("type %q: want bind, volume or tmpfs", v.Type)
	}
	return m, nil
}
