//go:build unix

package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/internal/secretfs"
	"github.com/apiary-io/apiary/swarm/api"
)

// Secrets and configs (issue 16). A task that references any gets them as
// files in two private directories of its task directory, secrets/ and
// configs/, named by the references' targets. Each directory is a tmpfs of
// its own where the executor can mount one (Linux, as root or with
// CAP_SYS_ADMIN), so the data lives in memory only; elsewhere, or with
// Config.SecretsOnDisk, it is an ordinary directory on the DataDir's file
// system. Either way the directory is 0700 and owned by the task's user,
// and each file has its reference's owner and mode (default: the task's
// user, 0400 for a secret, 0444 for a config). Files are written whole
// (a temporary file renamed into place), so the task never reads half of
// one. The task finds the directories in APIARY_SECRETS_DIR and
// APIARY_CONFIGS_DIR; the data itself is never in its environment, its
// record (task.json holds the references only) or the executor's logs.
// They are unmounted and deleted as soon as the task's processes are gone
// (it never runs again), and by Remove at the latest.
const (
	// EnvSecretsDir and EnvConfigsDir name the task's directories of
	// secrets and configs (set when it references any).
	EnvSecretsDir = "APIARY_SECRETS_DIR"
	EnvConfigsDir = "APIARY_CONFIGS_DIR"

	secretsDirName = "secrets"
	configsDirName = "configs"

	defaultSecretMode = 0o400
	defaultConfigMode = 0o444
)

// SetDependencies takes the task's secrets and configs (executor.DependencyUser);
// Prepare writes them.
func (c *controller) SetDependencies(d executor.Dependencies) {
	c.mu.Lock()
	c.deps = d
	c.mu.Unlock()
}

var _ executor.DependencyUser = (*controller)(nil)

// writeDepsLocked writes the task's secrets and configs and returns the
// environment that names their directories.
func (c *controller) writeDepsLocked(u taskUser) ([]string, error) {
	t := c.task.Spec
	var secrets, configs []secretfs.File
	for _, r := range t.Secrets {
		s := c.deps.Secret(r.SecretID)
		if s == nil {
			return nil, fmt.Errorf("secret %q (%s) was not handed to the executor", r.SecretName, r.SecretID)
		}
		f, err := depFile(r.File, s.Spec.Data, defaultSecretMode, u)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", r.SecretName, err)
		}
		secrets = append(secrets, f)
	}
	for _, r := range t.Configs {
		cf := c.deps.Config(r.ConfigID)
		if cf == nil {
			return nil, fmt.Errorf("config %q (%s) was not handed to the executor", r.ConfigName, r.ConfigID)
		}
		f, err := depFile(r.File, cf.Spec.Data, defaultConfigMode, u)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", r.ConfigName, err)
		}
		configs = append(configs, f)
	}
	var env []string
	for _, set := range []struct {
		dir, envName string
		files        []secretfs.File
	}{{secretsDirName, EnvSecretsDir, secrets}, {configsDirName, EnvConfigsDir, configs}} {
		if len(set.files) == 0 {
			continue
		}
		d := secretfs.Dir{Path: filepath.Join(c.dir, set.dir), Mode: 0o700, UID: -1, GID: -1, OnDisk: c.e.cfg.SecretsOnDisk}
		if u.cred != nil {
			d.UID, d.GID = u.uid, u.gid
		}
		notMounted, err := d.Write(set.files)
		if notMounted != nil {
			c.e.tmpfsOnce.Do(func() {
				c.log.Warn("secrets and configs are written to disk (files in a 0700 directory of each task's directory): a tmpfs cannot be mounted", "err", notMounted)
			})
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", set.dir, err)
		}
		env = append(env, set.envName+"="+d.Path)
	}
	return env, nil
}

// depFile is the file of a reference: owned by the reference's UID and
// GID, else the task's user; its mode, else the default.
func depFile(target *api.FileTarget, data []byte, defMode os.FileMode, u taskUser) (secretfs.File, error) {
	f := secretfs.File{Data: data, UID: -1, GID: -1, Mode: defMode}
	if target == nil {
		return f, errors.New("no file target")
	}
	f.Name = target.Name
	if u.cred != nil {
		f.UID, f.GID = u.uid, u.gid
	}
	var err error
	if target.UID != "" {
		if f.UID, err = strconv.Atoi(target.UID); err != nil {
			return f, fmt.Errorf("target %q: uid %q: %w", target.Name, target.UID, err)
		}
	}
	if target.GID != "" {
		if f.GID, err = strconv.Atoi(target.GID); err != nil {
			return f, fmt.Errorf("target %q: gid %q: %w", target.Name, target.GID, err)
		}
	}
	if m := target.Mode.Perm(); m != 0 {
		f.Mode = m
	}
	return f, nil
}

// removeDeps unmounts and deletes the task's directories of secrets and
// configs.
func (c *controller) removeDeps() {
	for _, d := range []string{secretsDirName, configsDirName} {
		if err := secretfs.Remove(filepath.Join(c.dir, d)); err != nil {
			c.log.Warn("secrets directory not removed", "dir", d, "err", err)
		}
	}
}

// wipeDeps unmounts and deletes the task's secrets and configs once its
// processes are gone.
func (c *controller) wipeDeps() {
	if len(c.task.Spec.Secrets)+len(c.task.Spec.Configs) > 0 {
		c.removeDeps()
	}
}
