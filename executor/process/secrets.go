//go:build unix

package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/apiary-io/apiary/executor"
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

// depFile is one file to write.
type depFile struct {
	target  *api.FileTarget
	name    string // the secret's or config's, for errors
	data    []byte
	defMode os.FileMode
}

// writeDepsLocked writes the task's secrets and configs and returns the
// environment that names their directories.
func (c *controller) writeDepsLocked(u taskUser) ([]string, error) {
	t := c.task.Spec
	var secrets, configs []depFile
	for _, r := range t.Secrets {
		s := c.deps.Secret(r.SecretID)
		if s == nil {
			return nil, fmt.Errorf("secret %q (%s) was not handed to the executor", r.SecretName, r.SecretID)
		}
		secrets = append(secrets, depFile{target: r.File, name: "secret " + r.SecretName, data: s.Spec.Data, defMode: defaultSecretMode})
	}
	for _, r := range t.Configs {
		cf := c.deps.Config(r.ConfigID)
		if cf == nil {
			return nil, fmt.Errorf("config %q (%s) was not handed to the executor", r.ConfigName, r.ConfigID)
		}
		configs = append(configs, depFile{target: r.File, name: "config " + r.ConfigName, data: cf.Spec.Data, defMode: defaultConfigMode})
	}
	var env []string
	for _, set := range []struct {
		dir, envName string
		files        []depFile
	}{{secretsDirName, EnvSecretsDir, secrets}, {configsDirName, EnvConfigsDir, configs}} {
		if len(set.files) == 0 {
			continue
		}
		dir := filepath.Join(c.dir, set.dir)
		if err := c.depDir(dir, set.files, u); err != nil {
			return nil, fmt.Errorf("%s: %w", set.dir, err)
		}
		for _, f := range set.files {
			if err := writeDepFile(dir, f, u); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
		}
		env = append(env, set.envName+"="+dir)
	}
	return env, nil
}

// depDir makes a private directory for files, a tmpfs where one mounts.
func (c *controller) depDir(dir string, files []depFile, u taskUser) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if !c.e.cfg.SecretsOnDisk && !isMountPoint(dir) {
		size := 0
		for _, f := range files {
			// Every file takes whole pages, and its temporary copy
			// exists beside it while it is renamed into place.
			size += 2 * (len(f.data) + os.Getpagesize())
		}
		if err := mountTmpfs(dir, size+os.Getpagesize()*(len(files)+16)); err != nil {
			c.e.tmpfsOnce.Do(func() {
				c.log.Warn("secrets and configs are written to disk (files in a 0700 directory of each task's directory): a tmpfs cannot be mounted", "err", err)
			})
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	if u.cred != nil {
		return os.Chown(dir, u.uid, u.gid)
	}
	return nil
}

// writeDepFile writes one file whole: into a temporary file beside it,
// with its owner and mode, renamed into place.
func writeDepFile(dir string, f depFile, u taskUser) error {
	target := ""
	if f.target != nil {
		target = f.target.Name
	}
	if target == "" || !filepath.IsLocal(target) {
		return fmt.Errorf("target %q: not a relative path inside the directory", target)
	}
	path := filepath.Join(dir, target)
	uid, gid := -1, -1
	if u.cred != nil {
		uid, gid = u.uid, u.gid
	}
	if f.target.UID != "" {
		n, err := strconv.Atoi(f.target.UID)
		if err != nil {
			return fmt.Errorf("target %q: uid %q: %w", target, f.target.UID, err)
		}
		uid = n
	}
	if f.target.GID != "" {
		n, err := strconv.Atoi(f.target.GID)
		if err != nil {
			return fmt.Errorf("target %q: gid %q: %w", target, f.target.GID, err)
		}
		gid = n
	}
	mode := f.target.Mode.Perm()
	if mode == 0 {
		mode = f.defMode
	}
	if sub := filepath.Dir(path); sub != dir {
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return err
		}
		// The task's user must be able to reach the file.
		for d := sub; d != dir; d = filepath.Dir(d) {
			if u.cred != nil {
				if err := os.Chown(d, u.uid, u.gid); err != nil {
					return err
				}
			}
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".apiary-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails once renamed
	_, err = tmp.Write(f.data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil && (uid >= 0 || gid >= 0) {
		err = tmp.Chown(uid, gid)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("target %q: %w", target, err)
	}
	return nil
}

// removeDeps unmounts the task's directories of secrets and configs, if
// they are mounted, before its directory is deleted.
func (c *controller) removeDeps() {
	for _, d := range []string{secretsDirName, configsDirName} {
		dir := filepath.Join(c.dir, d)
		if isMountPoint(dir) {
			if err := unmount(dir); err != nil {
				c.log.Warn("secrets directory not unmounted", "dir", dir, "err", err)
			}
		}
	}
}

// wipeDeps unmounts and deletes the task's secrets and configs once its
// processes are gone.
func (c *controller) wipeDeps() {
	if len(c.task.Spec.Secrets)+len(c.task.Spec.Configs) == 0 {
		return
	}
	c.removeDeps()
	for _, d := range []string{secretsDirName, configsDirName} {
		if err := os.RemoveAll(filepath.Join(c.dir, d)); err != nil {
			c.log.Warn("secrets directory not deleted", "dir", d, "err", err)
		}
	}
}

// isMountPoint reports whether dir is on another file system than its
// parent: a tmpfs this executor mounted.
func isMountPoint(dir string) bool {
	var st, parent syscall.Stat_t
	if syscall.Lstat(dir, &st) != nil || syscall.Lstat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
