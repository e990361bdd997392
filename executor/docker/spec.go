package docker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// ContainerName is the name of a task's container:
// apiary.<service>.<slot or node ID>.<task ID>, with characters Docker
// does not allow in names replaced by '-'.
func ContainerName(t *api.Task) string {
	svc := t.ServiceAnnotations.Name
	if svc == "" {
		svc = "task"
	}
	mid := t.NodeID
	if t.Slot != 0 {
		mid = strconv.FormatUint(t.Slot, 10)
	}
	if mid == "" {
		mid = "0"
	}
	return "apiary." + nameSafe(svc) + "." + nameSafe(mid) + "." + nameSafe(t.ID)
}

// nameSafe keeps the characters Docker allows in container names
// ([a-zA-Z0-9_.-]) and replaces the others.
func nameSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, s)
}

// nodeOf is the node a task runs on: its assignment, or the executor's.
func (e *Executor) nodeOf(t *api.Task) string {
	if t.NodeID != "" {
		return t.NodeID
	}
	return e.cfg.NodeID
}

// containerLabels are the spec's labels, then the executor's, which win.
func (e *Executor) containerLabels(t *api.Task) (map[string]string, error) {
	l := map[string]string{}
	for k, v := range t.Spec.Container.Labels {
		l[k] = v
	}
	j, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("task %s: encode for its label: %w", t.ID, err)
	}
	l[LabelCluster] = e.cfg.ClusterID
	l[LabelServiceID] = t.ServiceID
	l[LabelServiceName] = t.ServiceAnnotations.Name
	l[LabelTaskID] = t.ID
	l[LabelTaskSlot] = strconv.FormatUint(t.Slot, 10)
	l[LabelNodeID] = e.nodeOf(t)
	l[LabelTask] = string(j)
	return l, nil
}

// environ is the spec's Env, then the APIARY_ variables, which replace any
// of the spec's with the same name.
func (e *Executor) environ(t *api.Task) []string {
	ours := api.TaskIdentityEnv(t, e.nodeOf(t))
	reserved := map[string]bool{}
	for _, kv := range ours {
		k, _, _ := strings.Cut(kv, "=")
		reserved[k] = true
	}
	var env []string
	for _, kv := range t.Spec.Container.Env {
		k, _, _ := strings.Cut(kv, "=")
		if !reserved[k] {
			env = append(env, kv)
		}
	}
	return append(env, ours...)
}

// stopTimeout is the grace period in the engine's whole seconds, rounded up.
func stopTimeout(grace time.Duration) int {
	if grace <= 0 {
		return 0
	}
	return int((grace + time.Second - 1) / time.Second)
}

// healthConfig maps a task's health check to the engine's. HTTP and TCP
// checks run in the agent for processes; the engine runs its checks inside
// the container, so they cannot be mapped.
func healthConfig(h *api.HealthConfig) (*container.HealthConfig, error) {
	if h == nil {
		return nil, nil
	}
	if len(h.Test) > 0 {
		switch h.Test[0] {
		case "NONE", "CMD", "CMD-SHELL":
		case "HTTP", "TCP":
			return nil, fmt.Errorf("health check %q: %s checks are not supported by the Docker executor (the engine runs checks inside the container): use [\"CMD\", ...] with a program in the image, such as curl or the service's own binary", h.Test, h.Test[0])
		default:
			return nil, fmt.Errorf("health check %q: unknown test type %q", h.Test, h.Test[0])
		}
	}
	return &container.HealthConfig{
		Test:        append([]string(nil), h.Test...),
		Interval:    h.Interval,
		Timeout:     h.Timeout,
		StartPeriod: h.StartPeriod,
		Retries:     h.Retries,
	}, nil
}

