package api

import "time"

// Service is desired state: a task template and how many copies of it to run
// where, and how to change them.
type Service struct {
	ID   string      `json:"ID"`
	Meta Meta        `json:"Meta"`
	Spec ServiceSpec `json:"Spec"`
	// SpecVersion counts changes of Spec: 1 at creation, one more at every
	// update. Tasks record it, so tasks of the same spec can be grouped.
	SpecVersion uint64 `json:"SpecVersion"`
	// PreviousSpec is the spec before the last update: what rollback returns to.
	PreviousSpec *ServiceSpec `json:"PreviousSpec,omitempty"`
	// PreviousSpecVersion is the SpecVersion of PreviousSpec.
	PreviousSpecVersion uint64        `json:"PreviousSpecVersion,omitempty"`
	Endpoint            *Endpoint     `json:"Endpoint,omitempty"`
	UpdateStatus        *UpdateStatus `json:"UpdateStatus,omitempty"`
	// ServiceStatus counts the service's tasks. It is not stored: listings
	// (controlapi.ListServices) fill it in, as Docker's service list does.
	ServiceStatus *ServiceStatus `json:"ServiceStatus,omitempty"`
}

// ServiceStatus is a service's task counts, as Docker's ServiceStatus.
type ServiceStatus struct {
	// RunningTasks counts the tasks wanted running that run (and, with a
	// health check, are healthy).
	RunningTasks uint64 `json:"RunningTasks"`
	// DesiredTasks is how many tasks should run: the replica count, the
	// eligible nodes of a global service, or for a job the tasks it still
	// runs at once (at most MaxConcurrent, never more than the completions
	// still missing).
	DesiredTasks uint64 `json:"DesiredTasks"`
	// CompletedTasks counts a job's tasks of its current iteration that
	// completed; 0 for services that are not jobs.
	CompletedTasks uint64 `json:"CompletedTasks"`
}

// ServiceSpec is the user-owned part of a service.
type ServiceSpec struct {
	Annotations
	TaskTemplate   TaskSpec      `json:"TaskTemplate"`
	Mode           ServiceMode   `json:"Mode"`
	UpdateConfig   *UpdateConfig `json:"UpdateConfig,omitempty"`
	RollbackConfig *UpdateConfig `json:"RollbackConfig,omitempty"`
	EndpointSpec   *EndpointSpec `json:"EndpointSpec,omitempty"`
	// Extensions hold what another API layer keeps beside the spec, by
	// key, opaque here: the Docker Engine API layer keeps the Docker
	// ServiceSpec as its client sent it under "docker" (swarm/dockerapi),
	// so a Docker client's read-modify-write loses no field this spec has
	// no place for. They count towards MaxSpecBytes and travel with the
	// spec (a rollback restores the previous spec's), never to tasks.
	Extensions map[string][]byte `json:"Extensions,omitempty"`
}

// ServiceMode says how many tasks a service runs: exactly one of the fields
// is set.
type ServiceMode struct {
	Replicated    *ReplicatedService `json:"Replicated,omitempty"`
	Global        *GlobalService     `json:"Global,omitempty"`
	ReplicatedJob *ReplicatedJob     `json:"ReplicatedJob,omitempty"`
	GlobalJob     *GlobalJob         `json:"GlobalJob,omitempty"`
}

// ReplicatedService runs a fixed number of tasks, each in its own slot.
type ReplicatedService struct {
	// Replicas is signed so that a negative count from a user is reported
	// instead of wrapping around.
	Replicas int64 `json:"Replicas"`
}

// GlobalService runs one task on every eligible node.
type GlobalService struct{}

// ReplicatedJob runs tasks to completion: TotalCompletions successful ones,
// at most MaxConcurrent at a time.
type ReplicatedJob struct {
	MaxConcurrent    int64 `json:"MaxConcurrent"`
	TotalCompletions int64 `json:"TotalCompletions"`
}

// GlobalJob runs one task to completion on every eligible node.
type GlobalJob struct{}

// ModeName names the mode that is set: "replicated", "global",
// "replicated-job", "global-job" or "" when none is.
func (m ServiceMode) ModeName() string {
	switch {
	case m.Replicated != nil:
		return "replicated"
	case m.Global != nil:
		return "global"
	case m.ReplicatedJob != nil:
		return "replicated-job"
	case m.GlobalJob != nil:
		return "global-job"
	}
	return ""
}

// IsJob reports whether the mode runs tasks to completion.
func (m ServiceMode) IsJob() bool { return m.ReplicatedJob != nil || m.GlobalJob != nil }

// IsGlobal reports whether the mode runs one task per node.
func (m ServiceMode) IsGlobal() bool { return m.Global != nil || m.GlobalJob != nil }

