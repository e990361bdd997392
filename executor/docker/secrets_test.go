package docker_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/docker"
	"github.com/apiary-io/apiary/internal/secretfs"
	"github.com/apiary-io/apiary/swarm/api"
)

// readContainerFile reads one file of a container through the engine,
// with its tar header (owner, mode).
func readContainerFile(t *testing.T, id, path string) (*tar.Header, string) {
	t.Helper()
	rc, _, err := cli.CopyFromContainer(context.Background(), id, path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return hdr, string(b)
}

// A container's secrets are files under /run/secrets and its configs at
// their targets from /, with the references' owners and modes (Docker's
// 0444 by default); never in its environment. Copied into the container
// by default; with SecretsDir, bind-mounted read-only from tmpfs mounts
// of the task's own on this machine, gone once the container exited. A
// task whose secret was not handed over is not created.
func TestSecretFilesInContainer(t *testing.T) {
	t.Parallel()
	for _, hostDir := range []bool{false, true} {
		t.Run(map[bool]string{false: "copied", true: "SecretsDir"}[hostDir], func(t *testing.T) {
			testSecretFiles(t, hostDir)
		})
	}
}

func testSecretFiles(t *testing.T, hostDir bool) {
	e, cfg := newExecutor(t)
	if hostDir {
		cfg.SecretsDir = filepath.Join(t.TempDir(), "secrets")
		e = newExecutorWith(t, cfg)
	}
	const secret, config = "docker-secret-value", "docker-config"
	task := appTask(imageV1, "run")
	task.Spec.Secrets = []api.SecretReference{
		{SecretID: "s1", SecretName: "db", File: &api.FileTarget{Name: "db", UID: "65534", GID: "65534", Mode: 0o400}},
		{SecretID: "s1", SecretName: "db", File: &api.FileTarget{Name: "tls/key"}},
	}
	task.Spec.Configs = []api.ConfigReference{{ConfigID: "c1", ConfigName: "app", File: &api.FileTarget{Name: "etc/app.conf"}}}
	c := controller(t, e, task)
	deps := executor.Dependencies{
		Secrets: []*api.Secret{{ID: "s1", Spec: api.SecretSpec{Data: api.SecretBytes(secret)}}},
		Configs: []*api.Config{{ID: "c1", Spec: api.ConfigSpec{Data: []byte(config)}}},
	}
	c.(executor.DependencyUser).SetDependencies(deps)
	must(t, "Start", c.Start(ctxFor(t, 30*time.Second)))
	insp := inspect(t, docker.ContainerName(task))
	for _, f := range []struct {
		path, data string
		mode       int64
		uid        int
	}{
		{docker.SecretsDir + "/db", secret, 0o400, 65534},
		{docker.SecretsDir + "/tls/key", secret, 0o444, 0},
		{"/etc/app.conf", config, 0o444, 0},
	} {
		hdr, data := readContainerFile(t, insp.ID, f.path)
		if data != f.data || hdr.Mode&0o777 != f.mode || hdr.Uid != f.uid {
			t.Errorf("%s: %q mode %o uid %d; want %q %o %d", f.path, data, hdr.Mode&0o777, hdr.Uid, f.data, f.mode, f.uid)
		}
	}
	if slices.ContainsFunc(insp.Config.Env, func(kv string) bool { return strings.Contains(kv, secret) }) {
		t.Errorf("the secret is in the container's environment")
	}
	taskDir := filepath.Join(cfg.SecretsDir, task.ID)
	if hostDir {
		var binds int
		for _, m := range insp.Mounts {
			if strings.HasPrefix(m.Source, taskDir) && !m.RW {
				binds++
			}
		}
		if binds != 2 || os.Geteuid() == 0 && !secretfs.Mounted(filepath.Join(taskDir, "secrets")) {
			t.Errorf("%d read-only binds from %s (want the secrets directory and the config), mounted %v", binds, taskDir, secretfs.Mounted(filepath.Join(taskDir, "secrets")))
		}
		must(t, "Terminate", c.Terminate(ctxFor(t, 30*time.Second)))
		if _, err := c.Wait(ctxFor(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(taskDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after the container exited, %s: %v", taskDir, err)
		}
	}

	missing := appTask(imageV1, "run")
	missing.Spec.Secrets = task.Spec.Secrets[:1]
	c2 := controller(t, e, missing)
	err := c2.Prepare(ctxFor(t, 30*time.Second))
	if err == nil || !strings.Contains(err.Error(), `secret "db" (s1) was not handed to the executor`) {
		t.Fatalf("prepare without the secret: %v", err)
	}
	if _, err := cli.ContainerInspect(context.Background(), docker.ContainerName(missing)); err == nil {
		t.Error("a container without its secrets was left")
	}
}
