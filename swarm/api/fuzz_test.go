package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The fuzz targets of the object model: the parsers every spec goes
// through (constraint expressions, task state names) and a spec's path from
// the JSON a client sends to what the store keeps (decode, validate,
// defaults, copy). Seeds are below and in testdata/fuzz; `.ci/fuzz` runs
// each target for a few seconds.

// FuzzParseConstraint: a parsed constraint prints in a canonical form that
// parses back to itself, with a key the scheduler knows.
func FuzzParseConstraint(f *testing.F) {
	for _, s := range []string{
		"node.id==abc123", "node.hostname!=worker-1", "node.role==manager",
		"NODE.Labels.Zone==eu-1", "engine.labels.os!=windows", " node.platform.os == linux ",
		"node.labels.==x", "node.labels.a==b==c", "node.labels.a!=b==c", "==x", "node.id==",
		"node.ip==1.2.3.4", "engİne.labels.zone==a", "node.labels.k\x00==v", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := ParseConstraint(expr)
		if err != nil {
			if !strings.Contains(err.Error(), "constraint") {
				t.Fatalf("ParseConstraint(%q): error %q does not say what it refuses", expr, err)
			}
			return
		}
		if c.Expr != expr {
			t.Fatalf("ParseConstraint(%q).Expr = %q", expr, c.Expr)
		}
		if c.Operator != ConstraintEq && c.Operator != ConstraintNe {
			t.Fatalf("ParseConstraint(%q): operator %q", expr, c.Operator)
		}
		if !constraintKeys[c.Key] && !strings.HasPrefix(c.Key, "node.labels.") && !strings.HasPrefix(c.Key, "engine.labels.") {
			t.Fatalf("ParseConstraint(%q): key %q is not canonical", expr, c.Key)
		}
		again, err := ParseConstraint(c.String())
		if err != nil {
			t.Fatalf("ParseConstraint(%q) = %q, which does not parse: %v", expr, c.String(), err)
		}
		if again.Key != c.Key || again.Operator != c.Operator || again.Value != c.Value {
			t.Fatalf("ParseConstraint(%q) = %+v, its String %q parses to %+v", expr, c, c.String(), again)
		}
	})
}

// FuzzParseTaskState: a state name parses to a state whose name and text
// form read back to it.
func FuzzParseTaskState(f *testing.F) {
	for _, s := range TaskStates() {
		f.Add(s.String())
	}
	f.Add("RUNNING")
	f.Add("TaskState(3)")
	f.Add("")
	f.Fuzz(func(t *testing.T, name string) {
		s, err := ParseTaskState(name)
		var u TaskState
		uerr := u.UnmarshalText([]byte(name))
		if (err == nil) != (uerr == nil) || u != s {
			t.Fatalf("ParseTaskState(%q) = %v, %v; UnmarshalText = %v, %v", name, s, err, u, uerr)
		}
		if err != nil {
			return
		}
		text, err := s.MarshalText()
		if err != nil {
			t.Fatalf("state %d parsed from %q does not marshal: %v", int(s), name, err)
		}
		if back, err := ParseTaskState(string(text)); err != nil || back != s {
			t.Fatalf("state %v from %q: its text %q parses to %v, %v", s, name, text, back, err)
		}
	})
}

