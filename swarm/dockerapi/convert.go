package dockerapi

import (
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/apiary-io/apiary/swarm/api"
)

// The mapping between Docker's swarm types and ours, field by field. What
// Docker has and we do not (log drivers, privileges, DNS settings, ...) is
// not mapped: it survives in the service's extension (servicespec.go) and
// is not enforced.

// secretsDir is where Docker mounts secrets; a target under it is one
// relative to our secrets directory.
const secretsDir = "/run/secrets/"

// toAPIServiceSpec maps a Docker service spec to ours.
func toAPIServiceSpec(d swarm.ServiceSpec) api.ServiceSpec {
	s := api.ServiceSpec{
		Annotations:    api.Annotations{Name: d.Name, Labels: d.Labels},
		TaskTemplate:   toAPITaskSpec(d.TaskTemplate),
		UpdateConfig:   toAPIUpdateConfig(d.UpdateConfig),
		RollbackConfig: toAPIUpdateConfig(d.RollbackConfig),
	}
	switch m := d.Mode; {
	case m.Replicated != nil:
		r := int64(1) // Docker's default when Replicas is unset
		if m.Replicated.Replicas != nil {
			r = int64(min(*m.Replicated.Replicas, uint64(1)<<62))
		}
		s.Mode.Replicated = &api.ReplicatedService{Replicas: r}
	case m.Global != nil:
		s.Mode.Global = &api.GlobalService{}
	case m.ReplicatedJob != nil:
		j := &api.ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 1}
		if m.ReplicatedJob.MaxConcurrent != nil {
			j.MaxConcurrent = int64(min(*m.ReplicatedJob.MaxConcurrent, uint64(1)<<62))
		}
		if m.ReplicatedJob.TotalCompletions != nil {
			j.TotalCompletions = int64(min(*m.ReplicatedJob.TotalCompletions, uint64(1)<<62))
		} else {
			j.TotalCompletions = j.MaxConcurrent
		}
		s.Mode.ReplicatedJob = j
	case m.GlobalJob != nil:
		s.Mode.GlobalJob = &api.GlobalJob{}
	default:
		s.Mode.Replicated = &api.ReplicatedService{Replicas: 1}
	}
	if e := d.EndpointSpec; e != nil {
		es := &api.EndpointSpec{Mode: string(e.Mode)}
		for _, p := range e.Ports {
			es.Ports = append(es.Ports, api.PortConfig{Name: p.Name, Protocol: string(p.Protocol), TargetPort: p.TargetPort, PublishedPort: p.PublishedPort, PublishMode: string(p.PublishMode)})
		}
		s.EndpointSpec = es
	}
	return s
}

func toAPIUpdateConfig(u *swarm.UpdateConfig) *api.UpdateConfig {
	if u == nil {
		return nil
	}
	return &api.UpdateConfig{Parallelism: u.Parallelism, Delay: u.Delay, FailureAction: u.FailureAction, Monitor: u.Monitor,
		MaxFailureRatio: float64(u.MaxFailureRatio), Order: u.Order}
}

