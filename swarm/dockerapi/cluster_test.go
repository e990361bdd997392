package dockerapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	docker "github.com/docker/docker/client"

	"github.com/apiary-io/apiary/swarm/dockerapi"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// apiServer serves the Docker API of member m of c over HTTP on loopback.
type apiServer struct {
	t   *testing.T
	url string
	cli *docker.Client
}

func serve(t *testing.T, c *swarmtest.Cluster, m *swarmtest.Member) *apiServer {
	t.Helper()
	cfg := dockerapi.DefaultConfig()
	cfg.Backend = c.Client(m)
	cfg.EventsPoll = 50 * time.Millisecond
	cfg.Self = func() dockerapi.Self {
		self := dockerapi.Self{Hostname: m.Name, Addr: m.Addr, Executor: "fake"}
		if n := m.Node; n != nil {
			self.NodeID, self.Manager = n.NodeID(), n.Manager() != nil
		}
		return self
	}
	srv, err := dockerapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	cli, err := docker.NewClientWithOpts(docker.WithHost("tcp://"+strings.TrimPrefix(hs.URL, "http://")), docker.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return &apiServer{t: t, url: hs.URL, cli: cli}
}

// raw makes a request and returns the status and Docker's error message
// (or the body).
func (a *apiServer) raw(method, path, body string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Message string }
	if resp.StatusCode >= 400 && json.Unmarshal(b, &e) == nil {
		return resp.StatusCode, e.Message
	}
	return resp.StatusCode, string(b)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or a minute passed.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func replicas(n uint64) swarm.ServiceMode {
	return swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}}
}