// Update failure actions.
const (
	UpdateFailureActionPause    = "pause"
	UpdateFailureActionContinue = "continue"
	UpdateFailureActionRollback = "rollback"
)

// Update orders.
const (
	UpdateOrderStopFirst  = "stop-first"
	UpdateOrderStartFirst = "start-first"
)

// UpdateConfig says how a rolling update (or a rollback) replaces tasks.
type UpdateConfig struct {
	// Parallelism is how many tasks are replaced at once; 0 means all.
	Parallelism uint64 `json:"Parallelism"`
	// Delay is the pause between batches.
	Delay time.Duration `json:"Delay,omitempty"`
	// FailureAction is pause, continue or rollback.
	FailureAction string `json:"FailureAction,omitempty"`
	// Monitor is how long after a batch starts its tasks are watched for failure.
	Monitor time.Duration `json:"Monitor,omitempty"`
	// MaxFailureRatio is the fraction of failed tasks tolerated, 0 to 1.
	MaxFailureRatio float64 `json:"MaxFailureRatio,omitempty"`
	// Order is stop-first (stop the old task, then start the new one) or
	// start-first (start the new one first, then stop the old).
	Order string `json:"Order,omitempty"`
}

// DefaultUpdateConfig is Swarm's default: one at a time, no delay, pause on
// failure, 5 s monitor, no failures tolerated, stop-first.
func DefaultUpdateConfig() UpdateConfig {
	return UpdateConfig{
		Parallelism:   1,
		FailureAction: UpdateFailureActionPause,
		Monitor:       5 * time.Second,
		Order:         UpdateOrderStopFirst,
	}
}

// Update states, as Docker names them.
const (
	UpdateStateUpdating          = "updating"
	UpdateStatePaused            = "paused"
	UpdateStateCompleted         = "completed"
	UpdateStateRollbackStarted   = "rollback_started"
	UpdateStateRollbackPaused    = "rollback_paused"
	UpdateStateRollbackCompleted = "rollback_completed"
)

// UpdateStatus reports the progress of the latest update or rollback.
type UpdateStatus struct {
	State       string     `json:"State"`
	StartedAt   *time.Time `json:"StartedAt,omitempty"`
	CompletedAt *time.Time `json:"CompletedAt,omitempty"`
	Message     string     `json:"Message,omitempty"`
}

// Endpoint modes.
const (
	ResolutionModeVIP   = "vip"
	ResolutionModeDNSRR = "dnsrr"
)

// Port protocols.
const (
	PortProtocolTCP  = "tcp"
	PortProtocolUDP  = "udp"
	PortProtocolSCTP = "sctp"
)

// Publish modes: ingress publishes on every node through the routing mesh;
// host publishes on the node that runs the task only.
const (
	PublishModeIngress = "ingress"
	PublishModeHost    = "host"
)

// EndpointSpec says how a service is reached.
type EndpointSpec struct {
	// Mode is vip (one virtual IP load-balanced over the tasks) or dnsrr
	// (DNS round-robin over the tasks' addresses).
	Mode  string       `json:"Mode,omitempty"`
	Ports []PortConfig `json:"Ports,omitempty"`
}

// PortConfig publishes a task port.
type PortConfig struct {
	Name     string `json:"Name,omitempty"`
	Protocol string `json:"Protocol,omitempty"`
	// TargetPort is the port inside the task.
	TargetPort uint32 `json:"TargetPort"`
	// PublishedPort is the port on the nodes; 0 lets the allocator choose
	// one from the dynamic range.
	PublishedPort uint32 `json:"PublishedPort,omitempty"`
	PublishMode   string `json:"PublishMode,omitempty"`
	// ProxyProtocol, when "v2", makes the routing mesh send a PROXY
	// protocol v2 header carrying the client's address before the
	// connection's bytes (TCP ports only); "" sends none. Apiary's own
	// field: Docker has no such option.
	ProxyProtocol string `json:"ProxyProtocol,omitempty"`
	// TrafficPolicy is "cluster" (the default, "" too: any healthy task on
	// any node) or "local" (the tasks on the node that received the
	// connection first, so its source address is kept). Apiary's own field.
	TrafficPolicy string `json:"TrafficPolicy,omitempty"`
}

// PROXY protocol versions a port may ask for.
const ProxyProtocolV2 = "v2"

// Traffic policies of a published port.
const (
	TrafficPolicyCluster = "cluster"
	TrafficPolicyLocal   = "local"
)

