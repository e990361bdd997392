package docker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

func TestContainerName(t *testing.T) {
	for _, tc := range []struct {
		task api.Task
		want string
	}{
		{api.Task{ID: "abc", ServiceAnnotations: api.Annotations{Name: "web"}, Slot: 3}, "apiary.web.3.abc"},
		{api.Task{ID: "abc", ServiceAnnotations: api.Annotations{Name: "agent"}, NodeID: "n1"}, "apiary.agent.n1.abc"},
		{api.Task{ID: "abc", ServiceAnnotations: api.Annotations{Name: "we b/x"}, Slot: 1}, "apiary.we-b-x.1.abc"},
		{api.Task{ID: "abc"}, "apiary.task.0.abc"},
	} {
		if got := ContainerName(&tc.task); got != tc.want {
			t.Errorf("ContainerName(%+v) = %q, want %q", tc.task, got, tc.want)
		}
	}
}

func TestHealthConfig(t *testing.T) {
	for _, test := range [][]string{nil, {"NONE"}, {"CMD", "/app", "health"}, {"CMD-SHELL", "curl -f localhost"}} {
		h, err := healthConfig(&api.HealthConfig{Test: test, Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: 3 * time.Second, Retries: 4})
		if err != nil {
			t.Fatalf("%q: %v", test, err)
		}
		if !slices.Equal(h.Test, test) || h.Interval != time.Second || h.Timeout != 2*time.Second || h.StartPeriod != 3*time.Second || h.Retries != 4 {
			t.Errorf("%q: mapped to %+v", test, h)
		}
	}
	for _, test := range [][]string{{"HTTP", "http://localhost/"}, {"TCP", "localhost:80"}} {
		_, err := healthConfig(&api.HealthConfig{Test: test})
		if err == nil || !strings.Contains(err.Error(), test[0]+" checks are not supported") || !strings.Contains(err.Error(), `["CMD", ...]`) {
			t.Errorf("%q: %v, want a refusal naming CMD", test, err)
		}
	}
	if h, err := healthConfig(nil); h != nil || err != nil {
		t.Errorf("no health check: %v %v", h, err)
	}
}

func TestStopTimeout(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 0, -time.Second: 0, time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, 10 * time.Second: 10} {
		if got := stopTimeout(d); got != want {
			t.Errorf("stopTimeout(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestGoArch(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"} {
		if got := goArch(in); got != want {
			t.Errorf("goArch(%q) = %q, want %q", in, got, want)
		}
	}
	if got := goOS("Linux"); got != "linux" {
		t.Errorf("goOS(Linux) = %q", got)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		code   int
		oom    bool
		signal string
		msg    string
	}{
		{0, false, "", "exit status 0"},
		{3, false, "", "exit status 3"},
		{137, false, "SIGKILL", "killed by SIGKILL (exit code 137)"},
		{143, false, "SIGTERM", "killed by SIGTERM (exit code 143)"},
		{137, true, "SIGKILL", "killed by the kernel: out of memory (exit code 137)"},
		{200, false, "", "exit status 200"},
	} {
		st := exitStatus(tc.code, tc.oom, "")
		if st.ExitCode != tc.code || st.OOMKilled != tc.oom || st.Signal != tc.signal || st.Message != tc.msg {
			t.Errorf("exitStatus(%d, %v) = %+v", tc.code, tc.oom, st)
		}
		if st.Failed() != (tc.code != 0) {
			t.Errorf("exitStatus(%d).Failed() = %v", tc.code, st.Failed())
		}
	}
}

func TestContainerConfig(t *testing.T) {
	e := &Executor{cfg: Config{ClusterID: "c1", NodeID: "n-cfg"}}
	grace := 3 * time.Second
	task := &api.Task{
		ID: "t1", Name: "web.2", ServiceID: "s1", ServiceAnnotations: api.Annotations{Name: "web"}, Slot: 2,
		Spec: api.TaskSpec{
			Container: &api.ContainerSpec{
				Image:           "app:1",
				Command:         []string{"/bin/app"},
				Args:            []string{"serve"},
				Env:             []string{"A=1", "APIARY_SERVICE_NAME=x"},
				Mounts:          []api.Mount{{Type: api.MountTypeVolume, Source: "data", Target: "/data"}, {Type: api.MountTypeTmpfs, Target: "/tmp"}},
				StopGracePeriod: &grace,
			},
			Resources: &api.ResourceRequirements{Limits: &api.Resources{NanoCPUs: 2e9, MemoryBytes: 1 << 30}},
		},
	}
	cfg, host, err := e.containerConfig(task)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/bin/app"}) || !slices.Equal(cfg.Cmd, []string{"serve"}) || cfg.Image != "app:1" {
		t.Errorf("config %+v", cfg)
	}
	wantEnv := []string{"A=1", "APIARY_TASK_ID=t1", "APIARY_TASK_NAME=web.2", "APIARY_TASK_SLOT=2", "APIARY_SERVICE_ID=s1", "APIARY_SERVICE_NAME=web", "APIARY_NODE_ID=n-cfg"}
	if !slices.Equal(cfg.Env, wantEnv) {
		t.Errorf("env %q, want %q", cfg.Env, wantEnv)
	}
	if *cfg.StopTimeout != 3 || host.RestartPolicy.Name != "no" || host.NanoCPUs != 2e9 || host.Memory != 1<<30 || host.MemorySwap != 1<<30 {
		t.Errorf("stop %d restart %q host %+v", *cfg.StopTimeout, host.RestartPolicy.Name, host.Resources)
	}
	if len(host.Mounts) != 2 || host.Mounts[0].Type != "volume" || host.Mounts[0].Source != "data" || host.Mounts[1].Type != "tmpfs" {
		t.Errorf("mounts %+v", host.Mounts)
	}
	back, err := taskFromLabels(cfg.Labels)
	if err != nil || back.ID != "t1" || back.Spec.Container.Image != "app:1" || back.Slot != 2 {
		t.Errorf("task from labels %+v, %v", back, err)
	}
	delete(cfg.Labels, LabelTask)
	back, err = taskFromLabels(cfg.Labels)
	if err != nil || back.ID != "t1" || back.ServiceID != "s1" || back.Slot != 2 || back.NodeID != "n-cfg" || back.Spec.Container == nil {
		t.Errorf("task from the other labels %+v, %v", back, err)
	}
	task.Spec.Container.Image = ""
	if _, _, err := e.containerConfig(task); err == nil || !strings.Contains(err.Error(), "no image") {
		t.Errorf("no image: %v", err)
	}
}

// A task's stop signal becomes the container's, by its canonical name (or
// number): docker's stop sends it, then SIGKILL after the grace period.
func TestContainerStopSignal(t *testing.T) {
	e := &Executor{cfg: Config{ClusterID: "c1", NodeID: "n1"}}
	for in, want := range map[string]string{"": "", "int": "SIGINT", "SIGQUIT": "SIGQUIT", "10": "10"} {
		task := &api.Task{ID: "t1", Spec: api.TaskSpec{Container: &api.ContainerSpec{Image: "app:1", StopSignal: in}}}
		cfg, _, err := e.containerConfig(task)
		if err != nil || cfg.StopSignal != want {
			t.Errorf("stop signal %q: config has %q (%v), want %q", in, cfg.StopSignal, err, want)
		}
	}
}