// FuzzServiceSpecJSON follows a service spec as the control API takes it:
// decoded from JSON, validated, given its defaults. Validation is
// deterministic, changes nothing, and reports each problem as a
// ValidationError naming its field; Copy and WithDefaults leave the spec
// as it was; defaults are idempotent; a valid spec stays valid with its
// defaults; and a spec survives its own JSON.
func FuzzServiceSpecJSON(f *testing.F) {
	for _, s := range seedServiceSpecs() {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Name":"web","Mode":{"Replicated":{"Replicas":-1}},"TaskTemplate":{}}`))
	f.Add([]byte(`{"Name":"job","Mode":{"ReplicatedJob":{"MaxConcurrent":2}},"TaskTemplate":{"ProcessSpec":{"Command":["/bin/true"]}},"UpdateConfig":{}}`))
	f.Add([]byte(`{"Name":"x","Mode":{"Global":{},"Replicated":{}},"TaskTemplate":{"ContainerSpec":{"Image":"UPPER/case"},"ProcessSpec":{"Command":[""]}}}`))
	f.Add([]byte(`{"Name":"x","TaskTemplate":{"ProcessSpec":{"Command":["a"]},"Placement":{"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels. "}}],"Constraints":["node.labels.a=="]}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s ServiceSpec
		if err := json.Unmarshal(data, &s); err != nil {
			return
		}
		before := mustJSON(t, s)
		verr := s.Validate()
		checkValidationError(t, "service", verr)
		if again := s.Validate(); errString(again) != errString(verr) {
			t.Fatalf("Validate is not deterministic:\n%v\n%v", verr, again)
		}
		if c := s.Copy(); !sameJSON(t, mustJSON(t, c), before) {
			t.Fatalf("Copy differs from the spec:\n%s\n%s", mustJSON(t, c), before)
		}
		d := s.WithDefaults()
		if got := mustJSON(t, s); !bytes.Equal(got, before) {
			t.Fatalf("Validate or WithDefaults changed the spec:\n%s\n%s", before, got)
		}
		withDefaults := mustJSON(t, d)
		if twice := mustJSON(t, d.WithDefaults()); !bytes.Equal(twice, withDefaults) {
			t.Fatalf("WithDefaults is not idempotent:\n%s\n%s", withDefaults, twice)
		}
		derr := d.Validate()
		checkValidationError(t, "service", derr)
		if verr == nil && derr != nil {
			t.Fatalf("a valid spec is invalid with its defaults: %v\nspec: %s\nwith defaults: %s", derr, before, withDefaults)
		}
		var back ServiceSpec
		if err := json.Unmarshal(withDefaults, &back); err != nil {
			t.Fatalf("a spec's own JSON does not decode: %v\n%s", err, withDefaults)
		}
		if got := mustJSON(t, back); !bytes.Equal(got, withDefaults) {
			t.Fatalf("JSON round trip changed the spec:\n%s\n%s", withDefaults, got)
		}
		if berr := back.Validate(); errString(berr) != errString(derr) {
			t.Fatalf("the decoded copy validates differently:\n%v\n%v", derr, berr)
		}
	})
}

// FuzzSpecJSON does the same for the other kinds a client or the store
// hands over as JSON: node, cluster and network specs, task specs and whole
// tasks (which the store validates on apply).
func FuzzSpecJSON(f *testing.F) {
	svc := seedServiceSpecs()[0]
	for _, s := range []struct {
		kind byte
		v    any
	}{
		{0, NodeSpec{Annotations: Annotations{Name: "n1", Labels: map[string]string{"zone": "a"}}, Role: NodeRoleWorker, Availability: NodeAvailabilityActive}},
		{0, NodeSpec{Role: "boss", Availability: "", Annotations: Annotations{Labels: map[string]string{" ": "x"}}}},
		{1, DefaultClusterSpec()},
		{1, ClusterSpec{Annotations: Annotations{Name: "-bad"}, Orchestration: OrchestrationConfig{TaskHistoryRetentionLimit: -1}}},
		{2, NetworkSpec{Annotations: Annotations{Name: "front"}, Driver: "overlay", IPAM: &IPAMConfig{Subnet: "10.0.1.0/24", Gateway: "10.0.1.1"}}},
		{2, NetworkSpec{Annotations: Annotations{Name: "in"}, Ingress: true, Attachable: true, IPAM: &IPAMConfig{Subnet: "10.0.1.7/24", Gateway: "10.0.2.1"}}},
		{3, svc.TaskTemplate},
		{4, Task{ID: "t1", ServiceID: "s1", Slot: 1, Spec: svc.TaskTemplate, DesiredState: TaskStateRunning, Status: TaskStatus{State: TaskStateNew}}},
	} {
		b, err := json.Marshal(s.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.kind, b)
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		type spec interface{ Validate() error }
		var v spec
		var name string
		switch kind % 5 {
		case 0:
			v, name = new(NodeSpec), "node"
		case 1:
			v, name = new(ClusterSpec), "cluster"
		case 2:
			v, name = new(NetworkSpec), "network"
		case 3:
			v, name = new(TaskSpec), "task spec"
		default:
			v, name = new(Task), "task"
		}
		if err := json.Unmarshal(data, v); err != nil {
			return
		}
		before := mustJSON(t, v)
		err := v.Validate()
		checkValidationError(t, name, err)
		if again := v.Validate(); errString(again) != errString(err) {
			t.Fatalf("Validate is not deterministic:\n%v\n%v", err, again)
		}
		if got := mustJSON(t, v); !bytes.Equal(got, before) {
			t.Fatalf("Validate changed the %s:\n%s\n%s", name, before, got)
		}
		var c any
		switch x := v.(type) {
		case *NodeSpec:
			c = x.Copy()
		case *ClusterSpec:
			c = x.Copy()
		case *TaskSpec:
			c = x.Copy()
		case *Task:
			c = x.Copy()
		}
		if c != nil && !sameJSON(t, mustJSON(t, c), before) {
			t.Fatalf("Copy of the %s differs:\n%s\n%s", name, mustJSON(t, c), before)
		}
	})
}

// checkValidationError: every problem Validate reports is a
// ValidationError of the right kind that names a field and says what is
// wrong, and nothing else is in the error.
func checkValidationError(t *testing.T, kind string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	ves := ValidationErrors(err)
	if len(ves) == 0 {
		t.Fatalf("Validate returned %q, which holds no ValidationError", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(ves) {
		t.Fatalf("Validate's error has %d lines but %d ValidationErrors:\n%v", len(lines), len(ves), err)
	}
	var first *ValidationError
	if !errors.As(err, &first) || first != ves[0] {
		t.Fatalf("errors.As does not find the first ValidationError of %v", err)
	}
	for _, ve := range ves {
		if ve.Kind != kind || ve.Field == "" || ve.Problem == "" {
			t.Fatalf("ValidationError %+v does not name its %s field and problem", *ve, kind)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// sameJSON compares two encodings, taking an empty list for a missing one:
// Copy drops empty slices, and both mean "none".
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(dropEmptyLists(x), dropEmptyLists(y))
}

func dropEmptyLists(v any) any {
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return nil
		}
		for i := range x {
			x[i] = dropEmptyLists(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = dropEmptyLists(x[k])
		}
	}
	return v
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return b
}

// seedServiceSpecs are valid specs of every mode and runtime, with most
// fields set, for the fuzzer to mutate.
func seedServiceSpecs() []ServiceSpec {
	d := func(s string) *time.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			panic(err)
		}
		return &v
	}
	web := ServiceSpec{
		Annotations: Annotations{Name: "web", Labels: map[string]string{"tier": "front"}},
		Mode:        ServiceMode{Replicated: &ReplicatedService{Replicas: 3}},
		TaskTemplate: TaskSpec{
			Container: &ContainerSpec{
				Image: "registry.example.com:5000/team/web:1.2", Env: []string{"A=1"}, Dir: "/srv",
				Mounts: []Mount{
					{Type: MountTypeVolume, Source: "data", Target: "/data"},
					{Type: MountTypeBind, Source: "/etc/ssl", Target: "/ssl", ReadOnly: true},
					{Type: MountTypeTmpfs, Target: "/tmp"},
				},
				StopGracePeriod: d("10s"),
			},
			Resources: &ResourceRequirements{
				Limits: &Resources{NanoCPUs: 2e9, MemoryBytes: 512 << 20},
				Reservations: &Resources{NanoCPUs: 1e9, MemoryBytes: 256 << 20, GenericResources: []GenericResource{
					{DiscreteResourceSpec: &DiscreteGenericResource{Kind: "gpu", Value: 1}},
				}},
			},
			RestartPolicy: &RestartPolicy{Condition: RestartConditionOnFailure, Delay: d("5s"), MaxAttempts: 3},
			Placement: &Placement{
				Constraints: []string{"node.role==worker", "node.labels.zone!=b"},
				Preferences: []PlacementPreference{{Spread: &SpreadOver{SpreadDescriptor: "node.labels.dc"}}},
				MaxReplicas: 2,
				Platforms:   []Platform{{OS: "linux", Architecture: "amd64"}},
			},
			HealthCheck: &HealthConfig{Test: []string{"HTTP", "http://localhost:8080/health"}, Retries: 2},
			Networks:    []NetworkAttachmentConfig{{Target: "front", Aliases: []string{"www"}}},
		},
		UpdateConfig:   &UpdateConfig{Parallelism: 2, Delay: 10e9, FailureAction: UpdateFailureActionRollback, MaxFailureRatio: 0.2, Order: UpdateOrderStartFirst},
		RollbackConfig: &UpdateConfig{Parallelism: 1},
		EndpointSpec: &EndpointSpec{Ports: []PortConfig{
			{Name: "http", TargetPort: 80, PublishedPort: 8080},
			{Protocol: PortProtocolUDP, TargetPort: 53, PublishedPort: 53, PublishMode: PublishModeHost},
		}},
	}
	job := ServiceSpec{
		Annotations: Annotations{Name: "batch"},
		Mode:        ServiceMode{ReplicatedJob: &ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 10}},
		TaskTemplate: TaskSpec{
			Process:     &ProcessSpec{Command: []string{"/usr/bin/work", "--once"}, Env: []string{"N=1"}},
			HealthCheck: &HealthConfig{Test: []string{"TCP", ":8080"}},
		},
	}
	global := ServiceSpec{
		Annotations:  Annotations{Name: "agent"},
		Mode:         ServiceMode{Global: &GlobalService{}},
		TaskTemplate: TaskSpec{Process: &ProcessSpec{Command: []string{"./agent"}}, Placement: &Placement{Preferences: []PlacementPreference{{Spread: &SpreadOver{SpreadDescriptor: "engine.labels.rack"}}}}},
		EndpointSpec: &EndpointSpec{Mode: ResolutionModeDNSRR, Ports: []PortConfig{{TargetPort: 9100, PublishMode: PublishModeHost}}},
	}
	return []ServiceSpec{web, job, global, {Annotations: Annotations{Name: "bare"}, TaskTemplate: TaskSpec{Process: &ProcessSpec{Command: []string{"x"}}}}}
}
