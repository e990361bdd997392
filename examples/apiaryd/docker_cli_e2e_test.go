//go:build unix

package main_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerCLI finds the docker CLI: a missing one skips, but fails under
// CI=true, where the machine is meant to have it.
func dockerCLI(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("docker")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the docker CLI is required under CI=true: %v", err)
		}
		t.Skipf("no docker CLI: %v", err)
	}
	return p
}

// dockerRun runs the docker CLI with env (DOCKER_HOST and friends) and
// its own empty config dir, and returns its combined output.
func dockerRun(t *testing.T, docker string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, args...)
	cmd.Env = append(append(os.Environ(), "DOCKER_CONFIG="+t.TempDir(), "DOCKER_CONTEXT=", "DOCKER_API_VERSION="), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Issue 17 with the real docker CLI against apiaryd (a manager and a
// worker, process executors) over the managers' docker.sock: nodes,
// a service of the example web app given as an absolute path (run as a
// process), listed, inspected, scaled through `update --replicas`,
// removed; a secret and a network; the worker answers 503.
func TestBinariesDockerCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	docker := dockerCLI(t)
	e := &e2e{t: t, bin: build(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	port := 29000 + time.Now().Nanosecond()%1000
	maddr, waddr := fmt.Sprintf("127.0.7.1:%d", port), fmt.Sprintf("127.0.7.2:%d", port)
	tlsAddr := fmt.Sprintf("127.0.7.1:%d", port+1000)
	e.start("m1", maddr, "init", "--listen-addr", maddr, "--docker-api", "--docker-api-addr", tlsAddr)
	e.waitFor("the manager to lead", 20*time.Second, func() (bool, string) {
		_, err := e.ctl("m1", "swarm", "join-token", "worker", "-q")
		return err == nil, fmt.Sprint(err)
	})
	e.start("w1", waddr, "join", "--listen-addr", waddr, "--docker-api", "--token", e.workerToken("m1"), maddr)
	e.waitReady("m1", 2)

	mgr := []string{"DOCKER_HOST=unix://" + filepath.Join(e.procs["m1"].dir, "docker.sock")}
	run := func(args ...string) string {
		t.Helper()
		out, err := dockerRun(t, docker, mgr, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The leader records its leadership in its node a moment after it
	// leads.
	e.waitFor("docker node ls to show both nodes and the leader", 20*time.Second, func() (bool, string) {
		out := run("node", "ls")
		for _, want := range []string{"m1", "w1", "Leader", "Ready"} {
			if !strings.Contains(out, want) {
				return false, fmt.Sprintf("docker node ls lacks %q:\n%s", want, out)
			}
		}
		return true, ""
	})
	if out := run("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Nodes}}"); strings.TrimSpace(out) != "active true 2" {
		t.Errorf("docker info: %q, want active true 2", out)
	}

	webapp := filepath.Join(e.bin, "webapp")
	// Without -d the CLI follows the tasks until the service converged
	// and stayed so for the monitor period.
	out := run("service", "create", "--name", "web", "--replicas", "2", "--update-monitor", "1s", webapp)
	if !strings.Contains(out, "converged") {
		t.Errorf("docker service create did not report convergence:\n%s", out)
	}
	if out := run("service", "ls", "--format", "{{.Name}} {{.Replicas}}"); !strings.Contains(out, "web 2/2") {
		t.Errorf("docker service ls: %q, want web 2/2", out)
	}
	out = run("service", "ps", "web", "--format", "{{.Name}} {{.CurrentState}} {{.DesiredState}}")
	if n := strings.Count(out, "Running"); n != 4 { // current and desired, two tasks
		t.Errorf("docker service ps web: %d Running, want 2 tasks running:\n%s", n/2, out)
	}
	var inspected []struct {
		ID   string
		Spec struct {
			Name         string
			TaskTemplate struct{ ContainerSpec struct{ Image string } }
		}
	}
	if err := json.Unmarshal([]byte(run("service", "inspect", "web")), &inspected); err != nil || len(inspected) != 1 ||
		inspected[0].Spec.Name != "web" || inspected[0].Spec.TaskTemplate.ContainerSpec.Image != webapp {
		t.Errorf("docker service inspect web = %+v, %v", inspected, err)
	}
	run("service", "update", "--replicas", "3", "web")
	if out := run("service", "ls", "--format", "{{.Name}} {{.Replicas}}"); !strings.Contains(out, "web 3/3") {
		t.Errorf("after update --replicas 3: %q, want web 3/3", out)
	}
	if n, err := e.running("m1", "web"); err != nil || n != 3 {
		t.Errorf("apiaryctl sees %d running, %v; want 3", n, err)
	}
	run("service", "rm", "web")
	if out := run("service", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("services after rm: %q", out)
	}

	secretFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(secretFile, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(run("secret", "create", "pw", secretFile))
	if out := run("secret", "ls", "--format", "{{.ID}} {{.Name}}"); !strings.Contains(out, id+" pw") {
		t.Errorf("docker secret ls: %q, want %s pw", out, id)
	}
	run("network", "create", "--driver", "overlay", "backend")
	if out := run("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); !strings.Contains(out, "backend overlay swarm") {
		t.Errorf("docker network ls: %q", out)
	}

	e.dockerOverTLS(docker, tlsAddr)

	wrk := []string{"DOCKER_HOST=unix://" + filepath.Join(e.procs["w1"].dir, "docker.sock")}
	out, err := dockerRun(t, docker, wrk, "service", "ls")
	if err == nil || !strings.Contains(out, "This node is not a swarm manager") {
		t.Errorf("docker service ls on the worker: %v\n%s", err, out)
	}
	if out, err := dockerRun(t, docker, wrk, "info", "--format", "{{.Swarm.ControlAvailable}}"); err != nil || strings.TrimSpace(out) != "false" {
		t.Errorf("docker info on the worker: %q, %v", out, err)
	}
}

// dockerOverTLS: the docker CLI over TCP with mutual TLS, with a client
// bundle from apiaryctl swarm ca --client-bundle; a worker's own node
// certificate in its place is refused with Docker's error and changes
// nothing; no certificate at all does not get through the handshake.
func (e *e2e) dockerOverTLS(docker, addr string) {
	t := e.t
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "bundle")
	out, err := e.ctl("m1", "swarm", "ca", "--client-bundle", bundle)
	if err != nil || !strings.Contains(out, "DOCKER_CERT_PATH="+bundle) {
		t.Fatalf("swarm ca --client-bundle: %v\n%s", err, out)
	}
	if st, err := os.Stat(filepath.Join(bundle, "key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key.pem: %v, %v; want mode 0600", st, err)
	}
	if out, err := e.ctl("m1", "swarm", "ca", "--client-bundle", bundle); err == nil || !strings.Contains(out+err.Error(), "exists") {
		t.Errorf("a second bundle into the same directory: %v\n%s", err, out)
	}
	env := func(certs string) []string {
		return []string{"DOCKER_HOST=tcp://" + addr, "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=" + certs}
	}
	out, err = dockerRun(t, docker, env(bundle), "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
	if err != nil || !strings.Contains(out, "m1 Leader") || !strings.Contains(out, "w1") {
		t.Errorf("docker node ls over TLS: %v\n%s", err, out)
	}
	out, err = dockerRun(t, docker, env(bundle), "service", "ls", "--format", "{{.Name}}")
	if err != nil {
		t.Errorf("docker service ls over TLS: %v\n%s", err, out)
	}
	before := out

	// The worker's certificate, with the cluster's CA: verified, and
	// refused by role.
	wdir := t.TempDir()
	for dst, src := range map[string]string{
		"ca.pem":   filepath.Join(bundle, "ca.pem"),
		"cert.pem": filepath.Join(e.procs["w1"].dir, "certificates", "node.crt"),
		"key.pem":  filepath.Join(e.procs["w1"].dir, "certificates", "node.key"),
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(wdir, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err = dockerRun(t, docker, env(wdir), "service", "create", "--name", "evil", "-d", "/bin/true")
	if err == nil || !strings.Contains(out, "apiary-worker is refused") {
		t.Errorf("docker service create with a worker's certificate: %v\n%s", err, out)
	}
	if out, err := dockerRun(t, docker, env(bundle), "service", "ls", "--format", "{{.Name}}"); err != nil || out != before {
		t.Errorf("services after the worker's attempt: %q, %v; want %q", out, err, before)
	}
	// A TLS client that trusts the cluster's CA (the listener's
	// certificate names 127.0.0.1) but presents no certificate: the
	// handshake fails (TLS 1.3 reports it on the first read).
	caPEM, err := os.ReadFile(filepath.Join(bundle, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS to the listener with the bundle's CA: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err = conn.Write([]byte("GET /_ping HTTP/1.0\r\n\r\n")); err == nil {
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a request without a client certificate: %v, want the handshake refused", err)
	}
}
