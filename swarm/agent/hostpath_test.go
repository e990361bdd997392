package agent_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/fake"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/agent"
	"github.com/apiary-io/apiary/swarm/api"
)

// newHostNode is a node whose agent has cfg's host data path fields.
func newHostNode(t *testing.T, d *fakeDispatcher, ex executor.Executor, cfg agent.Config) (*agent.Agent, *node) {
	t.Helper()
	cfg.Dispatcher, cfg.Executor, cfg.NodeID = d, ex, d.nodeID
	cfg.Logger, cfg.ReconnectBackoff = testutil.DiscardLogger(), 20*time.Millisecond
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fx, _ := ex.(*fake.Executor)
	n := &node{t: t, d: d, ex: fx, a: a}
	n.start()
	t.Cleanup(func() {
		n.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.ShutdownTasks(ctx)
	})
	return a, n
}

// webTask is a task of service web with an ingress port 80 and a host-mode
// UDP port 53 without a published port.
func webTask(id string) *api.Task {
	t := task(id)
	t.ServiceAnnotations.Name = "web"
	t.Spec.Process.Env = []string{"APP=1", "APIARY_HOST=spec-host", "PORT=9999"}
	t.Endpoint = &api.Endpoint{Ports: []api.PortConfig{
		{Name: "http", Protocol: "tcp", TargetPort: 80, PublishedPort: 30080, PublishMode: api.PublishModeIngress},
		{Protocol: "udp", TargetPort: 53, PublishMode: api.PublishModeHost},
	}}
	return t
}

// envOf is the environment the executor was given for a task.
func envOf(t *testing.T, ex *fake.Executor, id string) []string {
	t.Helper()
	tasks, err := ex.ListTasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if task.ID == id {
			return task.Spec.Process.Env
		}
	}
	t.Fatalf("the executor holds no task %s", id)
	return nil
}

func TestHostPortsReportedAndInTheEnvironment(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	_, n := newHostNode(t, d, ex, agent.Config{Addr: "127.0.0.1:4242", DNSAddr: "127.0.0.1:5353"})
	d.assign(webTask("t1"))
	st := d.waitState(t, "t1", api.TaskStateRunning)
	if len(st.PortStatus) != 2 {
		t.Fatalf("RUNNING report's PortStatus = %+v, want both ports", st.PortStatus)
	}
	http, dns := st.PortStatus[0], st.PortStatus[1]
	if http.TargetPort != 80 || http.Name != "http" || http.PublishMode != api.PublishModeHost || http.PublishedPort == 0 ||
		dns.TargetPort != 53 || dns.Protocol != "udp" || dns.PublishedPort == 0 || dns.PublishedPort == http.PublishedPort {
		t.Errorf("PortStatus = %+v, want distinct host ports for 80/tcp and 53/udp in mode host", st.PortStatus)
	}
	// Every report carries the ports, the first (ACCEPTED) included.
	for _, r := range d.reportsOf("t1") {
		if !slices.Equal(r.PortStatus, st.PortStatus) {
			t.Errorf("%s report's PortStatus = %+v, want %+v", r.State, r.PortStatus, st.PortStatus)
		}
	}
	env := envOf(t, n.ex, "t1")
	want := []string{
		"APP=1", "PORT=9999", // the spec's PORT wins
		"APIARY_HOST=127.0.0.1", // from Addr; the spec's is replaced
		"APIARY_DNS=127.0.0.1:5353",
		fmt.Sprintf("APIARY_PORT_80=%d", http.PublishedPort),
		fmt.Sprintf("APIARY_PORT_53=%d", dns.PublishedPort),
	}
	if !slices.Equal(env, want) {
		t.Errorf("task env = %q, want %q", env, want)
	}

	// The task fails; its successor in the slot gets the same ports, the
	// predecessor's having been released when it ended.
	if err := ex.Kill("t1", 1); err != nil {
		t.Fatal(err)
	}
	if failed := d.waitState(t, "t1", api.TaskStateFailed); !slices.Equal(failed.PortStatus, st.PortStatus) {
		t.Errorf("FAILED report's PortStatus = %+v", failed.PortStatus)
	}
	d.assign(webTask("t2"))
	if st2 := d.waitState(t, "t2", api.TaskStateRunning); !slices.Equal(st2.PortStatus, st.PortStatus) {
		t.Errorf("successor's PortStatus = %+v, want its predecessor's %+v", st2.PortStatus, st.PortStatus)
	}
}

func TestTaskWithATakenHostPortIsRejected(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	d := newFakeDispatcher()
	newHostNode(t, d, fake.New(fake.Config{}), agent.Config{})
	task := task("t1")
	task.Endpoint = &api.Endpoint{Ports: []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: uint32(port), PublishMode: api.PublishModeHost}}}
	d.assign(task)
	st := d.waitState(t, "t1", api.TaskStateRejected)
	if st.Message != "no host ports for the task" || !strings.Contains(st.Err, "host port "+strconv.Itoa(port)) || !strings.Contains(st.Err, "is taken") {
		t.Errorf("REJECTED report = %q: %q, want the taken port named", st.Message, st.Err)
	}
}

func TestTaskWithoutPortsGetsHostAndNoPorts(t *testing.T) {
	d := newFakeDispatcher()
	ex := fake.New(fake.Config{})
	_, n := newHostNode(t, d, ex, agent.Config{HostAddr: "127.0.0.9"})
	d.assign(task("t1"))
	if st := d.waitState(t, "t1", api.TaskStateRunning); st.PortStatus != nil {
		t.Errorf("PortStatus of a task without ports = %+v", st.PortStatus)
	}
	if env := envOf(t, n.ex, "t1"); !slices.Equal(env, []string{"APIARY_HOST=127.0.0.9"}) {
		t.Errorf("env = %q, want APIARY_HOST only (no DNS configured, no ports)", env)
	}
}

func TestHostConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		cfg  agent.Config
		want string
	}{
		{agent.Config{HostAddr: "node-1"}, `HostAddr "node-1": not an IP address`},
		{agent.Config{DNSAddr: "127.0.0.1"}, `DNSAddr "127.0.0.1": want IP:PORT`},
		{agent.Config{HostPortRange: agent.PortRange{First: 40000, Last: 30000}}, "HostPortRange 40000-30000: want 1 <= First <= Last"},
	} {
		tc.cfg.Dispatcher, tc.cfg.Executor = newFakeDispatcher(), fake.New(fake.Config{})
		if _, err := agent.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
