//go:build unix

package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// dockerClient runs the real docker CLI against one endpoint of the
// cluster (a docker.sock, or TCP with a client bundle), with a config
// dir of its own so that no context or credential of the machine
// applies.
type dockerClient struct {
	t    *testing.T
	bin  string
	name string // the transport, for messages
	env  []string
}

func newDockerClient(t *testing.T, bin, name string, env ...string) *dockerClient {
	return &dockerClient{t: t, bin: bin, name: name,
		env: append([]string{"DOCKER_CONFIG=" + t.TempDir(), "DOCKER_CONTEXT=", "DOCKER_API_VERSION=", "DOCKER_CLI_HINTS=false"}, env...)}
}

// dockerResult is one command's outcome.
type dockerResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r dockerResult) String() string {
	return fmt.Sprintf("docker %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// run runs docker with args (and stdin) and returns what it did; it
// fails the test only when the CLI cannot be run or hangs for a minute.
func (d *dockerClient) runIn(stdin string, args ...string) dockerResult {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := dockerResult{args: args, stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		d.t.Fatalf("[%s] docker %s: %v\n%s", d.name, strings.Join(args, " "), err, r)
	}
	return r
}

func (d *dockerClient) run(args ...string) dockerResult {
	d.t.Helper()
	return d.runIn("", args...)
}

// ok runs docker, fails the test unless it exits 0, and returns stdout.
func (d *dockerClient) ok(args ...string) string {
	d.t.Helper()
	r := d.run(args...)
	if r.code != 0 {
		d.t.Fatalf("[%s] %s", d.name, r)
	}
	return r.stdout
}

// json runs docker (an inspect, or a --format '{{json .}}') and decodes
// its stdout into v.
func (d *dockerClient) json(v any, args ...string) {
	d.t.Helper()
	out := d.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("[%s] docker %s: %v\n%s", d.name, strings.Join(args, " "), err, out)
	}
}

// lines splits output into its non-empty lines, trimmed.
func lines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// programDir holds copies of the example web app under a path the image
// reference grammar can spell (lower case: t.TempDir's names carry the
// test's), so that process.apiary.invalid/PATH names them. The copies'
// processes are killed by pid on cleanup.
type programDir struct {
	dir string
}

func newProgramDir(t *testing.T, webapp string, names ...string) *programDir {
	t.Helper()
	dir, err := os.MkdirTemp("", "apiary-docker-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	p := &programDir{dir: dir}
	t.Cleanup(func() {
		p.killTasks()
		os.RemoveAll(dir)
	})
	src, err := os.ReadFile(webapp)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), src, 0o755); err != nil {
			t.Fatal(err)
		}
		if img := p.image(n); !api.IsProcessImage(img) {
			t.Fatalf("%s is not a process image: the temp dir (TMPDIR) must be a lower-case path", img)
		}
	}
	return p
}

// image is the process image of program name: a reference the docker
// CLI's compose loader accepts.
func (p *programDir) image(name string) string {
	return api.ProcessImageHost + filepath.Join(p.dir, name)
}

// killTasks kills what still runs a program of the dir (tasks run in
// process groups of their own, which outlive a killed daemon), by pid.
func (p *programDir) killTasks() {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, p.dir+"/") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// falseProgram is a program that fails at once, spelled as a process
// image.
func falseProgram(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/bin/false", "/usr/bin/false"} {
		if _, err := os.Stat(p); err == nil {
			return api.ProcessImageHost + p
		}
	}
	t.Fatal("no false program")
	return ""
}
