package api

import (
	"strings"
	"testing"
)

// A stop signal is a signal name (with or without SIG, any case) or a
// number 1-64; anything else is refused naming the field, for both
// runtimes.
func TestStopSignalValidation(t *testing.T) {
	for _, ok := range []string{"", "SIGINT", "int", "Quit", "9", "64"} {
		if _, _, err := ParseStopSignal(ok); ok != "" && err != nil {
			t.Errorf("ParseStopSignal(%q): %v", ok, err)
		}
		for _, s := range []TaskSpec{{Process: &ProcessSpec{Command: []string{"/a"}, StopSignal: ok}}, {Container: &ContainerSpec{Image: "x", StopSignal: ok}}} {
			spec := ServiceSpec{Annotations: Annotations{Name: "s"}, TaskTemplate: s}
			spec.ApplyDefaults()
			if err := spec.Validate(); err != nil {
				t.Errorf("stop signal %q: %v", ok, err)
			}
			if s.StopSignal() != ok {
				t.Errorf("TaskSpec.StopSignal() = %q, want %q", s.StopSignal(), ok)
			}
		}
	}
	for _, bad := range []string{"SIGNOPE", "0", "65", "-1", "SIG", "TERM "} {
		for field, s := range map[string]TaskSpec{
			"task_template.process.stop_signal":   {Process: &ProcessSpec{Command: []string{"/a"}, StopSignal: bad}},
			"task_template.container.stop_signal": {Container: &ContainerSpec{Image: "x", StopSignal: bad}},
		} {
			spec := ServiceSpec{Annotations: Annotations{Name: "s"}, TaskTemplate: s}
			spec.ApplyDefaults()
			if err := spec.Validate(); err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("stop signal %q: %v, want refused naming %s", bad, err, field)
			}
		}
	}
}