func toAPITaskSpec(d swarm.TaskSpec) api.TaskSpec {
	t := api.TaskSpec{ForceUpdate: d.ForceUpdate}
	if c := d.ContainerSpec; c != nil {
		t.Container = &api.ContainerSpec{Image: c.Image, Labels: c.Labels, Command: c.Command, Args: c.Args, Env: c.Env,
			Dir: c.Dir, User: c.User, StopGracePeriod: c.StopGracePeriod, StopSignal: c.StopSignal}
		for _, m := range c.Mounts {
			t.Container.Mounts = append(t.Container.Mounts, api.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
		}
		if h := c.Healthcheck; h != nil {
			t.HealthCheck = &api.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
		}
		for _, r := range c.Secrets {
			if r == nil {
				continue
			}
			ref := api.SecretReference{SecretID: r.SecretID, SecretName: r.SecretName}
			if f := r.File; f != nil {
				ref.File = &api.FileTarget{Name: strings.TrimPrefix(f.Name, secretsDir), UID: f.UID, GID: f.GID, Mode: f.Mode}
			}
			t.Secrets = append(t.Secrets, ref)
		}
		for _, r := range c.Configs {
			if r == nil {
				continue
			}
			ref := api.ConfigReference{ConfigID: r.ConfigID, ConfigName: r.ConfigName}
			if f := r.File; f != nil {
				// Docker names a config's file by its path in the
				// container; ours is relative to the configs' root.
				ref.File = &api.FileTarget{Name: strings.TrimPrefix(f.Name, "/"), UID: f.UID, GID: f.GID, Mode: f.Mode}
			}
			t.Configs = append(t.Configs, ref)
		}
	}
	if r := d.Resources; r != nil {
		rr := &api.ResourceRequirements{}
		if l := r.Limits; l != nil {
			rr.Limits = &api.Resources{NanoCPUs: l.NanoCPUs, MemoryBytes: l.MemoryBytes}
		}
		if v := r.Reservations; v != nil {
			rr.Reservations = &api.Resources{NanoCPUs: v.NanoCPUs, MemoryBytes: v.MemoryBytes, GenericResources: toAPIGeneric(v.GenericResources)}
		}
		t.Resources = rr
	}
	if r := d.RestartPolicy; r != nil {
		rp := &api.RestartPolicy{Condition: string(r.Condition), Delay: r.Delay}
		if r.MaxAttempts != nil {
			rp.MaxAttempts = *r.MaxAttempts
		}
		if r.Window != nil {
			rp.Window = *r.Window
		}
		t.RestartPolicy = rp
	}
	if p := d.Placement; p != nil {
		pl := &api.Placement{Constraints: p.Constraints, MaxReplicas: p.MaxReplicas}
		for _, x := range p.Preferences {
			pp := api.PlacementPreference{}
			if x.Spread != nil {
				pp.Spread = &api.SpreadOver{SpreadDescriptor: x.Spread.SpreadDescriptor}
			}
			pl.Preferences = append(pl.Preferences, pp)
		}
		for _, x := range p.Platforms {
			pl.Platforms = append(pl.Platforms, api.Platform{Architecture: x.Architecture, OS: x.OS})
		}
		t.Placement = pl
	}
	for _, n := range d.Networks {
		t.Networks = append(t.Networks, api.NetworkAttachmentConfig{Target: n.Target, Aliases: n.Aliases})
	}
	return t.Copy()
}

func toAPIGeneric(gs []swarm.GenericResource) []api.GenericResource {
	var out []api.GenericResource
	for _, g := range gs {
		var r api.GenericResource
		if n := g.NamedResourceSpec; n != nil {
			r.NamedResourceSpec = &api.NamedGenericResource{Kind: n.Kind, Value: n.Value}
		}
		if d := g.DiscreteResourceSpec; d != nil {
			r.DiscreteResourceSpec = &api.DiscreteGenericResource{Kind: d.Kind, Value: d.Value}
		}
		out = append(out, r)
	}
	return out
}

// fromAPIServiceSpec maps our service spec to Docker's.
func fromAPIServiceSpec(s api.ServiceSpec) swarm.ServiceSpec {
	s = s.Copy()
	d := swarm.ServiceSpec{
		Annotations:    swarm.Annotations{Name: s.Name, Labels: s.Labels},
		TaskTemplate:   fromAPITaskSpec(s.TaskTemplate),
		UpdateConfig:   fromAPIUpdateConfig(s.UpdateConfig),
		RollbackConfig: fromAPIUpdateConfig(s.RollbackConfig),
	}
	switch m := s.Mode; {
	case m.Replicated != nil:
		r := uint64(max(m.Replicated.Replicas, 0))
		d.Mode.Replicated = &swarm.ReplicatedService{Replicas: &r}
	case m.Global != nil:
		d.Mode.Global = &swarm.GlobalService{}
	case m.ReplicatedJob != nil:
		mc, tc := uint64(max(m.ReplicatedJob.MaxConcurrent, 0)), uint64(max(m.ReplicatedJob.TotalCompletions, 0))
		d.Mode.ReplicatedJob = &swarm.ReplicatedJob{MaxConcurrent: &mc, TotalCompletions: &tc}
	case m.GlobalJob != nil:
		d.Mode.GlobalJob = &swarm.GlobalJob{}
	}
	if e := s.EndpointSpec; e != nil {
		d.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionMode(e.Mode), Ports: fromAPIPorts(e.Ports)}
	}
	return d
}

func fromAPIPorts(ps []api.PortConfig) []swarm.PortConfig {
	var out []swarm.PortConfig
	for _, p := range ps {
		out = append(out, swarm.PortConfig{Name: p.Name, Protocol: swarm.PortConfigProtocol(p.Protocol), TargetPort: p.TargetPort,
			PublishedPort: p.PublishedPort, PublishMode: swarm.PortConfigPublishMode(p.PublishMode)})
	}
	return out
}

func fromAPIUpdateConfig(u *api.UpdateConfig) *swarm.UpdateConfig {
	if u == nil {
		return nil
	}
	return &swarm.UpdateConfig{Parallelism: u.Parallelism, Delay: u.Delay, FailureAction: u.FailureAction, Monitor: u.Monitor,
		MaxFailureRatio: float32(u.MaxFailureRatio), Order: u.Order}
}

