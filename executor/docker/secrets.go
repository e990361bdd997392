package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/internal/secretfs"
	"github.com/apiary-io/apiary/swarm/api"
)

// Secrets and configs (issue 16) are files of a task's container: a
// secret at /run/secrets/<target>, a config at /<target> (Docker's
// places), with the reference's owner (default root) and mode (default
// 0444, Docker's). They are never in its environment, labels or the
// executor's log. With Config.SecretsDir they are written on this machine
// in tmpfs mounts of the task's own (<SecretsDir>/<task ID>/secrets and
// configs) and bind-mounted read-only into the container (the secrets
// directory at /run/secrets, each config at its target): memory only,
// and deleted once the container exits. Without it they are copied into
// the container once it is created and before it starts: they then live
// in its writable layer, on the engine's disk, until the container is
// removed with the task, as the engine gives no memory-only place to
// write into before a container starts.
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
	if id == "" || started || c.e.cfg.SecretsDir != "" {
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

// hostDir is where the task's secrets and configs are written with
// Config.SecretsDir.
func (c *controller) hostDir() string { return filepath.Join(c.e.cfg.SecretsDir, c.task.ID) }

// hostDeps writes the task's secrets and configs under Config.SecretsDir
// and returns the bind mounts that give them to its container. The
// directories are 0755 (inside the container, as Docker's /run/secrets):
// SecretsDir itself, 0700, keeps them from other users of this machine.
func (c *controller) hostDeps() ([]mount.Mount, error) {
	spec := c.task.Spec
	if c.e.cfg.SecretsDir == "" || len(spec.Secrets)+len(spec.Configs) == 0 {
		return nil, nil
	}
	c.mu.Lock()
	deps := c.deps
	c.mu.Unlock()
	if err := os.MkdirAll(c.e.cfg.SecretsDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(c.hostDir(), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	file := func(f *api.FileTarget, data []byte) (secretfs.File, error) {
		out := secretfs.File{Data: data, Mode: defaultFileMode}
		if f == nil || f.Name == "" {
			return out, errors.New("no file target")
		}
		out.Name = f.Name
		if m := f.Mode.Perm(); m != 0 {
			out.Mode = m
		}
		var err error
		// Unset: the agent's, root as a rule (Docker's default).
		if out.UID, err = atoiOr(f.UID, -1); err != nil {
			return out, err
		}
		out.GID, err = atoiOr(f.GID, -1)
		return out, err
	}
	var secrets, configs []secretfs.File
	var mounts []mount.Mount
	for _, r := range spec.Secrets {
		s := deps.Secret(r.SecretID)
		if s == nil {
			return nil, fmt.Errorf("secret %q (%s) was not handed to the executor", r.SecretName, r.SecretID)
		}
		f, err := file(r.File, s.Spec.Data)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", r.SecretName, err)
		}
		secrets = append(secrets, f)
	}
	for _, r := range spec.Configs {
		cf := deps.Config(r.ConfigID)
		if cf == nil {
			return nil, fmt.Errorf("config %q (%s) was not handed to the executor", r.ConfigName, r.ConfigID)
		}
		f, err := file(r.File, cf.Spec.Data)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", r.ConfigName, err)
		}
		configs = append(configs, f)
	}
	for _, set := range []struct {
		name  string
		files []secretfs.File
	}{{"secrets", secrets}, {"configs", configs}} {
		if len(set.files) == 0 {
			continue
		}
		d := secretfs.Dir{Path: filepath.Join(c.hostDir(), set.name), Mode: 0o755, UID: -1, GID: -1}
		notMounted, err := d.Write(set.files)
		if notMounted != nil {
			c.e.tmpfsOnce.Do(func() {
				c.log.Warn("secrets and configs are written to disk under SecretsDir: a tmpfs cannot be mounted", "err", notMounted)
			})
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", set.name, err)
		}
		if set.name == "secrets" {
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: d.Path, Target: SecretsDir, ReadOnly: true})
			continue
		}
		for _, f := range set.files {
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: filepath.Join(d.Path, f.Name), Target: "/" + f.Name, ReadOnly: true})
		}
	}
	return mounts, nil
}

// removeHostDeps unmounts and deletes what hostDeps wrote.
func (c *controller) removeHostDeps() {
	if c.e.cfg.SecretsDir == "" || len(c.task.Spec.Secrets)+len(c.task.Spec.Configs) == 0 {
		return
	}
	for _, d := range []string{"secrets", "configs"} {
		if err := secretfs.Remove(filepath.Join(c.hostDir(), d)); err != nil {
			c.log.Warn("secrets directory not removed", "dir", d, "err", err)
		}
	}
	if err := os.RemoveAll(c.hostDir()); err != nil {
		c.log.Warn("secrets directory not removed", "err", err)
	}
}

func atoiOr(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}
