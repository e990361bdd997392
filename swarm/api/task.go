package api

import "time"

// Task is one unit of work placed on one node: a copy of its service's task
// template at one spec version, in one slot (replicated) or on one node
// (global).
type Task struct {
	ID   string `json:"ID"`
	Meta Meta   `json:"Meta"`
	// Name is "<service>.<slot>" or "<service>.<node ID>" for display.
	Name               string      `json:"Name,omitempty"`
	ServiceID          string      `json:"ServiceID"`
	ServiceAnnotations Annotations `json:"ServiceAnnotations"`
	// Slot numbers a replicated service's tasks from 1; a slot's tasks
	// replace one another. Zero for global services.
	Slot uint64 `json:"Slot,omitempty"`
	// NodeID is where the task runs: set by the scheduler, or by the global
	// orchestrator at creation.
	NodeID      string   `json:"NodeID,omitempty"`
	Spec        TaskSpec `json:"Spec"`
	SpecVersion uint64   `json:"SpecVersion"`
	// DesiredState is what the managers want: RUNNING (or READY while a
	// restart delay runs), SHUTDOWN or REMOVE.
	DesiredState TaskState           `json:"DesiredState"`
	Status       TaskStatus          `json:"Status"`
	Networks     []NetworkAttachment `json:"NetworksAttachments,omitempty"`
	Endpoint     *Endpoint           `json:"Endpoint,omitempty"`
	// JobIteration counts re-runs of a job service: it is the service's
	// SpecVersion when the task was made, so every spec change of a job
	// (a re-run) starts a new iteration.
	JobIteration uint64 `json:"JobIteration,omitempty"`
	// RestartCount is how many times the restart supervisor replaced the
	// task's predecessors in this slot under the same task template: 0 for
	// a task made by a scale-up or an update, n+1 for the successor of a task
	// with n. It is carried from predecessor to successor, so the restart
	// policy's MaxAttempts is exact however little history the slot keeps.
	RestartCount uint64 `json:"RestartCount,omitempty"`
	// RestartHistory holds when the most recent of those restarts were made
	// (oldest first, at most the policy's MaxAttempts of them), for a
	// policy with a Window: the attempts that count are those within the
	// window before the task ended.
	RestartHistory []time.Time `json:"RestartHistory,omitempty"`
	// StartAfter, when set, holds a task created with desired state READY
	// (a restart waiting out its delay) until this time; the orchestrator
	// then moves its desired state to RUNNING. Keeping it in the task, not
	// in a timer, lets a new leader resume the wait.
	StartAfter time.Time `json:"StartAfter,omitzero"`
	// AssignmentProof is the managers' signature that the task is
	// assigned to NodeID, with its service, VIP, ports and networks
	// (mesh/endpoint.SignAssignment). The dispatcher sets it on the copy
	// of the task it sends the node, never in the store; the node
	// publishes it with the task's routing entry, so that every other
	// node can check that the publisher runs that task (issue 15).
	AssignmentProof []byte `json:"AssignmentProof,omitempty"`
}

// TaskStatus is the observed state of a task.
type TaskStatus struct {
	Timestamp time.Time `json:"Timestamp"`
	State     TaskState `json:"State"`
	Message   string    `json:"Message,omitempty"`
	Err       string    `json:"Err,omitempty"`
	// ContainerStatus identifies what runs the task and how it ended.
	ContainerStatus *ContainerStatus `json:"ContainerStatus,omitempty"`
	PortStatus      []PortConfig     `json:"PortStatus,omitempty"`
	// Health is the last result of the task's health check, when it has one:
	// "starting", "healthy" or "unhealthy".
	Health string `json:"Health,omitempty"`
	// AppliedBy is the node that reported the status.
	AppliedBy string `json:"AppliedBy,omitempty"`
}

// ContainerStatus identifies the container or process of a task.
type ContainerStatus struct {
	ContainerID string `json:"ContainerID,omitempty"`
	PID         int    `json:"PID,omitempty"`
	ExitCode    int    `json:"ExitCode"`
	OOMKilled   bool   `json:"OOMKilled,omitempty"`
	// StartedAt is when the process or container started (the task's move
	// to RUNNING); reports made after it, the final one included, carry it,
	// so the managers can tell how long a task ran before it ended.
	StartedAt time.Time `json:"StartedAt,omitzero"`
}