// The Docker Go client drives a real cluster (one manager, two workers,
// fake executors) through the API: the calls `docker` makes for node,
// service, task, network, secret and config commands, and a read-modify-
// write that loses no field Apiary does not map.
func TestDockerClientAgainstCluster(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 2})
	a := serve(t, c, c.Members[0])
	ctx, cli := ctxT(t), a.cli

	ping, err := cli.Ping(ctx)
	if err != nil || ping.APIVersion != dockerapi.APIVersion || ping.SwarmStatus == nil || !ping.SwarmStatus.ControlAvailable {
		t.Fatalf("ping = %+v, %v; want API %s, a manager", ping, err, dockerapi.APIVersion)
	}
	info, err := cli.Info(ctx)
	if cli.ClientVersion() != dockerapi.APIVersion {
		t.Errorf("negotiated %s, want %s", cli.ClientVersion(), dockerapi.APIVersion)
	}
	if err != nil || info.Swarm.NodeID != c.Members[0].Node.NodeID() || !info.Swarm.ControlAvailable ||
		info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || info.Swarm.Nodes != 3 || info.Swarm.Managers != 1 || info.Swarm.Cluster == nil {
		t.Fatalf("info.Swarm = %+v, %v", info.Swarm, err)
	}
	sw, err := cli.SwarmInspect(ctx)
	if err != nil || !strings.HasPrefix(sw.JoinTokens.Worker, "APTKN-") {
		t.Fatalf("swarm inspect = %+v, %v", sw, err)
	}
	if _, err := cli.SwarmInit(ctx, swarm.InitRequest{ListenAddr: "0.0.0.0:2377"}); err == nil || !strings.Contains(err.Error(), "already part of a swarm") {
		t.Errorf("swarm init on a node in a swarm: %v", err)
	}

	// Nodes: list with filters, inspect by hostname, update at a version.
	nodes, err := cli.NodeList(ctx, swarm.NodeListOptions{Filters: filters.NewArgs(filters.Arg("role", "worker"))})
	if err != nil || len(nodes) != 2 {
		t.Fatalf("node ls -f role=worker = %d nodes, %v", len(nodes), err)
	}
	n, _, err := cli.NodeInspectWithRaw(ctx, "worker-1")
	if err != nil || n.Description.Hostname != "worker-1" {
		t.Fatalf("node inspect worker-1 = %+v, %v", n, err)
	}
	spec := n.Spec
	spec.Labels = map[string]string{"zone": "a"}
	if err := cli.NodeUpdate(ctx, n.ID, n.Version, spec); err != nil {
		t.Fatalf("node update: %v", err)
	}
	if err := cli.NodeUpdate(ctx, n.ID, n.Version, spec); err == nil || !strings.Contains(err.Error(), "out of sequence") {
		t.Errorf("node update at an old version: %v, want out of sequence", err)
	}
	if nodes, _ := cli.NodeList(ctx, swarm.NodeListOptions{Filters: filters.NewArgs(filters.Arg("node.label", "zone=a"))}); len(nodes) != 1 || nodes[0].ID != n.ID {
		t.Errorf("node ls -f node.label=zone=a = %+v", nodes)
	}

	// Services: create with a field Apiary keeps but does not map.
	grace := 3 * time.Second
	web := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "web", Labels: map[string]string{"tier": "front"}},
		Mode:        replicas(2),
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: "nginx:1.27", Hostname: "kept", StopGracePeriod: &grace},
			LogDriver:     &swarm.Driver{Name: "json-file", Options: map[string]string{"max-size": "1m"}},
		},
	}
	created, err := cli.ServiceCreate(ctx, web, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatalf("service create: %v", err)
	}
	waitFor(t, "2 running tasks", func() (bool, string) {
		tasks, err := cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", "web"), filters.Arg("desired-state", "running"))})
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, tk := range tasks {
			if tk.Status.State == swarm.TaskStateRunning {
				running++
			}
		}
		return running == 2, "tasks running: " + string(rune('0'+running))
	})
	list, err := cli.ServiceList(ctx, swarm.ServiceListOptions{Status: true, Filters: filters.NewArgs(filters.Arg("label", "tier=front"))})
	if err != nil || len(list) != 1 || list[0].ServiceStatus == nil || list[0].ServiceStatus.DesiredTasks != 2 {
		t.Fatalf("service ls --status = %+v, %v", list, err)
	}
	svc, _, err := cli.ServiceInspectWithRaw(ctx, created.ID, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.TaskTemplate.LogDriver == nil || svc.Spec.TaskTemplate.ContainerSpec.Hostname != "kept" || svc.Spec.TaskTemplate.RestartPolicy != nil {
		t.Errorf("inspect lost what the client sent or added defaults: %+v", svc.Spec.TaskTemplate)
	}
	full, _, err := cli.ServiceInspectWithRaw(ctx, "web", swarm.ServiceInspectOptions{InsertDefaults: true})
	if err != nil || full.Spec.TaskTemplate.RestartPolicy == nil || full.Spec.UpdateConfig == nil || full.Spec.TaskTemplate.LogDriver == nil {
		t.Errorf("inspect --insertDefaults = %+v, %v", full.Spec, err)
	}

	// The CLI's scale: read, change the replicas, write at the version.
	svc.Spec.Mode = replicas(3)
	if _, err := cli.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err != nil {
		t.Fatalf("service update: %v", err)
	}
	if _, err := cli.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{}); err == nil || !strings.Contains(err.Error(), "out of sequence") {
		t.Errorf("update at an old version: %v", err)
	}
	after, _, err := cli.ServiceInspectWithRaw(ctx, svc.ID, swarm.ServiceInspectOptions{})
	if err != nil || *after.Spec.Mode.Replicated.Replicas != 3 || after.Spec.TaskTemplate.LogDriver == nil || after.Spec.TaskTemplate.ContainerSpec.Hostname != "kept" {
		t.Fatalf("after update: %+v, %v", after.Spec, err)
	}
	if after.Version.Index <= svc.Version.Index || after.PreviousSpec == nil {
		t.Errorf("version %d -> %d, previous spec %v", svc.Version.Index, after.Version.Index, after.PreviousSpec)
	}
	// Changed another way (the control API, as apiaryctl does): the
	// mapped field is ours, the others still the client's.
	if _, err := c.Client(c.Members[0]).ScaleService(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	after, _, _ = cli.ServiceInspectWithRaw(ctx, svc.ID, swarm.ServiceInspectOptions{})
	if *after.Spec.Mode.Replicated.Replicas != 1 || after.Spec.TaskTemplate.LogDriver == nil {
		t.Errorf("after a scale through the control API: replicas %d, log driver %v", *after.Spec.Mode.Replicated.Replicas, after.Spec.TaskTemplate.LogDriver)
	}
	waitFor(t, "the update to complete", func() (bool, string) {
		s, _, err := cli.ServiceInspectWithRaw(ctx, svc.ID, swarm.ServiceInspectOptions{})
		if err != nil {
			return false, err.Error()
		}
		if s.UpdateStatus == nil {
			return true, ""
		}
		return s.UpdateStatus.State == swarm.UpdateStateCompleted, "update status " + string(s.UpdateStatus.State)
	})
	// Rollback, as `docker service rollback` sends it.
	after, _, _ = cli.ServiceInspectWithRaw(ctx, svc.ID, swarm.ServiceInspectOptions{})
	if _, err := cli.ServiceUpdate(ctx, svc.ID, after.Version, after.Spec, swarm.ServiceUpdateOptions{Rollback: "previous"}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	after, _, _ = cli.ServiceInspectWithRaw(ctx, svc.ID, swarm.ServiceInspectOptions{})
	if *after.Spec.Mode.Replicated.Replicas != 3 {
		t.Errorf("after rollback: replicas %d, want 3", *after.Spec.Mode.Replicated.Replicas)
	}

	// Tasks: inspect one; _up-to-date as the CLI's progress asks.
	tasks, err := cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID), filters.Arg("_up-to-date", "true"))})
	if err != nil || len(tasks) == 0 {
		t.Fatalf("task ls: %d, %v", len(tasks), err)
	}
	tk, _, err := cli.TaskInspectWithRaw(ctx, tasks[0].ID)
	if err != nil || tk.ServiceID != svc.ID {
		t.Errorf("task inspect = %+v, %v", tk, err)
	}
	logs, err := cli.ServiceLogs(ctx, svc.ID, container.LogsOptions{ShowStdout: true, Details: true})
	if err != nil {
		t.Errorf("service logs: %v", err)
	} else {
		logs.Close()
	}

	// Networks, secrets, configs.
	nw, err := cli.NetworkCreate(ctx, "backend", network.CreateOptions{Driver: "overlay", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatalf("network create: %v", err)
	}
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", "back"))})
	if err != nil || len(nets) != 1 || nets[0].ID != nw.ID || nets[0].Scope != "swarm" || len(nets[0].IPAM.Config) != 1 {
		t.Errorf("network ls = %+v, %v", nets, err)
	}
	if _, err := cli.NetworkCreate(ctx, "local", network.CreateOptions{Driver: "bridge"}); err == nil {
		t.Error("a bridge network was created")
	}
	sec, err := cli.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: "pw"}, Data: []byte("hunter2")})
	if err != nil {
		t.Fatalf("secret create: %v", err)
	}
	secs, err := cli.SecretList(ctx, swarm.SecretListOptions{Filters: filters.NewArgs(filters.Arg("names", "pw"))})
	if err != nil || len(secs) != 1 || secs[0].ID != sec.ID || secs[0].Spec.Data != nil {
		t.Errorf("secret ls = %+v, %v", secs, err)
	}
	cfgc, err := cli.ConfigCreate(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "conf"}, Data: []byte("x=1")})
	if err != nil {
		t.Fatalf("config create: %v", err)
	}
	if got, _, err := cli.ConfigInspectWithRaw(ctx, "conf"); err != nil || got.ID != cfgc.ID || string(got.Spec.Data) != "x=1" {
		t.Errorf("config inspect = %+v, %v", got, err)
	}
	// A service using all three; the secret cannot go while it runs.
	api := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "api"}, Mode: replicas(1),
		TaskTemplate: swarm.TaskSpec{Networks: []swarm.NetworkAttachmentConfig{{Target: nw.ID}},
			ContainerSpec: &swarm.ContainerSpec{Image: "busybox",
				Secrets: []*swarm.SecretReference{{SecretID: sec.ID, SecretName: "pw", File: &swarm.SecretReferenceFileTarget{Name: "pw", UID: "0", GID: "0", Mode: 0o400}}},
				Configs: []*swarm.ConfigReference{{ConfigID: cfgc.ID, ConfigName: "conf", File: &swarm.ConfigReferenceFileTarget{Name: "/conf", UID: "0", GID: "0", Mode: 0o444}}}}}}
	if _, err := cli.ServiceCreate(ctx, api, swarm.ServiceCreateOptions{}); err != nil {
		t.Fatalf("service create with network, secret, config: %v", err)
	}
	if err := cli.SecretRemove(ctx, sec.ID); err == nil {
		t.Error("a secret in use was removed")
	}
	if err := cli.ServiceRemove(ctx, "api"); err != nil {
		t.Fatal(err)
	}
	for _, rm := range []func() error{
		func() error { return cli.SecretRemove(ctx, sec.ID) },
		func() error { return cli.ConfigRemove(ctx, cfgc.ID) },
		func() error { return cli.NetworkRemove(ctx, nw.ID) },
		func() error { return cli.ServiceRemove(ctx, "web") },
	} {
		if err := rm(); err != nil {
			t.Errorf("remove: %v", err)
		}
	}
	if _, _, err := cli.ServiceInspectWithRaw(ctx, "web", swarm.ServiceInspectOptions{}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("inspect of a removed service: %v", err)
	}
}

