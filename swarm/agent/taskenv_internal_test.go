package agent

import (
	"slices"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

func TestWithHostEnvContainer(t *testing.T) {
	task := &api.Task{ID: "t1", Spec: api.TaskSpec{Container: &api.ContainerSpec{Image: "app", Env: []string{"APIARY_DNS=spec", "A=1", "APIARY_PORT_80=1"}}}}
	ports := []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 31000}, {Protocol: "udp", TargetPort: 80, PublishedPort: 31000}, {Protocol: "tcp", TargetPort: 9090, PublishedPort: 31001}}
	got := withHostEnv(task, "10.0.0.5", "", ports)
	want := []string{"APIARY_DNS=spec", "A=1", "APIARY_HOST=10.0.0.5", "APIARY_PORT_80=31000", "APIARY_PORT_9090=31001", "PORT=31000"}
	if !slices.Equal(got.Spec.Container.Env, want) {
		t.Errorf("env = %q, want %q (no DNS configured: the spec's APIARY_DNS stays)", got.Spec.Container.Env, want)
	}
	if len(task.Spec.Container.Env) != 3 {
		t.Errorf("the task given was modified: %q", task.Spec.Container.Env)
	}
	if c := withHostEnv(&api.Task{ID: "t2"}, "10.0.0.5", "", nil); c.Spec.RuntimeKind() != "" {
		t.Errorf("a task without a runtime got one: %+v", c.Spec)
	}
}
