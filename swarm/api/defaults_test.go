package api

import (
	"reflect"
	"testing"
	"time"
)

// A spec with only what a user must say: the defaults make it a complete,
// valid Swarm service.
func TestWithDefaultsFillsWhatIsLeftOut(t *testing.T) {
	in := ServiceSpec{
		Annotations:  Annotations{Name: "app"},
		TaskTemplate: TaskSpec{Process: &ProcessSpec{Command: []string{"app"}}},
		EndpointSpec: &EndpointSpec{Ports: []PortConfig{{TargetPort: 80, PublishedPort: 8080}}},
	}
	if in.Validate() == nil {
		t.Fatal("a spec without a mode should not validate before defaults")
	}
	orig := in.Copy()
	got := in.WithDefaults()
	if !reflect.DeepEqual(in, orig) {
		t.Fatal("WithDefaults changed its receiver")
	}
	update := DefaultUpdateConfig()
	want := ServiceSpec{
		Annotations: Annotations{Name: "app"},
		Mode:        ServiceMode{Replicated: &ReplicatedService{Replicas: 1}},
		TaskTemplate: TaskSpec{
			Process:       &ProcessSpec{Command: []string{"app"}},
			RestartPolicy: &RestartPolicy{Condition: RestartConditionAny, Delay: durPtr(5 * time.Second)},
		},
		UpdateConfig:   &update,
		RollbackConfig: &update,
		EndpointSpec: &EndpointSpec{Mode: ResolutionModeVIP, Ports: []PortConfig{
			{Protocol: PortProtocolTCP, TargetPort: 80, PublishedPort: 8080, PublishMode: PublishModeIngress},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	// Swarm's documented defaults, spelled out.
	if u := got.UpdateConfig; u.Parallelism != 1 || u.Delay != 0 || u.FailureAction != "pause" ||
		u.Monitor != 5*time.Second || u.MaxFailureRatio != 0 || u.Order != "stop-first" {
		t.Errorf("update config %+v is not Swarm's", u)
	}
	if got.UpdateConfig == got.RollbackConfig {
		t.Error("update and rollback configs share memory")
	}
}

func TestWithDefaultsKeepsWhatIsSet(t *testing.T) {
	full := goodService()
	if got := full.WithDefaults(); !reflect.DeepEqual(got, full) {
		t.Fatalf("a complete spec changed:\n%+v\n%+v", got, full)
	}
	// Replicas 0 is a choice (scaled down), not a missing value.
	s := goodService()
	s.Mode.Replicated.Replicas = 0
	if got := s.WithDefaults(); got.Mode.Replicated.Replicas != 0 {
		t.Fatalf("replicas 0 became %d", got.Mode.Replicated.Replicas)
	}
	// Global stays global.
	s.Mode = ServiceMode{Global: &GlobalService{}}
	if got := s.WithDefaults(); got.Mode.ModeName() != "global" {
		t.Fatalf("mode became %s", got.Mode.ModeName())
	}
}

func TestWithDefaultsFieldByField(t *testing.T) {
	s := goodService()
	s.UpdateConfig = &UpdateConfig{Delay: 3 * time.Second, MaxFailureRatio: 0.5}
	s.RollbackConfig = &UpdateConfig{Parallelism: 4, Order: UpdateOrderStartFirst}
	s.TaskTemplate.RestartPolicy = &RestartPolicy{MaxAttempts: 2}
	s.EndpointSpec = &EndpointSpec{Mode: ResolutionModeDNSRR, Ports: []PortConfig{
		{TargetPort: 53, Protocol: PortProtocolUDP, PublishMode: PublishModeHost},
		{TargetPort: 80},
	}}
	got := s.WithDefaults()

	// Parallelism 0 means "all at once" and is kept.
	if u := *got.UpdateConfig; u != (UpdateConfig{Parallelism: 0, Delay: 3 * time.Second, FailureAction: "pause",
		Monitor: 5 * time.Second, MaxFailureRatio: 0.5, Order: "stop-first"}) {
		t.Errorf("update config: %+v", u)
	}
	if r := *got.RollbackConfig; r != (UpdateConfig{Parallelism: 4, FailureAction: "pause", Monitor: 5 * time.Second, Order: "start-first"}) {
		t.Errorf("rollback config: %+v", r)
	}
	if r := got.TaskTemplate.RestartPolicy; r.Condition != "any" || *r.Delay != 5*time.Second || r.MaxAttempts != 2 {
		t.Errorf("restart policy: %+v", r)
	}
	if e := got.EndpointSpec; e.Mode != "dnsrr" ||
		e.Ports[0] != (PortConfig{TargetPort: 53, Protocol: "udp", PublishMode: "host"}) ||
		e.Ports[1] != (PortConfig{TargetPort: 80, Protocol: "tcp", PublishMode: "ingress"}) {
		t.Errorf("endpoint: %+v", e)
	}
	// As with Docker, a dnsrr service whose port defaults to ingress is refused.
	if err := got.Validate(); err == nil || err.Error() !=
		`service "web": endpoint_spec.ports[1].publish_mode: must be host when endpoint_spec.mode is dnsrr (the ingress routing mesh needs a virtual IP), got "ingress"` {
		t.Errorf("got %v", err)
	}
}

func TestWithDefaultsJobs(t *testing.T) {
	for _, tc := range []struct{ in, want ReplicatedJob }{
		{ReplicatedJob{}, ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 1}},
		{ReplicatedJob{MaxConcurrent: 4}, ReplicatedJob{MaxConcurrent: 4, TotalCompletions: 4}},
		{ReplicatedJob{TotalCompletions: 10}, ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 10}},
		{ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 10}, ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 10}},
	} {
		s := goodService()
		s.UpdateConfig, s.RollbackConfig = nil, nil
		j := tc.in
		s.Mode = ServiceMode{ReplicatedJob: &j}
		got := s.WithDefaults()
		if *got.Mode.ReplicatedJob != tc.want {
			t.Errorf("%+v: got %+v, want %+v", tc.in, *got.Mode.ReplicatedJob, tc.want)
		}
		if j != tc.in {
			t.Errorf("the receiver's job changed to %+v", j)
		}
		// Jobs are never rolled: no update or rollback config appears.
		if got.UpdateConfig != nil || got.RollbackConfig != nil {
			t.Errorf("job got update/rollback config")
		}
		if err := got.Validate(); err != nil {
			t.Error(err)
		}
	}
	s := goodService()
	s.UpdateConfig, s.RollbackConfig = nil, nil
	s.TaskTemplate.Placement.MaxReplicas = 0
	s.Mode = ServiceMode{GlobalJob: &GlobalJob{}}
	if got := s.WithDefaults(); got.UpdateConfig != nil || got.Validate() != nil {
		t.Errorf("global job: %+v %v", got.UpdateConfig, got.Validate())
	}
}