// processAsContainer shows a process spec as Docker's container spec: the
// program as the image, the whole command line as Command, so that mapped
// back it runs the same process (api.ContainerSpec.AsProcess).
func processAsContainer(p *api.ProcessSpec) *swarm.ContainerSpec {
	c := &swarm.ContainerSpec{Command: p.Command, Args: p.Args, Env: p.Env, Dir: p.Dir, User: p.User, StopGracePeriod: p.StopGracePeriod, StopSignal: p.StopSignal}
	if len(p.Command) > 0 {
		c.Image = p.Command[0]
	}
	return c
}

func fromAPITaskSpec(t api.TaskSpec) swarm.TaskSpec {
	d := swarm.TaskSpec{ForceUpdate: t.ForceUpdate}
	switch {
	case t.Container != nil:
		c := t.Container
		d.ContainerSpec = &swarm.ContainerSpec{Image: c.Image, Labels: c.Labels, Command: c.Command, Args: c.Args, Env: c.Env,
			Dir: c.Dir, User: c.User, StopGracePeriod: c.StopGracePeriod, StopSignal: c.StopSignal}
		for _, m := range c.Mounts {
			d.ContainerSpec.Mounts = append(d.ContainerSpec.Mounts, mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
		}
	case t.Process != nil:
		d.ContainerSpec = processAsContainer(t.Process)
	}
	if c := d.ContainerSpec; c != nil {
		if h := t.HealthCheck; h != nil {
			c.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
		}
		for _, r := range t.Secrets {
			ref := &swarm.SecretReference{SecretID: r.SecretID, SecretName: r.SecretName}
			if f := r.File; f != nil {
				ref.File = &swarm.SecretReferenceFileTarget{Name: f.Name, UID: f.UID, GID: f.GID, Mode: f.Mode}
			}
			c.Secrets = append(c.Secrets, ref)
		}
		for _, r := range t.Configs {
			ref := &swarm.ConfigReference{ConfigID: r.ConfigID, ConfigName: r.ConfigName}
			if f := r.File; f != nil {
				ref.File = &swarm.ConfigReferenceFileTarget{Name: "/" + f.Name, UID: f.UID, GID: f.GID, Mode: f.Mode}
			}
			c.Configs = append(c.Configs, ref)
		}
	}
	if r := t.Resources; r != nil {
		rr := &swarm.ResourceRequirements{}
		if l := r.Limits; l != nil {
			rr.Limits = &swarm.Limit{NanoCPUs: l.NanoCPUs, MemoryBytes: l.MemoryBytes}
		}
		if v := r.Reservations; v != nil {
			rr.Reservations = &swarm.Resources{NanoCPUs: v.NanoCPUs, MemoryBytes: v.MemoryBytes, GenericResources: fromAPIGeneric(v.GenericResources)}
		}
		d.Resources = rr
	}
	if r := t.RestartPolicy; r != nil {
		rp := &swarm.RestartPolicy{Condition: swarm.RestartPolicyCondition(r.Condition), Delay: r.Delay}
		ma, w := r.MaxAttempts, r.Window
		rp.MaxAttempts, rp.Window = &ma, &w
		d.RestartPolicy = rp
	}
	if p := t.Placement; p != nil {
		pl := &swarm.Placement{Constraints: p.Constraints, MaxReplicas: p.MaxReplicas}
		for _, x := range p.Preferences {
			pp := swarm.PlacementPreference{}
			if x.Spread != nil {
				pp.Spread = &swarm.SpreadOver{SpreadDescriptor: x.Spread.SpreadDescriptor}
			}
			pl.Preferences = append(pl.Preferences, pp)
		}
		for _, x := range p.Platforms {
			pl.Platforms = append(pl.Platforms, swarm.Platform{Architecture: x.Architecture, OS: x.OS})
		}
		d.Placement = pl
	}
	for _, n := range t.Networks {
		d.Networks = append(d.Networks, swarm.NetworkAttachmentConfig{Target: n.Target, Aliases: n.Aliases})
	}
	return d
}

func fromAPIGeneric(gs []api.GenericResource) []swarm.GenericResource {
	var out []swarm.GenericResource
	for _, g := range gs {
		var r swarm.GenericResource
		if n := g.NamedResourceSpec; n != nil {
			r.NamedResourceSpec = &swarm.NamedGenericResource{Kind: n.Kind, Value: n.Value}
		}
		if d := g.DiscreteResourceSpec; d != nil {
			r.DiscreteResourceSpec = &swarm.DiscreteGenericResource{Kind: d.Kind, Value: d.Value}
		}
		out = append(out, r)
	}
	return out
}

func meta(m api.Meta) swarm.Meta {
	return swarm.Meta{Version: swarm.Version{Index: m.Version}, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

// fromAPIService maps a stored service, with its Docker spec (what the
// client sent, or ours mapped: dockerSpec).
func fromAPIService(s *api.Service) swarm.Service {
	d := swarm.Service{ID: s.ID, Meta: meta(s.Meta), Spec: dockerSpec(s.Spec, false)}
	if s.PreviousSpec != nil {
		p := dockerSpec(*s.PreviousSpec, false)
		d.PreviousSpec = &p
	}
	if e := s.Endpoint; e != nil {
		d.Endpoint = swarm.Endpoint{Spec: swarm.EndpointSpec{Mode: swarm.ResolutionMode(e.Spec.Mode), Ports: fromAPIPorts(e.Spec.Ports)}, Ports: fromAPIPorts(e.Ports)}
		for _, v := range e.VirtualIPs {
			d.Endpoint.VirtualIPs = append(d.Endpoint.VirtualIPs, swarm.EndpointVirtualIP{NetworkID: v.NetworkID, Addr: v.Addr})
		}
	}
	if u := s.UpdateStatus; u != nil {
		d.UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateState(u.State), StartedAt: u.StartedAt, CompletedAt: u.CompletedAt, Message: u.Message}
	}
	if st := s.ServiceStatus; st != nil {
		d.ServiceStatus = &swarm.ServiceStatus{RunningTasks: st.RunningTasks, DesiredTasks: st.DesiredTasks, CompletedTasks: st.CompletedTasks}
	}
	if s.Spec.Mode.IsJob() {
		d.JobStatus = &swarm.JobStatus{JobIteration: swarm.Version{Index: s.SpecVersion}, LastExecution: s.Meta.UpdatedAt}
	}
	return d
}

func fromAPINode(n *api.Node) swarm.Node {
	d := swarm.Node{ID: n.ID, Meta: meta(n.Meta),
		Spec:   swarm.NodeSpec{Annotations: swarm.Annotations{Name: n.Spec.Name, Labels: n.Spec.Labels}, Role: swarm.NodeRole(n.Spec.Role), Availability: swarm.NodeAvailability(n.Spec.Availability)},
		Status: swarm.NodeStatus{State: swarm.NodeState(n.Status.State), Message: n.Status.Message, Addr: hostOf(n.Status.Addr)},
	}
	if ds := n.Description; ds != nil {
		d.Description = swarm.NodeDescription{Hostname: ds.Hostname, Platform: swarm.Platform{Architecture: ds.Platform.Architecture, OS: ds.Platform.OS},
			Resources: swarm.Resources{NanoCPUs: ds.Resources.NanoCPUs, MemoryBytes: ds.Resources.MemoryBytes, GenericResources: fromAPIGeneric(ds.Resources.GenericResources)},
			Engine:    swarm.EngineDescription{EngineVersion: engineVersion(ds), Labels: ds.Engine.Labels}}
	}
	if m := n.ManagerStatus; m != nil {
		d.ManagerStatus = &swarm.ManagerStatus{Leader: m.Leader, Reachability: swarm.Reachability(m.Reachability), Addr: m.Addr}
	}
	return d
}

// engineVersion is what `docker node ls` shows as ENGINE VERSION: the
// executor's engine when it reports one, else the executor kind.
func engineVersion(d *api.NodeDescription) string {
	if d.Engine.EngineVersion != "" && d.Executor == "docker" {
		return d.Engine.EngineVersion
	}
	return "apiary-" + d.Executor
}

// fromAPITaskState names a state as Docker does: ours print the same.
func fromAPITaskState(s api.TaskState) swarm.TaskState { return swarm.TaskState(s.String()) }

func fromAPITask(t *api.Task) swarm.Task {
	d := swarm.Task{ID: t.ID, Meta: meta(t.Meta), Annotations: swarm.Annotations{Name: t.Name}, Spec: fromAPITaskSpec(t.Spec),
		ServiceID: t.ServiceID, Slot: int(t.Slot), NodeID: t.NodeID, DesiredState: fromAPITaskState(t.DesiredState),
		Status: swarm.TaskStatus{Timestamp: t.Status.Timestamp, State: fromAPITaskState(t.Status.State), Message: t.Status.Message, Err: t.Status.Err,
			PortStatus: swarm.PortStatus{Ports: fromAPIPorts(t.Status.PortStatus)}},
	}
	if cs := t.Status.ContainerStatus; cs != nil {
		d.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: cs.ContainerID, PID: cs.PID, ExitCode: cs.ExitCode}
	}
	for _, n := range t.Networks {
		d.NetworksAttachments = append(d.NetworksAttachments, swarm.NetworkAttachment{Network: swarm.Network{ID: n.NetworkID}, Addresses: n.Addresses})
	}
	if t.JobIteration != 0 {
		d.JobIteration = &swarm.Version{Index: t.JobIteration}
	}
	return d
}