// Endpoint is what the allocator assigned to a service.
type Endpoint struct {
	Spec EndpointSpec `json:"Spec"`
	// Ports are the spec's ports with every default filled in and every
	// dynamic ingress port chosen.
	Ports []PortConfig `json:"Ports,omitempty"`
	// VirtualIPs are the service's addresses, one per attached network
	// (and on the ingress network when it publishes ingress ports), in
	// endpoint mode vip; none in dnsrr.
	VirtualIPs []EndpointVirtualIP `json:"VirtualIPs,omitempty"`
	// HostVIP is the service's virtual IP on the host data path, where
	// tasks share their node's network: an address of HostVIPRange
	// ("127.100.0.7") on which every node's balancer listens, so the
	// service has one address cluster-wide. Empty in dnsrr mode.
	HostVIP string `json:"HostVIP,omitempty"`
	// LoopbackPorts are where the service's VIP answers on nodes that
	// cannot use HostVIPRange (outside Linux only 127.0.0.1 is a
	// loopback address without configuration): 127.0.0.1 and a port of
	// the loopback VIP range per (protocol, target port), unique in the
	// cluster. Given with HostVIP, one per distinct port of Ports.
	LoopbackPorts []LoopbackPort `json:"LoopbackPorts,omitempty"`
}

// LoopbackPort is where one of a service's ports answers on 127.0.0.1.
type LoopbackPort struct {
	Protocol   string `json:"Protocol"`
	TargetPort uint32 `json:"TargetPort"`
	// Port is in [LoopbackVIPPortStart, LoopbackVIPPortEnd].
	Port uint32 `json:"Port"`
}

// The range of LoopbackPort.Port: 5,000 service ports, below the
// ephemeral ports of Linux (32768 and up) and of macOS and the BSDs (49152
// and up), which the system hands out to outgoing connections and to
// tasks' host ports and which could hold one already, and below Swarm's
// dynamic ingress range (30000-32767).
const (
	LoopbackVIPPortStart = 20000
	LoopbackVIPPortEnd   = 24999
)

// EndpointVirtualIP is a service's virtual IP on one network.
type EndpointVirtualIP struct {
	NetworkID string `json:"NetworkID"`
	// Addr is the address with its subnet's length, "10.0.1.2/24", as
	// Docker shows it.
	Addr string `json:"Addr"`
}

// GetID implements Object.
func (s *Service) GetID() string { return s.ID }

// GetMeta implements Object.
func (s *Service) GetMeta() Meta { return s.Meta }

// SetMeta implements Object.
func (s *Service) SetMeta(m Meta) { s.Meta = m }

// Kind implements Object.
func (s *Service) Kind() Kind { return KindService }

// CopyObject implements Object.
func (s *Service) CopyObject() Object { return s.Copy() }

// Copy returns a deep copy.
func (s *Service) Copy() *Service {
	if s == nil {
		return nil
	}
	c := *s
	c.Spec = s.Spec.Copy()
	if s.PreviousSpec != nil {
		p := s.PreviousSpec.Copy()
		c.PreviousSpec = &p
	}
	if s.Endpoint != nil {
		e := *s.Endpoint
		e.Spec = s.Endpoint.Spec.Copy()
		e.Ports = copySlice(s.Endpoint.Ports)
		e.VirtualIPs = copySlice(s.Endpoint.VirtualIPs)
		e.LoopbackPorts = copySlice(s.Endpoint.LoopbackPorts)
		c.Endpoint = &e
	}
	if s.UpdateStatus != nil {
		u := *s.UpdateStatus
		u.StartedAt = copyPtr(u.StartedAt)
		u.CompletedAt = copyPtr(u.CompletedAt)
		c.UpdateStatus = &u
	}
	c.ServiceStatus = copyPtr(s.ServiceStatus)
	return &c
}

// Copy returns a deep copy.
func (s ServiceSpec) Copy() ServiceSpec {
	s.Annotations = s.Annotations.Copy()
	s.TaskTemplate = s.TaskTemplate.Copy()
	s.Mode = ServiceMode{
		Replicated:    copyPtr(s.Mode.Replicated),
		Global:        copyPtr(s.Mode.Global),
		ReplicatedJob: copyPtr(s.Mode.ReplicatedJob),
		GlobalJob:     copyPtr(s.Mode.GlobalJob),
	}
	s.UpdateConfig = copyPtr(s.UpdateConfig)
	s.RollbackConfig = copyPtr(s.RollbackConfig)
	if s.EndpointSpec != nil {
		e := s.EndpointSpec.Copy()
		s.EndpointSpec = &e
	}
	if s.Extensions != nil {
		x := make(map[string][]byte, len(s.Extensions))
		for k, v := range s.Extensions {
			x[k] = copySlice(v)
		}
		s.Extensions = x
	}
	return s
}

// Copy returns a deep copy.
func (e EndpointSpec) Copy() EndpointSpec {
	e.Ports = copySlice(e.Ports)
	return e
}

// GetState returns the update state, or "" when there is no update status.
func (u *UpdateStatus) GetState() string {
	if u == nil {
		return ""
	}
	return u.State
}