func TestWithDefaultsHealthCheck(t *testing.T) {
	for _, tc := range []struct {
		test []string
		want HealthConfig
	}{
		{[]string{"CMD", "true"}, HealthConfig{Test: []string{"CMD", "true"}, Interval: 30 * time.Second, Timeout: 30 * time.Second, Retries: 3}},
		{[]string{"CMD-SHELL", "exit 0"}, HealthConfig{Test: []string{"CMD-SHELL", "exit 0"}, Interval: 30 * time.Second, Timeout: 30 * time.Second, Retries: 3}},
		{[]string{"HTTP", "http://localhost/"}, HealthConfig{Test: []string{"HTTP", "http://localhost/"}, Interval: 30 * time.Second, Timeout: 30 * time.Second, Retries: 3}},
		{[]string{"TCP", ":80"}, HealthConfig{Test: []string{"TCP", ":80"}, Interval: 30 * time.Second, Timeout: 30 * time.Second, Retries: 3}},
		// NONE runs nothing; an empty test inherits the image's check and timings.
		{[]string{"NONE"}, HealthConfig{Test: []string{"NONE"}}},
		{nil, HealthConfig{}},
	} {
		s := goodService()
		s.TaskTemplate.HealthCheck = &HealthConfig{Test: tc.test}
		got := s.WithDefaults().TaskTemplate.HealthCheck
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.test, *got, tc.want)
		}
		if s.TaskTemplate.HealthCheck.Interval != 0 {
			t.Errorf("%q: receiver changed", tc.test)
		}
	}
	// Set timings are kept.
	s := goodService()
	if got := s.WithDefaults().TaskTemplate.HealthCheck; got.Interval != 10*time.Second || got.Timeout != 2*time.Second || got.Retries != 3 {
		t.Errorf("set timings changed: %+v", got)
	}
}

