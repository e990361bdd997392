package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"path"
	"strconv"

	"github.com/docker/docker/api/types/container"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/swarm/api"
)

// Secrets and configs (issue 16) are copied into a task's container once
// it is created and before it starts, as files: a secret at
// /run/secrets/<target>, a config at /<target> (Docker's places), with
// the reference's owner (default root) and mode (default 0444, Docker's).
// They live in the container's writable layer, on the engine's disk
// (under its data root), until the container is removed with the task:
// unlike the process executor's tmpfs, the engine gives no memory-only
// place to write into before a container starts. They are never in its
// environment, labels or the executor's log.
const (
	// SecretsDir is where a container finds its secrets.
	SecretsDir = "/run/secrets"
	// defaultFileMode is Docker's mode for secret and config files.
	defaultFileMode = 0o444
)

// SetDependencies takes the task's secrets and configs
// (executor.DependencyUser); Prepare copies them into the container.
func (c *controller) SetDependencies(d executor.Dependencies) {
	c.mu.Lock()
	c.deps = d
	c.mu.Unlock()
}

var _ executor.DependencyUser = (*controller)(nil)

// copyDeps copies the task's secrets and configs into its container,
// unless it has none or the container started already (an adopted one).
func (c *controller) copyDeps(ctx context.Context) error {
	spec := c.task.Spec
	if len(spec.Secrets)+len(spec.Configs) == 0 {
		return nil
	}
	c.mu.Lock()
	id, started, deps := c.id, c.started, c.deps
	c.mu.Unlock()
	if id == "" || started {
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(what, name, file string, f *api.FileTarget, data []byte) error {
		if f == nil || f.Name == "" {
			return fmt.Errorf("%s %q: no file target", what, name)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path.Join(file, f.Name)[1:], Size: int64(len(data)), Mode: defaultFileMode}
		if m := f.Mode.Perm(); m != 0 {
			hdr.Mode = int64(m)
		}
		var err error
		if f.UID != "" {
			if hdr.Uid, err = strconv.Atoi(f.UID); err != nil {
				return fmt.Errorf("%s %q: uid %q: %w", what, name, f.UID, err)
			}
		}
		if f.GID != "" {
			if hdr.Gid, err = strconv.Atoi(f.GID); err != nil {
				return fmt.Errorf("%s %q: gid %q: %w", what, name, f.GID, err)
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	}
	for _, r := range spec.Secrets {
		s := deps.Secret(r.SecretID)
		if s == nil {
			return fmt.Errorf("task %s: secret %q (%s) was not handed to the executor", c.task.ID, r.SecretName, r.SecretID)
		}
		if err := add("secret", r.SecretName, SecretsDir, r.File, s.Spec.Data); err != nil {
			return fmt.Errorf("task %s: %w", c.task.ID, err)
		}
	}
	for _, r := range spec.Configs {
		cf := deps.Config(r.ConfigID)
		if cf == nil {
			return fmt.Errorf("task %s: config %q (%s) was not handed to the executor", c.task.ID, r.ConfigName, r.ConfigID)
		}
		if err := add("config", r.ConfigName, "/", r.File, cf.Spec.Data); err != nil {
			return fmt.Errorf("task %s: %w", c.task.ID, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("task %s: secrets: %w", c.task.ID, err)
	}
	if err := c.e.cli.CopyToContainer(ctx, id, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("task %s: copy its secrets and configs into container %s: %w", c.task.ID, shortID(id), err)
	}
	return nil
}
