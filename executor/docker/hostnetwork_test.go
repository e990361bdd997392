package docker_test

import (
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
)

// On the host data path a container shares the host's network: it sees the
// host's interfaces, and the environment the agent put in its spec.
func TestHostNetwork(t *testing.T) {
	t.Parallel()
	_, cfg := newExecutor(t)
	cfg.HostNetwork = true
	cfg.ClusterID += "-hostnet"
	e := newExecutorWith(t, cfg)
	before := upInterfaces(t)
	task := appTask(imageV1, "cat", "/proc/net/dev")
	task.Spec.Container.Env = []string{"APIARY_HOST=127.0.0.1", "PORT=31000"}
	c := start(t, e, task)
	st, err := c.Wait(ctxFor(t, 30*time.Second))
	must(t, "Wait", err)
	if st.ExitCode != 0 {
		t.Fatalf("cat /proc/net/dev: %+v", st)
	}
	insp := inspect(t, containerID(t, c))
	if insp.HostConfig.NetworkMode != "host" {
		t.Errorf("HostConfig.NetworkMode = %q, want host", insp.HostConfig.NetworkMode)
	}
	for _, kv := range task.Spec.Container.Env {
		if !slices.Contains(insp.Config.Env, kv) {
			t.Errorf("container env %q lacks %q", insp.Config.Env, kv)
		}
	}
	rc, err := c.(executor.LogReader).Logs(ctxFor(t, 10*time.Second), executor.LogOptions{})
	must(t, "Logs", err)
	out, err := io.ReadAll(rc)
	rc.Close()
	must(t, "read logs", err)
	// Every interface of the host is the container's (those up before and
	// after it ran: other programs on the machine make and remove some
	// meanwhile); a container of its own network namespace has only lo and
	// eth0.
	after := upInterfaces(t)
	var missing []string
	for _, name := range before {
		if slices.Contains(after, name) && !strings.Contains(string(out), " "+name+":") && !strings.Contains(string(out), "\n"+name+":") {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the container does not see the host's interfaces %q; its /proc/net/dev:\n%s", missing, out)
	}

	// Without HostNetwork, the default, the engine's network.
	e2, _ := newExecutor(t)
	c = start(t, e2, appTask(imageV1, "exit", "0"))
	if m := inspect(t, containerID(t, c)).HostConfig.NetworkMode; m == "host" {
		t.Errorf("HostConfig.NetworkMode = host without Config.HostNetwork")
	}
}

// upInterfaces names the host's interfaces that are up.
func upInterfaces(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	must(t, "host interfaces", err)
	var names []string
	for _, i := range ifs {
		if i.Flags&net.FlagUp != 0 {
			names = append(names, i.Name)
		}
	}
	return names
}