func TestApplyDefaults(t *testing.T) {
	s := ServiceSpec{
		Annotations:  Annotations{Name: "app"},
		Mode:         ServiceMode{Replicated: &ReplicatedService{Replicas: 2}},
		TaskTemplate: TaskSpec{Process: &ProcessSpec{Command: []string{"app"}}, RestartPolicy: &RestartPolicy{}},
		UpdateConfig: &UpdateConfig{Parallelism: 3},
		EndpointSpec: &EndpointSpec{Ports: []PortConfig{{TargetPort: 80}}},
	}
	shallow := s // shares every pointer and slice with s
	want := s.WithDefaults()
	s.ApplyDefaults()
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("ApplyDefaults and WithDefaults differ:\n%+v\n%+v", s, want)
	}
	// Nothing was written through the shared pointers.
	if shallow.UpdateConfig.Order != "" || shallow.TaskTemplate.RestartPolicy.Condition != "" ||
		shallow.EndpointSpec.Mode != "" || shallow.EndpointSpec.Ports[0].Protocol != "" {
		t.Fatalf("ApplyDefaults wrote through shared memory: %+v", shallow)
	}
	// Idempotent.
	again := s
	again.ApplyDefaults()
	if !reflect.DeepEqual(again, s) {
		t.Fatal("applying defaults twice changed the spec")
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestWithDefaultsJobsRestartOnFailure(t *testing.T) {
	for _, mode := range []ServiceMode{{ReplicatedJob: &ReplicatedJob{}}, {GlobalJob: &GlobalJob{}}} {
		s := ServiceSpec{Annotations: Annotations{Name: "job"}, Mode: mode, TaskTemplate: TaskSpec{Process: &ProcessSpec{Command: []string{"app"}}}}
		if got := s.WithDefaults().TaskTemplate.RestartPolicy.Condition; got != RestartConditionOnFailure {
			t.Errorf("%s: restart condition %q, want on-failure (a completed job task is never rerun)", mode.ModeName(), got)
		}
		s.TaskTemplate.RestartPolicy = &RestartPolicy{Condition: RestartConditionNone}
		if got := s.WithDefaults().TaskTemplate.RestartPolicy.Condition; got != RestartConditionNone {
			t.Errorf("%s: a set condition changed to %q", mode.ModeName(), got)
		}
	}
	s := ServiceSpec{Annotations: Annotations{Name: "svc"}, TaskTemplate: TaskSpec{Process: &ProcessSpec{Command: []string{"app"}}}}
	if got := s.WithDefaults().TaskTemplate.RestartPolicy.Condition; got != RestartConditionAny {
		t.Errorf("replicated service: restart condition %q, want any", got)
	}
}

func TestHasHealthCheck(t *testing.T) {
	for _, tc := range []struct {
		h    *HealthConfig
		want bool
	}{
		{nil, false},
		{&HealthConfig{}, false}, // inherit the image's: not set by the spec
		{&HealthConfig{Test: []string{"NONE"}}, false},
		{&HealthConfig{Test: []string{"CMD", "true"}}, true},
		{&HealthConfig{Test: []string{"CMD-SHELL", "true"}}, true},
		{&HealthConfig{Test: []string{"HTTP", "http://127.0.0.1:80/"}}, true},
		{&HealthConfig{Test: []string{"TCP", ":80"}}, true},
	} {
		if got := (TaskSpec{HealthCheck: tc.h}).HasHealthCheck(); got != tc.want {
			t.Errorf("%+v: HasHealthCheck = %v, want %v", tc.h, got, tc.want)
		}
	}
}