// NetworkAttachment is a task's address on one network, given by the
// allocator before the task leaves NEW.
type NetworkAttachment struct {
	NetworkID string `json:"NetworkID"`
	// Addresses hold the task's address with its subnet's length,
	// "10.0.1.5/24", as Docker shows it. The address is the task's while
	// the task is not terminal: once it is, the allocator may give it to
	// another task (the record keeps it, as history).
	Addresses []string `json:"Addresses,omitempty"`
	// Aliases are the task's extra DNS names on the network, from its
	// spec's attachment.
	Aliases []string `json:"Aliases,omitempty"`
}

// Health states a task's check reports.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// TaskSpec is the template of a task: what to run and under which rules.
// Exactly one runtime (Container or Process) is set.
type TaskSpec struct {
	// Container runs the task as a Docker container.
	Container *ContainerSpec `json:"ContainerSpec,omitempty"`
	// Process runs the task as an operating-system process.
	Process       *ProcessSpec              `json:"ProcessSpec,omitempty"`
	Resources     *ResourceRequirements     `json:"Resources,omitempty"`
	RestartPolicy *RestartPolicy            `json:"RestartPolicy,omitempty"`
	Placement     *Placement                `json:"Placement,omitempty"`
	HealthCheck   *HealthConfig             `json:"HealthCheck,omitempty"`
	Networks      []NetworkAttachmentConfig `json:"Networks,omitempty"`
	// Secrets and Configs are the secrets and configs the task gets as
	// files (at most MaxSecretReferences and MaxConfigReferences). The
	// control API resolves the names a user gives to IDs when it writes
	// the service; a node receives the data only while it runs a task
	// that references it.
	Secrets []SecretReference `json:"Secrets,omitempty"`
	Configs []ConfigReference `json:"Configs,omitempty"`
	// ForceUpdate changes to force a rolling update of an unchanged spec.
	ForceUpdate uint64 `json:"ForceUpdate,omitempty"`
}

// Runtime kinds: the executor a task spec needs.
const (
	RuntimeContainer = "docker"
	RuntimeProcess   = "process"
)

// RuntimeKind names the executor kind the spec needs ("docker" or
// "process"), or "" when no runtime is set.
func (t TaskSpec) RuntimeKind() string {
	switch {
	case t.Container != nil:
		return RuntimeContainer
	case t.Process != nil:
		return RuntimeProcess
	}
	return ""
}

// ContainerSpec is a Docker container.
type ContainerSpec struct {
	Image   string            `json:"Image"`
	Labels  map[string]string `json:"Labels,omitempty"`
	Command []string          `json:"Command,omitempty"`
	Args    []string          `json:"Args,omitempty"`
	Env     []string          `json:"Env,omitempty"`
	Dir     string            `json:"Dir,omitempty"`
	User    string            `json:"User,omitempty"`
	Mounts  []Mount           `json:"Mounts,omitempty"`
	// StopGracePeriod is how long a task gets between SIGTERM and SIGKILL.
	StopGracePeriod *time.Duration `json:"StopGracePeriod,omitempty"`
	// StopSignal replaces SIGTERM as the signal that asks the task to
	// stop ("SIGINT", "QUIT" or a number; see ValidStopSignal); "" is the
	// image's own, else SIGTERM.
	StopSignal string `json:"StopSignal,omitempty"`
}

// Mount types.
const (
	MountTypeBind   = "bind"
	MountTypeVolume = "volume"
	MountTypeTmpfs  = "tmpfs"
)

// Mount is a filesystem mount of a container.
type Mount struct {
	Type     string `json:"Type"`
	Source   string `json:"Source,omitempty"`
	Target   string `json:"Target"`
	ReadOnly bool   `json:"ReadOnly,omitempty"`
}

