package api

import "time"

// Defaults filled in by ServiceSpec.ApplyDefaults, besides DefaultUpdateConfig,
// DefaultRestartDelay and DefaultStopGracePeriod. Each is Docker's, so a spec
// behaves as `docker service create` would make it behave.
const (
	// DefaultReplicas is the replica count of a service created without a
	// mode: Docker's API makes it replicated with one replica.
	DefaultReplicas = 1
	// DefaultJobMaxConcurrent is how many tasks of a replicated job run at
	// once when MaxConcurrent is left out: one, as the Docker CLI does.
	DefaultJobMaxConcurrent = 1
	// DefaultHealthInterval, DefaultHealthTimeout and DefaultHealthRetries
	// are the Docker engine's health check defaults (30 s, 30 s, 3).
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
)

// WithDefaults returns a deep copy of the spec with what a Docker user would
// expect filled in where the spec leaves it empty. It changes nothing that is
// set, and applying it twice gives the same spec. Validate stays separate
// (and accepts the empty values too), so a spec can be checked as written;
// as Docker does, apply defaults first, then validate.
//
// The defaults, all Swarm's:
//   - mode: none set → replicated with DefaultReplicas (1) replica, as
//     Docker's API does for a spec without a mode; a replicated job's
//     MaxConcurrent 0 → 1 and TotalCompletions 0 → MaxConcurrent (Docker's
//     documented meaning of leaving them out);
//   - task_template.restart_policy: condition any, delay 5 s (swarmkit's
//     defaults.Service); for jobs condition on-failure (Docker's CLI: a job
//     that completed is never run again, a failed one is retried);
//     MaxAttempts 0 already means unlimited;
//   - task_template.health_check of a real test (CMD, CMD-SHELL, HTTP, TCP):
//     interval 30 s, timeout 30 s, retries 3 (the Docker engine's). An empty
//     test inherits the image's check, so its timings are left to the image;
//   - update_config and rollback_config: all of DefaultUpdateConfig when
//     absent, else field by field where unset: failure action pause,
//     monitor 5 s, order stop-first (swarmkit's defaults.Service; its rollback
//     default equals its update default). Parallelism is kept as given,
//     since 0 means "all at once", not "unset", and Monitor 0 becomes 5 s
//     because a zero Monitor cannot be told from an unset one. Jobs get
//     neither: Docker refuses update configs on jobs;
//   - endpoint_spec: mode vip, and each port protocol tcp and publish mode
//     ingress (Docker's EndpointSpec and PortConfig defaults).
func (s ServiceSpec) WithDefaults() ServiceSpec {
	c := s.Copy() // every pointer below is now ours to fill in
	c.fillDefaults()
	return c
}

// ApplyDefaults fills in the spec's defaults in place; see WithDefaults. It
// replaces rather than writes through the spec's pointers, so a spec that
// shares them with another (a shallow copy) leaves that other unchanged.
func (s *ServiceSpec) ApplyDefaults() { *s = s.WithDefaults() }

// fillDefaults needs a spec that shares no memory with anyone else.
func (s *ServiceSpec) fillDefaults() {
	if s.Mode.ModeName() == "" {
		s.Mode.Replicated = &ReplicatedService{Replicas: DefaultReplicas}
	}
	if j := s.Mode.ReplicatedJob; j != nil {
		if j.MaxConcurrent == 0 {
			j.MaxConcurrent = DefaultJobMaxConcurrent
		}
		if j.TotalCompletions == 0 {
			j.TotalCompletions = j.MaxConcurrent
		}
	}

	t := &s.TaskTemplate
	if t.RestartPolicy == nil {
		t.RestartPolicy = &RestartPolicy{}
	}
	if t.RestartPolicy.Condition == "" {
		t.RestartPolicy.Condition = RestartConditionAny
		if s.Mode.IsJob() {
			t.RestartPolicy.Condition = RestartConditionOnFailure
		}
	}
	if t.RestartPolicy.Delay == nil {
		d := DefaultRestartDelay
		t.RestartPolicy.Delay = &d
	}
	if h := t.HealthCheck; h != nil && len(h.Test) > 0 {
		switch h.Test[0] {
		case healthTestCmd, healthTestCmdShell, healthTestHTTP, healthTestTCP:
			if h.Interval == 0 {
				h.Interval = DefaultHealthInterval
			}
			if h.Timeout == 0 {
				h.Timeout = DefaultHealthTimeout
			}
			if h.Retries == 0 {
				h.Retries = DefaultHealthRetries
			}
		}
	}

	if !s.Mode.IsJob() {
		s.UpdateConfig = withUpdateDefaults(s.UpdateConfig)
		s.RollbackConfig = withUpdateDefaults(s.RollbackConfig)
	}

	if s.EndpointSpec == nil {
		s.EndpointSpec = &EndpointSpec{}
	}
	if s.EndpointSpec.Mode == "" {
		s.EndpointSpec.Mode = ResolutionModeVIP
	}
	for i := range s.EndpointSpec.Ports {
		p := &s.EndpointSpec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = PortProtocolTCP
		}
		if p.PublishMode == "" {
			p.PublishMode = PublishModeIngress
		}
	}
}

// withUpdateDefaults fills an update or rollback config from
// DefaultUpdateConfig; u is already a private copy.
func withUpdateDefaults(u *UpdateConfig) *UpdateConfig {
	d := DefaultUpdateConfig()
	if u == nil {
		return &d
	}
	if u.FailureAction == "" {
		u.FailureAction = d.FailureAction
	}
	if u.Monitor == 0 {
		u.Monitor = d.Monitor
	}
	if u.Order == "" {
		u.Order = d.Order
	}
	return u
}
