package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	const n = 20000
	seen := make(map[string]bool, n)
	used := map[rune]int{}
	for range n {
		id := NewID()
		if len(id) != IDLength || IDLength != 25 {
			t.Fatalf("%q: length %d, want 25", id, len(id))
		}
		for _, c := range id {
			if !strings.ContainsRune(idAlphabet, c) {
				t.Fatalf("%q: %q is not base 36 lower case", id, c)
			}
			used[c]++
		}
		if seen[id] {
			t.Fatalf("duplicate ID %q after %d", id, len(seen))
		}
		seen[id] = true
	}
	// 500,000 random characters that missed one of 36 would mean a biased
	// generator (the chance by luck is ~36·(35/36)^500000 ≈ 0).
	if len(used) != 36 {
		t.Fatalf("only %d of 36 characters used", len(used))
	}
	// And evenly: each character ~13,889 times, with a standard deviation
	// of ~116; a generator that mapped bytes modulo 36 without refusing
	// 252..255 would draw 0..3 about 14% more often than the rest.
	want := float64(n*IDLength) / 36
	for c, got := range used {
		if d := float64(got) - want; d > 0.05*want || d < -0.05*want {
			t.Errorf("%q drawn %d times, want %.0f ± 5%%", c, got, want)
		}
	}
}

func TestObjectsImplementObject(t *testing.T) {
	m := Meta{Version: 7, CreatedAt: time.Unix(1, 0), UpdatedAt: time.Unix(2, 0)}
	for _, tc := range []struct {
		o    Object
		kind Kind
	}{
		{&Service{ID: "s"}, KindService}, {&Task{ID: "t"}, KindTask}, {&Node{ID: "n"}, KindNode},
		{&Cluster{ID: "c"}, KindCluster}, {&Network{ID: "w"}, KindNetwork},
		{&Secret{ID: "x"}, KindSecret}, {&Config{ID: "y"}, KindConfig},
	} {
		tc.o.SetMeta(m)
		if tc.o.GetMeta() != m || tc.o.Kind() != tc.kind || tc.o.GetID() == "" {
			t.Errorf("%T: meta %v kind %v id %q", tc.o, tc.o.GetMeta(), tc.o.Kind(), tc.o.GetID())
		}
		if c := tc.o.CopyObject(); !reflect.DeepEqual(c, tc.o) || c == tc.o {
			t.Errorf("%T: CopyObject not an equal new object", tc.o)
		}
	}
}

// jsonPath reads a value out of decoded JSON by field names.
func jsonPath(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: %v is not an object", path, v)
		}
		if v, ok = m[p]; !ok {
			t.Fatalf("no field %q of %v in %v", p, path, m)
		}
	}
	return v
}

func toJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The JSON names apiaryctl prints (and Docker's API uses) must be Docker's.
func TestDockerJSONNames(t *testing.T) {
	node := toJSON(t, &Node{
		ID:            "n1",
		Spec:          NodeSpec{Annotations: Annotations{Name: "w1"}, Role: NodeRoleManager, Availability: NodeAvailabilityActive},
		Description:   &NodeDescription{Hostname: "host-1", Platform: Platform{OS: "linux", Architecture: "amd64"}},
		Status:        NodeStatus{State: NodeStateReady, Addr: "10.0.0.2"},
		ManagerStatus: &ManagerStatus{Leader: true, Reachability: ReachabilityReachable, Addr: "10.0.0.2:2377"},
	})
	for _, tc := range []struct {
		path []string
		want any
	}{
		{[]string{"ID"}, "n1"},
		{[]string{"Spec", "Name"}, "w1"},
		{[]string{"Spec", "Role"}, "manager"},
		{[]string{"Spec", "Availability"}, "active"},
		{[]string{"Description", "Hostname"}, "host-1"},
		{[]string{"Description", "Platform", "OS"}, "linux"},
		{[]string{"Description", "Platform", "Architecture"}, "amd64"},
		{[]string{"Status", "State"}, "ready"},
		{[]string{"Status", "Addr"}, "10.0.0.2"},
		{[]string{"ManagerStatus", "Leader"}, true},
		{[]string{"ManagerStatus", "Addr"}, "10.0.0.2:2377"},
		{[]string{"ManagerStatus", "Reachability"}, "reachable"},
	} {
		if got := jsonPath(t, node, tc.path...); got != tc.want {
			t.Errorf("node %v = %v, want %v", tc.path, got, tc.want)
		}
	}

	task := toJSON(t, &Task{
		ID: "t1", ServiceID: "s1", Slot: 3, NodeID: "n1", DesiredState: TaskStateRunning,
		Spec:   TaskSpec{Container: &ContainerSpec{Image: "nginx"}},
		Status: TaskStatus{State: TaskStatePreparing, Message: "preparing", ContainerStatus: &ContainerStatus{ContainerID: "c1", ExitCode: 0}},
	})
	for _, tc := range []struct {
		path []string
		want any
	}{
		{[]string{"ID"}, "t1"},
		{[]string{"ServiceID"}, "s1"},
		{[]string{"Slot"}, 3.0},
		{[]string{"NodeID"}, "n1"},
		{[]string{"DesiredState"}, "running"},
		{[]string{"Status", "State"}, "preparing"},
		{[]string{"Status", "Message"}, "preparing"},
		{[]string{"Status", "ContainerStatus", "ContainerID"}, "c1"},
		{[]string{"Spec", "ContainerSpec", "Image"}, "nginx"},
	} {
		if got := jsonPath(t, task, tc.path...); got != tc.want {
			t.Errorf("task %v = %v, want %v", tc.path, got, tc.want)
		}
	}

	spec := goodService()
	svc := toJSON(t, &Service{ID: "s1", Spec: spec})
	for _, tc := range []struct {
		path []string
		want any
	}{
		{[]string{"ID"}, "s1"},
		{[]string{"Spec", "Name"}, "web"},
		{[]string{"Spec", "Mode", "Replicated", "Replicas"}, 3.0},
		{[]string{"Spec", "TaskTemplate", "ContainerSpec", "Image"}, "nginx:1.27"},
		{[]string{"Spec", "TaskTemplate", "RestartPolicy", "Condition"}, "on-failure"},
		{[]string{"Spec", "UpdateConfig", "FailureAction"}, "rollback"},
		{[]string{"Spec", "UpdateConfig", "Order"}, "start-first"},
		{[]string{"Spec", "RollbackConfig", "Parallelism"}, 1.0},
		{[]string{"Spec", "EndpointSpec", "Mode"}, "vip"},
	} {
		if got := jsonPath(t, svc, tc.path...); got != tc.want {
			t.Errorf("service %v = %v, want %v", tc.path, got, tc.want)
		}
	}
	port := jsonPath(t, svc, "Spec", "EndpointSpec", "Ports").([]any)[0]
	for k, want := range map[string]any{"Protocol": "tcp", "TargetPort": 80.0, "PublishedPort": 8080.0, "PublishMode": "ingress"} {
		if got := jsonPath(t, port, k); got != want {
			t.Errorf("port %s = %v, want %v", k, got, want)
		}
	}

	for _, o := range []any{&Cluster{ID: "c1", Spec: DefaultClusterSpec()}, &Network{ID: "c1", Spec: NetworkSpec{Annotations: Annotations{Name: "default"}}}} {
		j := toJSON(t, o)
		if jsonPath(t, j, "ID") != "c1" || jsonPath(t, j, "Spec", "Name") != "default" {
			t.Errorf("%T: %v", o, j)
		}
	}
}

// A task survives a JSON round trip whole: states travel by name.
func TestTaskJSONRoundTrip(t *testing.T) {
	in := &Task{
		ID: "t1", Name: "web.1", ServiceID: "s1", Slot: 1, NodeID: "n1",
		ServiceAnnotations: Annotations{Name: "web", Labels: map[string]string{"a": "b"}},
		Spec:               goodService().TaskTemplate, SpecVersion: 4, DesiredState: TaskStateShutdown,
		Status: TaskStatus{Timestamp: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), State: TaskStateFailed,
			Err: "exit 1", ContainerStatus: &ContainerStatus{PID: 42, ExitCode: 1}},
		Networks: []NetworkAttachment{{NetworkID: "w1", Addresses: []string{"10.0.1.5/24"}}},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Task
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&out, in) {
		t.Fatalf("round trip:\n%+v\n%+v", &out, in)
	}
	if !strings.Contains(string(b), `"NetworksAttachments":`) {
		t.Error(`networks are not under Docker's "NetworksAttachments"`)
	}
}
