package dockerapi

import (
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

// A mode sent without Replicas (docker service create without
// --replicas) or no mode at all reads back with the replica count the
// service got, as Docker's daemon shows it: the CLI's progress display
// and scale need it.
func TestDockerSpecShowsDefaultedMode(t *testing.T) {
	for name, mode := range map[string]swarm.ServiceMode{
		"replicated without replicas": {Replicated: &swarm.ReplicatedService{}},
		"no mode":                     {},
	} {
		d := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"}, Mode: mode,
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "process.apiary.invalid/bin/web"}}}
		s, err := specFromDocker(d, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := dockerSpec(s.WithDefaults(), false)
		if r := got.Mode.Replicated; r == nil || r.Replicas == nil || *r.Replicas != 1 {
			t.Errorf("%s: mode read back as %+v, want replicated 1", name, got.Mode)
		}
		if got.TaskTemplate.ContainerSpec.Image != d.TaskTemplate.ContainerSpec.Image {
			t.Errorf("%s: image %q", name, got.TaskTemplate.ContainerSpec.Image)
		}
	}
}

// Warnings name the unapplied settings a spec sets, and none for the
// empty values the docker CLI sends on every create.
func TestWarningsNameSetFieldsOnly(t *testing.T) {
	no := false
	cliDefaults := swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
		Image: "nginx", Init: &no, DNSConfig: &swarm.DNSConfig{}, Privileges: &swarm.Privileges{}}}}
	if w := warnings(cliDefaults); len(w) != 0 {
		t.Errorf("warnings for the CLI's empty values: %q", w)
	}
	yes := true
	set := cliDefaults
	c := *set.TaskTemplate.ContainerSpec
	c.Init, c.Hostname, c.CapabilityAdd = &yes, "h", []string{"NET_ADMIN"}
	set.TaskTemplate.ContainerSpec = &c
	set.TaskTemplate.LogDriver = &swarm.Driver{Name: "json-file"}
	want := []string{"Apiary keeps but does not apply these container settings: hostname, init, capabilities",
		"Apiary keeps but does not apply the log driver: task output stays on its node (docker service logs reads it)"}
	if w := warnings(set); !reflect.DeepEqual(w, want) {
		t.Errorf("warnings = %q, want %q", w, want)
	}
}

// docker service create --stop-signal reaches our spec (container and,
// for a process image, the process it runs as), reads back, and warns of
// nothing: both executors apply it.
func TestStopSignalMapped(t *testing.T) {
	for _, image := range []string{"nginx", "process.apiary.invalid/bin/web"} {
		d := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"},
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: image, StopSignal: "SIGINT"}}}
		s, err := specFromDocker(d, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.TaskTemplate.StopSignal(); got != "SIGINT" {
			t.Errorf("%s: our spec's stop signal %q, want SIGINT", image, got)
		}
		if p := s.TaskTemplate.Container.AsProcess(); image != "nginx" && (p == nil || p.StopSignal != "SIGINT") {
			t.Errorf("%s: runs as process %+v, want its stop signal SIGINT", image, p)
		}
		if got := dockerSpec(s.WithDefaults(), false).TaskTemplate.ContainerSpec.StopSignal; got != "SIGINT" {
			t.Errorf("%s: read back stop signal %q", image, got)
		}
		if w := warnings(d); len(w) != 0 {
			t.Errorf("%s: warnings %q", image, w)
		}
	}
}