// ProcessSpec is an operating-system process.
type ProcessSpec struct {
	// Command is the program and its arguments; Command[0] is looked up in PATH.
	Command []string `json:"Command"`
	Args    []string `json:"Args,omitempty"`
	Env     []string `json:"Env,omitempty"`
	Dir     string   `json:"Dir,omitempty"`
	User    string   `json:"User,omitempty"`
	// StopGracePeriod is how long a task gets between SIGTERM and SIGKILL.
	StopGracePeriod *time.Duration `json:"StopGracePeriod,omitempty"`
	// StopSignal replaces SIGTERM as the signal that asks the process to
	// stop, as ContainerSpec.StopSignal.
	StopSignal string `json:"StopSignal,omitempty"`
}

// DefaultStopGracePeriod is Docker's 10 s.
const DefaultStopGracePeriod = 10 * time.Second

// StopGracePeriod returns the runtime's grace period, or the default.
func (t TaskSpec) StopGracePeriod() time.Duration {
	var p *time.Duration
	switch {
	case t.Container != nil:
		p = t.Container.StopGracePeriod
	case t.Process != nil:
		p = t.Process.StopGracePeriod
	}
	if p == nil {
		return DefaultStopGracePeriod
	}
	return *p
}

// ResourceRequirements are what a task reserves on its node (used for
// placement) and the limits it runs under.
type ResourceRequirements struct {
	Limits       *Resources `json:"Limits,omitempty"`
	Reservations *Resources `json:"Reservations,omitempty"`
}

// Restart conditions.
const (
	RestartConditionNone      = "none"
	RestartConditionOnFailure = "on-failure"
	RestartConditionAny       = "any"
)

// RestartPolicy says when a finished task is replaced.
type RestartPolicy struct {
	Condition string `json:"Condition,omitempty"`
	// Delay is how long to wait before a replacement starts; nil means 5 s.
	Delay *time.Duration `json:"Delay,omitempty"`
	// MaxAttempts bounds restarts (within Window when set); 0 is unlimited.
	MaxAttempts uint64        `json:"MaxAttempts,omitempty"`
	Window      time.Duration `json:"Window,omitempty"`
}

// DefaultRestartDelay is Swarm's 5 s.
const DefaultRestartDelay = 5 * time.Second

// Placement constrains where tasks run.
type Placement struct {
	// Constraints are expressions such as "node.labels.zone==a".
	Constraints []string              `json:"Constraints,omitempty"`
	Preferences []PlacementPreference `json:"Preferences,omitempty"`
	// MaxReplicas bounds the tasks of the service per node; 0 is unbounded.
	MaxReplicas uint64     `json:"MaxReplicas,omitempty"`
	Platforms   []Platform `json:"Platforms,omitempty"`
}

// PlacementPreference spreads tasks evenly over the values of a label.
type PlacementPreference struct {
	Spread *SpreadOver `json:"Spread,omitempty"`
}

// SpreadOver names the label to spread over, e.g. "node.labels.datacenter".
type SpreadOver struct {
	SpreadDescriptor string `json:"SpreadDescriptor"`
}

// HealthConfig is an application health check. Test is one of
// ["NONE"], ["CMD", prog, args...], ["CMD-SHELL", command],
// ["HTTP", url] or ["TCP", host:port].
type HealthConfig struct {
	Test        []string      `json:"Test,omitempty"`
	Interval    time.Duration `json:"Interval,omitempty"`
	Timeout     time.Duration `json:"Timeout,omitempty"`
	StartPeriod time.Duration `json:"StartPeriod,omitempty"`
	Retries     int           `json:"Retries,omitempty"`
}

// HasHealthCheck reports whether the spec sets a health check to run: a
// test other than ["NONE"]. An empty test (a container inheriting its
// image's HEALTHCHECK) is not one the spec sets.
func (t TaskSpec) HasHealthCheck() bool {
	h := t.HealthCheck
	return h != nil && len(h.Test) > 0 && h.Test[0] != healthTestNone
}

// NetworkAttachmentConfig attaches a task to a network.
type NetworkAttachmentConfig struct {
	Target  string   `json:"Target"`
	Aliases []string `json:"Aliases,omitempty"`
}

// GetID implements Object.
func (t *Task) GetID() string { return t.ID }

