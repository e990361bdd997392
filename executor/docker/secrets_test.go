package docker_test

import (
	"archive/tar"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/executor/docker"
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
// 0444 by default), there before it starts; never in its environment. A
// task whose secret was not handed over is not created.
func TestSecretFilesInContainer(t *testing.T) {
	t.Parallel()
	e, _ := newExecutor(t)
	const secret, config = "docker-secret-value", "docker-config"
	task := appTask(imageV1, "run")
	task.Spec.Secrets = []api.SecretReference{
		{SecretID: "s1", SecretName: "db", File: &api.FileTarget{Name: "db", UID: "65534", GID: "65534", Mode: 0o400}},
		{SecretID: "s1", SecretName: "db", File: &api.FileTarget{Name: "tls/key"}},
	}
	task.Spec.Configs = []api.ConfigReference{{ConfigID: "c1", ConfigName: "app", File: &api.FileTarget{Name: "etc/app.conf"}}}
	c := controller(t, e, task)
	c.(executor.DependencyUser).SetDependencies(executor.Dependencies{
		Secrets: []*api.Secret{{ID: "s1", Spec: api.SecretSpec{Data: api.SecretBytes(secret)}}},
		Configs: []*api.Config{{ID: "c1", Spec: api.ConfigSpec{Data: []byte(config)}}},
	})
	must(t, "Prepare", c.Prepare(ctxFor(t, 30*time.Second)))
	id := inspect(t, docker.ContainerName(task)).ID
	for _, f := range []struct {
		path, data string
		mode       int64
		uid        int
	}{
		{docker.SecretsDir + "/db", secret, 0o400, 65534},
		{docker.SecretsDir + "/tls/key", secret, 0o444, 0},
		{"/etc/app.conf", config, 0o444, 0},
	} {
		hdr, data := readContainerFile(t, id, f.path)
		if data != f.data || hdr.Mode&0o777 != f.mode || hdr.Uid != f.uid {
			t.Errorf("%s: %q mode %o uid %d; want %q %o %d", f.path, data, hdr.Mode&0o777, hdr.Uid, f.data, f.mode, f.uid)
		}
	}
	must(t, "Start", c.Start(ctxFor(t, 30*time.Second)))
	if env := inspect(t, id).Config.Env; slices.ContainsFunc(env, func(kv string) bool { return strings.Contains(kv, secret) }) {
		t.Errorf("the secret is in the container's environment")
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
