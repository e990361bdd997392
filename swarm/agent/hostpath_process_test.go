//go:build unix

package agent_test

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/process"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
)

// A process task sees the host data path's environment: a real process
// executor runs a program that prints its environment.
func TestProcessTaskEnvironment(t *testing.T) {
	ex, err := process.New(process.Config{DataDir: t.TempDir(), Logger: testutil.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Close() })
	d := newFakeDispatcher()
	a, _ := newHostNode(t, d, ex, agent.Config{HostAddr: "127.0.0.1", DNSAddr: "127.0.0.1:53"})
	task := task("t1")
	task.ServiceAnnotations.Name = "web"
	task.Spec.Process = &api.ProcessSpec{Command: []string{"sh", "-c", "env; echo end-of-env; exit 0"}, Env: []string{"APP=1"}}
	task.Endpoint = &api.Endpoint{Ports: []api.PortConfig{{Protocol: "tcp", TargetPort: 8080, PublishedPort: 30080, PublishMode: api.PublishModeIngress}}}
	d.assign(task)
	st := d.waitState(t, "t1", api.TaskStateComplete)
	if len(st.PortStatus) != 1 || st.PortStatus[0].PublishedPort == 0 {
		t.Fatalf("PortStatus = %+v, want one host port", st.PortStatus)
	}
	port := strconv.Itoa(int(st.PortStatus[0].PublishedPort))
	var out string
	testutil.EventuallyWhy(t, 10*time.Second, "the task's output", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rc, err := a.Logs(ctx, "t1", executor.LogOptions{})
		if err != nil {
			return false, err.Error()
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		out = string(b)
		return err == nil && strings.Contains(out, "end-of-env"), out
	})
	env := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for k, want := range map[string]string{
		"APP":                 "1",
		"APIARY_HOST":         "127.0.0.1",
		"APIARY_DNS":          "127.0.0.1:53",
		"APIARY_PORT_8080":    port,
		"PORT":                port,
		"APIARY_TASK_ID":      "t1",
		"APIARY_TASK_NAME":    "svc.1",
		"APIARY_SERVICE_NAME": "web",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q (output:\n%s)", k, env[k], want, out)
		}
	}
}
