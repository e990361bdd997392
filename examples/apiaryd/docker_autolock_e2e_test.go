//go:build unix

package main_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dockerIn runs the docker CLI with stdin (the unlock key).
func dockerIn(t *testing.T, docker string, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, args...)
	cmd.Env = append(append(cmd.Environ(), "DOCKER_CONFIG="+t.TempDir(), "DOCKER_CONTEXT=", "DOCKER_API_VERSION="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

var unlockKeyRE = regexp.MustCompile(`APKEY-1-[A-Za-z0-9_-]{43}`)

// Issue 16's autolock through the real docker CLI against apiaryd's
// docker.sock: `docker swarm unlock-key` with autolock off (no key),
// `docker swarm update --autolock=true` (prints the key, the cluster's),
// `docker swarm unlock-key --rotate` (a new key), `docker swarm unlock` on
// a running node (not locked), `apiaryctl swarm unlock-key --rotate`
// returning once the manager has the new key; then the daemon restarted waits locked,
// its docker.sock saying so in `docker info`, refusing a wrong key from
// `docker swarm unlock` and starting with the right one.
func TestBinariesDockerAutolock(t *testing.T) {
	docker := dockerCLI(t)
	e := startupE2E(t)
	addr := addr3(t, 18)
	m1 := e.launch("m1", addr, "077", "init", "--listen-addr", addr, "--docker-api", "--executor", "fake", "--log-level", "warn")
	e.waitAnswers("m1")
	env := []string{"DOCKER_HOST=unix://" + filepath.Join(m1.dir, "docker.sock")}
	run := func(stdin string, args ...string) (string, error) { return dockerIn(t, docker, env, stdin, args...) }
	e.waitFor("docker.sock", 30*time.Second, func() (bool, string) {
		out, err := run("", "info", "--format", "{{.Swarm.LocalNodeState}}")
		return err == nil && strings.TrimSpace(out) == "active", fmt.Sprint(out, err)
	})
	if out, err := run("", "swarm", "unlock-key"); err == nil || !strings.Contains(out, "no unlock key is set") {
		t.Fatalf("unlock-key with autolock off: %v %s", err, out)
	}
	out, err := run("", "swarm", "update", "--autolock=true")
	if err != nil {
		t.Fatal(err)
	}
	key := unlockKeyRE.FindString(out)
	if key == "" || !strings.Contains(out, "docker swarm unlock") {
		t.Fatalf("swarm update --autolock=true printed no key:\n%s", out)
	}
	if ours, err := e.ctl("m1", "swarm", "unlock-key", "-q"); err != nil || strings.TrimSpace(ours) != key {
		t.Fatalf("apiaryctl's key %q (%v), docker's %q", ours, err, key)
	}
	if out, err := run("", "swarm", "unlock-key", "-q"); err != nil || strings.TrimSpace(out) != key {
		t.Fatalf("docker swarm unlock-key -q: %q %v", out, err)
	}
	out, err = run("", "swarm", "unlock-key", "--rotate", "-q")
	if err != nil {
		t.Fatal(err)
	}
	if rotated := strings.TrimSpace(out); !unlockKeyRE.MatchString(rotated) || rotated == key {
		t.Fatalf("rotated key %q (was %q)", rotated, key)
	} else {
		key = rotated
	}
	if out, err := run(key+"\n", "swarm", "unlock"); err == nil || !strings.Contains(out, "not locked") {
		t.Fatalf("docker swarm unlock on a running node: %v %s", err, out)
	}
	// apiaryctl's rotation waits until every reachable manager has
	// applied it: generation 3 (autolock on, docker's rotation, this one)
	// is in the manager's node when it returns, and the manager may stop.
	out, err = e.ctl("m1", "swarm", "unlock-key", "--rotate")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Every reachable manager has the new key") || unlockKeyRE.FindString(out) == key {
		t.Fatalf("apiaryctl swarm unlock-key --rotate:\n%s", out)
	}
	key = unlockKeyRE.FindString(out)
	var nodes []struct {
		DataKey *struct{ KEKGeneration uint64 }
	}
	if err := e.ctlJSON("m1", &nodes, "node", "ls"); err != nil || len(nodes) != 1 || nodes[0].DataKey == nil || nodes[0].DataKey.KEKGeneration != 3 {
		t.Fatalf("after the wait, the manager reports %+v (%v), want generation 3", nodes, err)
	}
	m1.stop(t)

	m1 = e.launch("m1", addr, "077", "run", "--log-level", "warn")
	e.waitFor("docker info to say locked", 30*time.Second, func() (bool, string) {
		out, err := run("", "info", "--format", "{{.Swarm.LocalNodeState}}")
		return err == nil && strings.TrimSpace(out) == "locked", fmt.Sprint(out, err)
	})
	if out, err := run("", "node", "ls"); err == nil || !strings.Contains(out, "docker swarm unlock") {
		t.Fatalf("docker node ls on a locked manager: %v %s", err, out)
	}
	if out, err := run("APKEY-1-"+strings.Repeat("A", 43)+"\n", "swarm", "unlock"); err == nil || !strings.Contains(out, "unlock key is wrong") {
		t.Fatalf("a wrong key: %v %s", err, out)
	}
	if out, err := run(key+"\n", "swarm", "unlock"); err != nil {
		t.Fatalf("docker swarm unlock: %v %s", err, out)
	}
	e.waitAnswers("m1")
	e.waitFor("docker node ls after the unlock", 30*time.Second, func() (bool, string) {
		out, err := run("", "node", "ls")
		return err == nil && strings.Contains(out, "Leader"), fmt.Sprint(out, err)
	})
}