// Bad input gets Docker's errors and changes nothing; endpoints outside
// the swarm subset answer as an engine with no registry and no
// containers would; a worker answers 503 with Docker's message.
func TestDockerAPIErrors(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1})
	a := serve(t, c, c.Members[0])
	ctx := ctxT(t)
	v := "/v" + dockerapi.APIVersion

	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed JSON", "POST", v + "/services/create", `{"Name": "x",`, 400, "invalid JSON"},
		{"unknown field", "POST", v + "/services/create", `{"Name": "x", "Bogus": 1}`, 400, `unknown field "Bogus"`},
		{"trailing data", "POST", v + "/secrets/create", `{"Name": "x", "Data": "eA=="} {}`, 400, "data after the object"},
		{"invalid spec", "POST", v + "/services/create", `{"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "Bad Image"}}}`, 400, "image"},
		{"oversized body", "POST", v + "/secrets/create", `{"Name": "big", "Data": "` + strings.Repeat("A", 2<<20) + `"}`, 413, "larger than"},
		{"bad version", "POST", v + "/nodes/x/update?version=abc", `{}`, 400, "invalid node version"},
		{"unknown filter", "GET", v + `/services?filters={"bogus":{"x":true}}`, "", 400, "invalid filter 'bogus'"},
		{"too many filter values", "GET", v + `/services?filters=` + manyNames(101), "", 400, "too many filter values"},
		{"too new", "GET", "/v9.99/info", "", 400, "is too new"},
		{"too old", "GET", "/v1.12/info", "", 400, "is too old"},
		{"unknown service", "GET", v + "/services/nope", "", 404, "does not exist"},
		{"distribution", "GET", v + "/distribution/nginx:latest/json", "", 404, "no registry"},
		{"unknown path", "GET", v + "/images/json", "", 404, "page not found"},
		{"tail bound", "GET", v + "/services/nope/logs?stdout=1&tail=1000000", "", 400, "at most"},
		{"unlock key", "GET", v + "/swarm/unlockkey", "", 404, "no unlock key is set"},
	} {
		code, msg := a.raw(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, msg, tc.code, tc.msg)
		}
	}
	if code, body := a.raw("GET", v+"/containers/json", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("containers/json = %d %q", code, body)
	}
	if code, _ := a.raw("HEAD", "/_ping", ""); code != 200 {
		t.Errorf("HEAD /_ping = %d", code)
	}
	// Nothing of the refused writes exists.
	if svcs, err := a.cli.ServiceList(ctx, swarm.ServiceListOptions{}); err != nil || len(svcs) != 0 {
		t.Errorf("services after refused creates: %d, %v", len(svcs), err)
	}
	if secs, err := a.cli.SecretList(ctx, swarm.SecretListOptions{}); err != nil || len(secs) != 0 {
		t.Errorf("secrets after refused creates: %d, %v", len(secs), err)
	}

	// The worker.
	w := serve(t, c, c.Members[1])
	ping, err := w.cli.Ping(ctx)
	if err != nil || ping.SwarmStatus == nil || ping.SwarmStatus.ControlAvailable || ping.SwarmStatus.NodeState != swarm.LocalNodeStateActive {
		t.Errorf("worker ping = %+v, %v", ping.SwarmStatus, err)
	}
	for _, path := range []string{"/nodes", "/services", "/tasks", "/secrets", "/configs", "/networks", "/swarm"} {
		code, msg := w.raw("GET", v+path, "")
		if code != 503 || !strings.Contains(msg, "This node is not a swarm manager") {
			t.Errorf("worker GET %s = %d %q, want 503", path, code, msg)
		}
	}
	info, err := w.cli.Info(ctx)
	if err != nil || info.Swarm.ControlAvailable || info.Swarm.NodeID != c.Members[1].Node.NodeID() {
		t.Errorf("worker info.Swarm = %+v, %v", info.Swarm, err)
	}
}

func manyNames(n int) string {
	f := filters.NewArgs()
	for i := range n {
		f.Add("name", "s"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	b, _ := filters.ToJSON(f)
	return urlQueryEscape(b)
}

func urlQueryEscape(s string) string {
	var b bytes.Buffer
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return b.String()
}
