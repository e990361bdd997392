//go:build unix

package process

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/apiary-io/apiary/swarm/api"
)

// environ is the task's environment: PATH and HOME, the spec's Env, then the
// APIARY_ variables, which win over the spec's.
func (c *controller) environ(u taskUser) []string {
	t := c.task
	env := []string{"PATH=" + api.TaskPath(), "HOME=" + u.home}
	env = append(env, t.Spec.Process.Env...)
	return append(env, api.TaskIdentityEnv(t, t.NodeID)...)
}

// envValue is the last value of key in env, as exec uses it.
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath finds name in the task's PATH; a name with a slash is taken as
// it is (relative to the working directory dir).
func lookPath(name, path, dir string) (string, error) {
	check := func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s: not an executable file", p)
		}
		return nil
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := check(p); err != nil {
			return "", fmt.Errorf("command %q: %w", name, err)
		}
		return name, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue // never look in the working directory by accident
		}
		p := filepath.Join(d, name)
		if check(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: executable file not found in PATH %q", name, path)
}
