package stack

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

func load(t *testing.T, name, yml string) (*Stack, []Warning, error) {
	t.Helper()
	dir := t.TempDir()
	if yml == "" {
		b, err := os.ReadFile("testdata/full.yml")
		if err != nil {
			t.Fatal(err)
		}
		yml, dir = string(b), "testdata"
	}
	p, w, err := Load(context.Background(), Input{Name: name, Files: []File{{Name: filepath.Join(dir, "compose.yml"), Content: []byte(yml)}}, Env: map[string]string{"TOKEN": "t0k"}})
	if err != nil {
		return nil, w, err
	}
	st, err := Convert(p, name, nil)
	return st, w, err
}

func service(t *testing.T, st *Stack, name string) api.ServiceSpec {
	t.Helper()
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %s in %v", name, st.Services)
	return api.ServiceSpec{}
}

// testdata/full.yml: every mapped field, Docker's names and labels, and a
// warning for each field Apiary cannot honour.
func TestConvertFull(t *testing.T) {
	st, warnings, err := load(t, "demo", "")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, w := range warnings {
		paths = append(paths, w.Path)
	}
	if want := []string{"services.agent.privileged", "services.web.hostname", "services.web.stop_signal"}; !slices.Equal(paths, want) {
		t.Errorf("warnings %v, want %v", paths, want)
	}
	var nets []string
	for _, n := range st.Networks {
		nets = append(nets, n.Name)
		if n.Labels[LabelNamespace] != "demo" || n.Driver != api.DriverOverlay {
			t.Errorf("network %s: labels %v, driver %q", n.Name, n.Labels, n.Driver)
		}
	}
	// outside is external and used by no service: neither made nor checked.
	if !slices.Equal(nets, []string{"demo_back", "demo_default"}) || len(st.ExternalNetworks) != 0 {
		t.Errorf("networks %v, external %v", nets, st.ExternalNetworks)
	}
	if len(st.Secrets) != 1 || st.Secrets[0].Name != "demo_pw" || string(st.Secrets[0].Data) != "s3cret" || !slices.Equal(st.ExternalSecrets, []string{"shared-pw"}) {
		t.Errorf("secrets %+v, external %v", st.Secrets, st.ExternalSecrets)
	}
	if len(st.Configs) != 1 || st.Configs[0].Name != "demo_app" || string(st.Configs[0].Data) != "k=v\n" {
		t.Errorf("configs %+v", st.Configs)
	}

	web := service(t, st, "demo_web")
	c := web.TaskTemplate.Container
	grace := 20 * time.Second
	wantC := &api.ContainerSpec{Image: "nginx:1.27", Command: []string{"/bin/web"}, Args: []string{"-v", "2"},
		Env: []string{"FROM_FILE=1", "SHARED=inline"}, Dir: "/srv", User: "1000", StopGracePeriod: &grace,
		Labels: map[string]string{"tier": "front", LabelNamespace: "demo"}}
	if !reflect.DeepEqual(c, wantC) {
		t.Errorf("container\n got %+v\nwant %+v", c, wantC)
	}
	if web.Labels[LabelImage] != "nginx:1.27" || web.Labels[LabelNamespace] != "demo" || web.Labels["owner"] != "team" {
		t.Errorf("service labels %v", web.Labels)
	}
	if web.Mode.Replicated == nil || web.Mode.Replicated.Replicas != 3 {
		t.Errorf("mode %+v", web.Mode)
	}
	u := web.UpdateConfig
	if u == nil || u.Parallelism != 2 || u.Delay != time.Second || u.Order != api.UpdateOrderStartFirst || u.FailureAction != api.UpdateFailureActionRollback || u.Monitor != 5*time.Second {
		t.Errorf("update config %+v", u)
	}
	if r := web.RollbackConfig; r == nil || r.Parallelism != 1 {
		t.Errorf("rollback config %+v", r)
	}
	delay := 2 * time.Second
	if rp := web.TaskTemplate.RestartPolicy; !reflect.DeepEqual(rp, &api.RestartPolicy{Condition: "on-failure", Delay: &delay, MaxAttempts: 4, Window: 30 * time.Second}) {
		t.Errorf("restart policy %+v", rp)
	}
	wantPl := &api.Placement{Constraints: []string{"node.role == worker"}, MaxReplicas: 2,
		Preferences: []api.PlacementPreference{{Spread: &api.SpreadOver{SpreadDescriptor: "node.labels.zone"}}}}
	if !reflect.DeepEqual(web.TaskTemplate.Placement, wantPl) {
		t.Errorf("placement %+v", web.TaskTemplate.Placement)
	}
	res := web.TaskTemplate.Resources
	if res == nil || res.Limits.NanoCPUs != 5e8 || res.Limits.MemoryBytes != 64<<20 || res.Reservations.NanoCPUs != 2.5e8 ||
		len(res.Reservations.GenericResources) != 1 || res.Reservations.GenericResources[0].DiscreteResourceSpec.Kind != "gpu" {
		t.Errorf("resources %+v", res)
	}
	wantPorts := []api.PortConfig{{Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress"}, {Protocol: "tcp", TargetPort: 443, PublishedPort: 8443, PublishMode: "host"}}
	if e := web.EndpointSpec; e == nil || e.Mode != api.ResolutionModeVIP || !reflect.DeepEqual(e.Ports, wantPorts) {
		t.Errorf("endpoint %+v", e)
	}
	if n := web.TaskTemplate.Networks; len(n) != 1 || n[0].Target != "demo_back" || !slices.Equal(n[0].Aliases, []string{"web", "www"}) {
		t.Errorf("networks %+v", n)
	}
	sec := web.TaskTemplate.Secrets
	if len(sec) != 2 || sec[0].SecretName != "demo_pw" || sec[0].File.Name != "pw" || sec[0].File.Mode != 0o444 ||
		sec[1].SecretName != "shared-pw" || sec[1].File.Name != "ext.txt" || sec[1].File.Mode != 0o400 {
		t.Errorf("secrets %+v %+v", sec[0].File, sec[len(sec)-1].File)
	}
	if cf := web.TaskTemplate.Configs; len(cf) != 1 || cf[0].ConfigName != "demo_app" || cf[0].File.Name != "etc/app.conf" {
		t.Errorf("configs %+v", cf)
	}
	wantHC := &api.HealthConfig{Test: []string{"CMD", "/bin/check"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, Retries: 3, StartPeriod: time.Second}
	if !reflect.DeepEqual(web.TaskTemplate.HealthCheck, wantHC) {
		t.Errorf("healthcheck %+v", web.TaskTemplate.HealthCheck)
	}

	cron := service(t, st, "demo_cron")
	if j := cron.Mode.ReplicatedJob; j == nil || j.TotalCompletions != 2 || j.MaxConcurrent != 2 {
		t.Errorf("cron mode %+v", cron.Mode)
	}
	if rp := cron.TaskTemplate.RestartPolicy; rp == nil || rp.Condition != "on-failure" || rp.MaxAttempts != 3 {
		t.Errorf("cron restart %+v", rp)
	}
	agent := service(t, st, "demo_agent")
	if agent.Mode.Global == nil || agent.TaskTemplate.Networks[0].Target != "demo_default" {
		t.Errorf("agent %+v", agent)
	}
}

// Bad files are errors naming the service and field; nothing is made.
func TestConvertErrors(t *testing.T) {
	for name, tc := range map[string]struct{ stack, yml, want string }{
		"bad stack name":     {"Demo!", "services: {a: {image: x}}", "stack name"},
		"no image":           {"s", "services: {a: {command: [x]}}", "neither an image"},
		"bad mode":           {"s", "services: {a: {image: x, deploy: {mode: sometimes}}}", "mode"},
		"replicas on global": {"s", "services: {a: {image: x, deploy: {mode: global, replicas: 2}}}", "services.a.deploy.replicas"},
		"published range":    {"s", "services: {a: {image: x, ports: [{target: 80, published: \"8000-8001\"}]}}", "services.a.ports[0].published"},
		"bad restart":        {"s", "services: {a: {image: x, restart: sometimes}}", "restart"},
		"env secret unset":   {"s", "services: {a: {image: x, secrets: [k]}}\nsecrets: {k: {environment: NOPE}}", "secrets.k.environment"},
		"missing file":       {"s", "services: {a: {image: x, configs: [k]}}\nconfigs: {k: {file: ./nope}}", "configs.k.file"},
		"endpoint mode":      {"s", "services: {a: {image: x, deploy: {endpoint_mode: magic}}}", "endpoint_mode"},
	} {
		_, _, err := load(t, tc.stack, tc.yml)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, tc.want)
		}
	}
	// An environment source and inline content are read.
	st, _, err := load(t, "s", "services: {a: {image: x, secrets: [k], configs: [c]}}\nsecrets: {k: {environment: TOKEN}}\nconfigs: {c: {content: hello}}")
	if err != nil || string(st.Secrets[0].Data) != "t0k" || string(st.Configs[0].Data) != "hello" {
		t.Errorf("environment and content sources: %+v, %v", st, err)
	}
	big := make([]byte, MaxFileBytes+1)
	if _, _, err := Load(context.Background(), Input{Name: "s", Files: []File{{Name: "c.yml", Content: big}}}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversize file: %v", err)
	}
}
