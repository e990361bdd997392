package api

import (
	"reflect"
	"testing"
	"time"
)

func TestProcessImage(t *testing.T) {
	for _, tc := range []struct {
		image string
		want  bool
	}{
		{"/opt/bin/web", true},
		{"/web", true},
		{"/", false},
		{"/opt/../bin/web", false},
		{"/opt/bin/", false},
		{"opt/bin/web", false},
		{"nginx:1.27", false},
		{"", false},
	} {
		if got := IsProcessImage(tc.image); got != tc.want {
			t.Errorf("IsProcessImage(%q) = %v, want %v", tc.image, got, tc.want)
		}
	}
}

func TestContainerAsProcess(t *testing.T) {
	grace := 3 * time.Second
	c := &ContainerSpec{Image: "/opt/bin/web", Args: []string{"-v"}, Env: []string{"A=1"}, Dir: "/srv", User: "nobody", StopGracePeriod: &grace, Labels: map[string]string{"x": "y"}}
	want := &ProcessSpec{Command: []string{"/opt/bin/web"}, Args: []string{"-v"}, Env: []string{"A=1"}, Dir: "/srv", User: "nobody", StopGracePeriod: &grace}
	if got := c.AsProcess(); !reflect.DeepEqual(got, want) {
		t.Errorf("AsProcess() = %+v, want %+v", got, want)
	}
	c.Command = []string{"/bin/sh", "-c"}
	if got := c.AsProcess().Command; !reflect.DeepEqual(got, []string{"/bin/sh", "-c"}) {
		t.Errorf("AsProcess with Command: command %q, want the Command", got)
	}
	if got := (&ContainerSpec{Image: "nginx"}).AsProcess(); got != nil {
		t.Errorf("AsProcess of an image = %+v, want nil", got)
	}
	for kind, want := range map[string]bool{"process": true, "docker": true, "fake": true, "": true, "other": false} {
		if got := (TaskSpec{Container: c}).RunsOn(kind); got != want {
			t.Errorf("RunsOn(%q) = %v, want %v", kind, got, want)
		}
	}
	img := TaskSpec{Container: &ContainerSpec{Image: "nginx"}}
	if img.RunsOn(RuntimeProcess) {
		t.Error("an image runs on a process node")
	}
	if !(TaskSpec{Process: &ProcessSpec{Command: []string{"x"}}}).RunsOn(RuntimeProcess) {
		t.Error("a process spec does not run on a process node")
	}
}

func TestValidateProcessImage(t *testing.T) {
	s := ServiceSpec{Annotations: Annotations{Name: "web"}, Mode: ServiceMode{Replicated: &ReplicatedService{Replicas: 1}},
		TaskTemplate: TaskSpec{Container: &ContainerSpec{Image: "/opt/bin/web"}}}
	if err := s.Validate(); err != nil {
		t.Errorf("an absolute path image: %v", err)
	}
	s.TaskTemplate.Container.Image = "/opt/../web"
	if err := s.Validate(); err == nil {
		t.Error("an unclean path image was accepted")
	}
}

func TestServiceSpecExtensionsCopied(t *testing.T) {
	s := ServiceSpec{Extensions: map[string][]byte{"docker": []byte(`{}`)}}
	c := s.Copy()
	c.Extensions["docker"][0] = 'x'
	if string(s.Extensions["docker"]) != "{}" {
		t.Error("Copy shares the extension's bytes")
	}
}
