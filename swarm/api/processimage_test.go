package api

import (
	"reflect"
	"strings"
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
		// The docker CLI's compose loader refuses a path: the reserved
		// registry host spells one as an image reference, tag ignored.
		{"process.apiary.invalid/usr/local/bin/webapp", true},
		{"process.apiary.invalid/usr/local/bin/webapp:latest", true},
		{"process.apiary.invalid/web:v2", true},
		{"process.apiary.invalid/", false},
		{"process.apiary.invalid", false},
		{"process.apiary.invalid/usr/../web", false},
		{"process.apiary.invalid//web", false},
		{"process.apiary.invalid/usr/bin/", false},
		{"process.apiary.invalid/web@sha256:" + strings.Repeat("a", 64), false},
		{"process.apiary.invalid/web:bad:tag", false},
		{"process.apiary.invalid/Opt/web", false}, // not a reference: spelled as a path
		{"process.apiary.invalid:5000/web", false},
		{"registry.example.com/usr/bin/web", false},
	} {
		if got := IsProcessImage(tc.image); got != tc.want {
			t.Errorf("IsProcessImage(%q) = %v, want %v", tc.image, got, tc.want)
		}
	}
	for image, want := range map[string]string{
		"/opt/bin/web": "/opt/bin/web",
		"process.apiary.invalid/usr/local/bin/webapp:latest": "/usr/local/bin/webapp",
		"process.apiary.invalid/tmp/apiary-e2e-1/webapp-v2":  "/tmp/apiary-e2e-1/webapp-v2",
	} {
		if got, ok := ProcessImagePath(image); !ok || got != want {
			t.Errorf("ProcessImagePath(%q) = %q, %v; want %q", image, got, ok, want)
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
	// No registry serves a program: Docker nodes cannot run it.
	for kind, want := range map[string]bool{"process": true, "docker": false, "fake": true, "": true, "other": false} {
		if got := (TaskSpec{Container: c}).RunsOn(kind); got != want {
			t.Errorf("RunsOn(%q) = %v, want %v", kind, got, want)
		}
	}
	if !(TaskSpec{Container: &ContainerSpec{Image: "nginx"}}).RunsOn("docker") {
		t.Error("an image does not run on a docker node")
	}
	h := &ContainerSpec{Image: "process.apiary.invalid/opt/bin/web:latest", Args: []string{"-v"}}
	if got := h.AsProcess(); got == nil || !reflect.DeepEqual(got.Command, []string{"/opt/bin/web"}) || !reflect.DeepEqual(got.Args, []string{"-v"}) {
		t.Errorf("AsProcess of %s = %+v, want /opt/bin/web -v", h.Image, got)
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
	s.TaskTemplate.Container.Image = "process.apiary.invalid/opt/bin/web:latest"
	if err := s.Validate(); err != nil {
		t.Errorf("a process.apiary.invalid image: %v", err)
	}
	for _, bad := range []string{"process.apiary.invalid/opt/../web", "process.apiary.invalid/web@sha256:" + strings.Repeat("a", 64)} {
		s.TaskTemplate.Container.Image = bad
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "a process image is process.apiary.invalid/PATH[:TAG]") {
			t.Errorf("image %q: %v, want the process image's rule", bad, err)
		}
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
