//go:build unix

package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stackCompose is a two-service compose v3 file with a network, a secret
// and a config; the image is the example web app's absolute path, run as
// a process.
const stackCompose = `services:
  web:
    image: %[1]s
    deploy:
      replicas: 2
      labels:
        tier: front
    networks:
      back:
        aliases: [www]
    secrets: [pw]
    configs:
      - source: app
        target: /app.conf
  api:
    image: %[1]s
    hostname: api-host
    networks: [back]
networks:
  back: {}
secrets:
  pw:
    file: ./pw.txt
configs:
  app:
    file: ./app.conf
`

// apiaryctl stack deploy of a compose file: the objects under Docker's
// names and labels, so docker stack ls and services through the Engine
// API show what apiaryctl stack ls shows; an unsupported field is
// warned about; a redeploy updates, --prune removes a dropped service;
// docker stack rm removes everything of the stack.
func TestBinariesStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	docker := dockerCLI(t)
	e := &e2e{t: t, bin: build(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	port := 31000 + time.Now().Nanosecond()%1000
	maddr := fmt.Sprintf("127.0.7.3:%d", port)
	e.start("m1", maddr, "init", "--listen-addr", maddr, "--docker-api")
	e.waitFor("the manager to lead", 20*time.Second, func() (bool, string) {
		_, err := e.ctl("m1", "swarm", "join-token", "worker", "-q")
		return err == nil, fmt.Sprint(err)
	})
	dir := t.TempDir()
	for name, data := range map[string]string{"pw.txt": "s3cret", "app.conf": "k=v\n",
		"compose.yml": fmt.Sprintf(stackCompose, filepath.Join(e.bin, "webapp"))} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	compose := filepath.Join(dir, "compose.yml")
	out, err := e.ctl("m1", "stack", "deploy", "-c", compose, "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"warning: services.api.hostname", "Creating network demo_back", "Creating secret demo_pw",
		"Creating config demo_app", "Creating service demo_web", "Creating service demo_api"} {
		if !strings.Contains(out, want) {
			t.Errorf("stack deploy output lacks %q:\n%s", want, out)
		}
	}
	e.waitFor("the stack's tasks to run", 30*time.Second, func() (bool, string) {
		n, err := e.running("m1", "demo_web")
		m, err2 := e.running("m1", "demo_api")
		return err == nil && err2 == nil && n == 2 && m == 1, fmt.Sprintf("web %d api %d: %v %v", n, m, err, err2)
	})
	env := []string{"DOCKER_HOST=unix://" + filepath.Join(e.procs["m1"].dir, "docker.sock")}
	dockerOut := func(args ...string) string {
		t.Helper()
		out, err := dockerRun(t, docker, env, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if out := dockerOut("stack", "ls", "--format", "{{.Name}} {{.Services}}"); out != "demo 2" {
		t.Errorf("docker stack ls: %q, want demo 2", out)
	}
	if out, err := e.ctl("m1", "stack", "ls"); err != nil || !strings.Contains(out, "demo   2") {
		t.Errorf("apiaryctl stack ls: %v\n%s", err, out)
	}
	if out := dockerOut("stack", "services", "demo", "--format", "{{.Name}} {{.Replicas}}"); out != "demo_api 1/1\ndemo_web 2/2" {
		t.Errorf("docker stack services: %q", out)
	}
	if out := dockerOut("stack", "ps", "demo", "--format", "{{.Name}}"); strings.Count(out, "demo_") != 3 {
		t.Errorf("docker stack ps: %q, want 3 tasks", out)
	}
	if out, err := e.ctl("m1", "stack", "ps", "demo"); err != nil || strings.Count(out, "Running") != 6 {
		t.Errorf("apiaryctl stack ps: %v\n%s", err, out)
	}
	// apiaryctl's take docker's --format, -q and --filter, and agree.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stack", "ls", "--format", "{{.Name}} {{.Services}}"}, "demo 2"},
		{[]string{"stack", "services", "demo", "--format", "{{.Name}} {{.Replicas}}"}, "demo_api 1/1\ndemo_web 2/2"},
		{[]string{"stack", "services", "demo", "-f", "name=demo_web", "--format", "{{.Name}}"}, "demo_web"},
		{[]string{"stack", "ps", "demo", "-f", "desired-state=running", "--format", "{{.Name}} {{.CurrentState}}"}, ""},
	} {
		out, err := e.ctl("m1", c.args...)
		out = strings.TrimSpace(out)
		if c.want == "" { // three running tasks, each named after its service
			if err != nil || strings.Count(out, "demo_") != 3 || strings.Count(out, "Running") != 3 {
				t.Errorf("apiaryctl %v: %v\n%s", c.args, err, out)
			}
			continue
		}
		if err != nil || out != c.want {
			t.Errorf("apiaryctl %v: %v, %q, want %q", c.args, err, out, c.want)
		}
	}
	if out, err := e.ctl("m1", "stack", "ps", "demo", "-q"); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 2 {
		t.Errorf("apiaryctl stack ps -q: %v, %q, want 3 IDs", err, out)
	}

	// Redeploy without api, with --prune.
	one := strings.Split(fmt.Sprintf(stackCompose, filepath.Join(e.bin, "webapp")), "  api:")[0] + strings.Split(stackCompose, "networks: [back]\n")[1]
	if err := os.WriteFile(compose, []byte(one), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = e.ctl("m1", "stack", "deploy", "--prune", "-c", compose, "demo")
	if err != nil || !strings.Contains(out, "Removing service demo_api") || !strings.Contains(out, "Updating service demo_web") {
		t.Errorf("redeploy with --prune: %v\n%s", err, out)
	}
	if out, err := e.ctl("m1", "stack", "services", "demo"); err != nil || strings.Contains(out, "demo_api") || !strings.Contains(out, "demo_web") {
		t.Errorf("stack services after prune: %v\n%s", err, out)
	}

	out = dockerOut("stack", "rm", "demo")
	for _, want := range []string{"Removing service demo_web", "Removing secret demo_pw", "Removing config demo_app", "Removing network demo_back"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker stack rm lacks %q:\n%s", want, out)
		}
	}
	e.waitFor("the stack's objects to go", 30*time.Second, func() (bool, string) {
		left := ""
		for _, kind := range []string{"service", "network", "secret", "config"} {
			out, err := e.ctl("m1", kind, "ls")
			if err != nil || strings.Contains(out, "demo_") {
				left += fmt.Sprintf("%s ls: %v %s\n", kind, err, out)
			}
		}
		return left == "", left
	})
	if out, err := e.ctl("m1", "stack", "rm", "demo"); err == nil || !strings.Contains(out, "nothing found in stack: demo") {
		t.Errorf("apiaryctl stack rm of a removed stack: %v\n%s", err, out)
	}
}
