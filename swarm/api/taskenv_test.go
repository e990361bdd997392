package api

import (
	"slices"
	"testing"
)

func TestTaskPath(t *testing.T) {
	t.Setenv("PATH", "/opt/bin:/bin")
	if got := TaskPath(); got != "/opt/bin:/bin" {
		t.Errorf("with the daemon's PATH: got %q, want it", got)
	}
	t.Setenv("PATH", "")
	if got := TaskPath(); got != defaultTaskPath {
		t.Errorf("without a PATH: got %q, want %q", got, defaultTaskPath)
	}
}

func TestTaskIdentityEnv(t *testing.T) {
	task := &Task{ID: "t1", Name: "web.2", Slot: 2, ServiceID: "s1", ServiceAnnotations: Annotations{Name: "web"}}
	want := []string{"APIARY_TASK_ID=t1", "APIARY_TASK_NAME=web.2", "APIARY_TASK_SLOT=2",
		"APIARY_SERVICE_ID=s1", "APIARY_SERVICE_NAME=web", "APIARY_NODE_ID=n1"}
	if got := TaskIdentityEnv(task, "n1"); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