// GetMeta implements Object.
func (t *Task) GetMeta() Meta { return t.Meta }

// SetMeta implements Object.
func (t *Task) SetMeta(m Meta) { t.Meta = m }

// Kind implements Object.
func (t *Task) Kind() Kind { return KindTask }

// CopyObject implements Object.
func (t *Task) CopyObject() Object { return t.Copy() }

// Copy returns a deep copy.
func (t *Task) Copy() *Task {
	if t == nil {
		return nil
	}
	c := *t
	c.ServiceAnnotations = t.ServiceAnnotations.Copy()
	c.Spec = t.Spec.Copy()
	c.Status = t.Status.Copy()
	c.RestartHistory = copySlice(t.RestartHistory)
	c.AssignmentProof = copySlice(t.AssignmentProof)
	if t.Networks != nil {
		c.Networks = make([]NetworkAttachment, len(t.Networks))
		for i, n := range t.Networks {
			c.Networks[i] = NetworkAttachment{NetworkID: n.NetworkID, Addresses: copySlice(n.Addresses), Aliases: copySlice(n.Aliases)}
		}
	}
	if t.Endpoint != nil {
		e := *t.Endpoint
		e.Spec = t.Endpoint.Spec.Copy()
		e.Ports = copySlice(t.Endpoint.Ports)
		e.VirtualIPs = copySlice(t.Endpoint.VirtualIPs)
		e.LoopbackPorts = copySlice(t.Endpoint.LoopbackPorts)
		c.Endpoint = &e
	}
	return &c
}

// Copy returns a deep copy.
func (s TaskStatus) Copy() TaskStatus {
	s.ContainerStatus = copyPtr(s.ContainerStatus)
	s.PortStatus = copySlice(s.PortStatus)
	return s
}

// Copy returns a deep copy.
func (t TaskSpec) Copy() TaskSpec {
	if t.Container != nil {
		c := *t.Container
		c.Labels = copyMap(c.Labels)
		c.Command = copySlice(c.Command)
		c.Args = copySlice(c.Args)
		c.Env = copySlice(c.Env)
		c.Mounts = copySlice(c.Mounts)
		c.StopGracePeriod = copyPtr(c.StopGracePeriod)
		t.Container = &c
	}
	if t.Process != nil {
		p := *t.Process
		p.Command = copySlice(p.Command)
		p.Args = copySlice(p.Args)
		p.Env = copySlice(p.Env)
		p.StopGracePeriod = copyPtr(p.StopGracePeriod)
		t.Process = &p
	}
	if t.Resources != nil {
		r := ResourceRequirements{}
		if t.Resources.Limits != nil {
			l := t.Resources.Limits.Copy()
			r.Limits = &l
		}
		if t.Resources.Reservations != nil {
			v := t.Resources.Reservations.Copy()
			r.Reservations = &v
		}
		t.Resources = &r
	}
	if t.RestartPolicy != nil {
		r := *t.RestartPolicy
		r.Delay = copyPtr(r.Delay)
		t.RestartPolicy = &r
	}
	if t.Placement != nil {
		p := *t.Placement
		p.Constraints = copySlice(p.Constraints)
		if p.Preferences != nil {
			p.Preferences = make([]PlacementPreference, len(t.Placement.Preferences))
			for i, x := range t.Placement.Preferences {
				p.Preferences[i] = PlacementPreference{Spread: copyPtr(x.Spread)}
			}
		}
		p.Platforms = copySlice(p.Platforms)
		t.Placement = &p
	}
	if t.HealthCheck != nil {
		h := *t.HealthCheck
		h.Test = copySlice(h.Test)
		t.HealthCheck = &h
	}
	if t.Networks != nil {
		n := make([]NetworkAttachmentConfig, len(t.Networks))
		for i, x := range t.Networks {
			n[i] = NetworkAttachmentConfig{Target: x.Target, Aliases: copySlice(x.Aliases)}
		}
		t.Networks = n
	}
	t.Secrets = copySecretRefs(t.Secrets)
	t.Configs = copyConfigRefs(t.Configs)
	return t
}