// mounts maps the spec's mounts.
func mounts(ms []api.Mount) ([]mount.Mount, error) {
	var out []mount.Mount
	for i, m := range ms {
		var typ mount.Type
		switch m.Type {
		case api.MountTypeBind:
			typ = mount.TypeBind
		case api.MountTypeVolume:
			typ = mount.TypeVolume
		case api.MountTypeTmpfs:
			typ = mount.TypeTmpfs
		default:
			return nil, fmt.Errorf("mounts[%d]: unknown type %q", i, m.Type)
		}
		out = append(out, mount.Mount{Type: typ, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return out, nil
}

// containerConfig is what ContainerCreate needs for the task.
func (e *Executor) containerConfig(t *api.Task) (*container.Config, *container.HostConfig, error) {
	spec := t.Spec.Container
	if spec.Image == "" {
		return nil, nil, fmt.Errorf("task %s: container spec has no image", t.ID)
	}
	labels, err := e.containerLabels(t)
	if err != nil {
		return nil, nil, err
	}
	health, err := healthConfig(t.Spec.HealthCheck)
	if err != nil {
		return nil, nil, fmt.Errorf("task %s: %w", t.ID, err)
	}
	ms, err := mounts(spec.Mounts)
	if err != nil {
		return nil, nil, fmt.Errorf("task %s: %w", t.ID, err)
	}
	stop := stopTimeout(t.Spec.StopGracePeriod())
	cfg := &container.Config{
		Image:       spec.Image,
		Env:         e.environ(t),
		WorkingDir:  spec.Dir,
		User:        spec.User,
		Labels:      labels,
		Healthcheck: health,
		StopTimeout: &stop,
	}
	if spec.StopSignal != "" {
		// Docker stops the container with it (ContainerStop without a
		// signal of its own), and SIGKILL after the grace period.
		name, n, err := api.ParseStopSignal(spec.StopSignal)
		if err != nil {
			return nil, nil, fmt.Errorf("task %s: stop signal: %w", t.ID, err)
		}
		if name == "" {
			name = strconv.Itoa(n)
		}
		cfg.StopSignal = name
	}
	if len(spec.Command) > 0 {
		cfg.Entrypoint = append([]string(nil), spec.Command...)
	}
	if len(spec.Args) > 0 {
		cfg.Cmd = append([]string(nil), spec.Args...)
	}
	host := &container.HostConfig{
		Mounts:        ms,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
	}
	if e.cfg.Init {
		init := true
		host.Init = &init
	}
	if e.cfg.HostNetwork {
		host.NetworkMode = network.NetworkHost
	}
	if r := t.Spec.Resources; r != nil && r.Limits != nil {
		host.NanoCPUs = r.Limits.NanoCPUs
		if m := r.Limits.MemoryBytes; m > 0 {
			host.Memory = m
			host.MemorySwap = m // no swap on top of the limit
		}
	}
	return cfg, host, nil
}

// linuxSignals names the signals an exit code above 128 stands for.
var linuxSignals = map[int]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
	7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
	13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
}

// exitStatus turns the engine's view of an exit into an ExitStatus. The
// engine reports a process killed by a signal with exit code 128+signal.
func exitStatus(code int, oom bool, engineErr string) executor.ExitStatus {
	st := executor.ExitStatus{ExitCode: code, OOMKilled: oom}
	if sig, ok := linuxSignals[code-128]; ok {
		st.Signal = sig
	}
	switch {
	case oom:
		st.Message = fmt.Sprintf("killed by the kernel: out of memory (exit code %d)", code)
	case st.Signal != "":
		st.Message = fmt.Sprintf("killed by %s (exit code %d)", st.Signal, code)
	default:
		st.Message = fmt.Sprintf("exit status %d", code)
	}
	if engineErr != "" {
		st.Message += ": " + engineErr
	}
	return st
}

// goOS maps the engine's OSType to Go's GOOS.
func goOS(s string) string { return strings.ToLower(s) }

// goArch maps the engine's architecture (uname -m style) to Go's GOARCH.
func goArch(s string) string {
	switch strings.ToLower(s) {
	case "x86_64", "x86-64", "amd64":
		return "amd64"
	case "aarch64", "arm64", "armv8", "armv8l":
		return "arm64"
	case "armv7l", "armv7", "armv6l", "armv6", "armhf", "arm":
		return "arm"
	case "i386", "i486", "i586", "i686", "x86", "386":
		return "386"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	case "riscv64":
		return "riscv64"
	case "mips64le", "mips64el":
		return "mips64le"
	case "loongarch64":
		return "loong64"
	}
	return strings.ToLower(s)
}
