//go:build unix

package process

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiary-io/apiary/executor"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm/api"
)

const (
	secretValue = "pa55w0rd-from-the-vault"
	configValue = "listen=8080"
)

// secretTask references secret s1 (as db, and as certs/key with mode
// 0440) and config c1; its script compares what it sees with copies the
// test wrote in dir (so that the data is not in its command line) and
// prints its environment.
func secretTask(t *testing.T) (*api.Task, executor.Dependencies) {
	dir := t.TempDir()
	for name, data := range map[string]string{"secret": secretValue, "config": configValue} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	task := shTask(`cmp -s "$APIARY_SECRETS_DIR/db" "$WANT/secret" || { echo bad secret; exit 7; }
cmp -s "$APIARY_CONFIGS_DIR/app.conf" "$WANT/config" || { echo bad config; exit 8; }
cmp -s "$APIARY_SECRETS_DIR/certs/key" "$WANT/secret" || { echo bad key; exit 9; }
env
echo ready
exec sleep 300`)
	task.Spec.Process.Env = []string{"WANT=" + dir}
	t0 := task
	t0.Spec.Secrets = []api.SecretReference{
		{SecretID: "s1", SecretName: "db", File: &api.FileTarget{Name: "db"}},
		{SecretID: "s1", SecretName: "db", File: &api.FileTarget{Name: "certs/key", Mode: 0o440}},
	}
	t0.Spec.Configs = []api.ConfigReference{{ConfigID: "c1", ConfigName: "app", File: &api.FileTarget{Name: "app.conf"}}}
	return t0, executor.Dependencies{
		Secrets: []*api.Secret{{ID: "s1", Spec: api.SecretSpec{Annotations: api.Annotations{Name: "db"}, Data: api.SecretBytes(secretValue)}}},
		Configs: []*api.Config{{ID: "c1", Spec: api.ConfigSpec{Annotations: api.Annotations{Name: "app"}, Data: []byte(configValue)}}},
	}
}

// mounted reports whether dir is a mount point in this process's view.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false // not Linux: nothing is mounted by the executor
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// A task's secrets and configs are files in its private directories, with
// their modes, named by APIARY_SECRETS_DIR and APIARY_CONFIGS_DIR; the data
// is not in its environment, its record or the executor's logs; the files
// go with the task. As root on Linux the directories are tmpfs mounts;
// with SecretsOnDisk (or where mounting fails) plain 0700 directories.
func TestSecretFiles(t *testing.T) {
	for _, onDisk := range []bool{false, true} {
		t.Run(map[bool]string{false: "tmpfs", true: "disk"}[onDisk], func(t *testing.T) {
			var logs testutil.SyncBuffer
			e := newTestExecutor(t, Config{SecretsOnDisk: onDisk, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			task, deps := secretTask(t)
			c, err := e.Controller(task)
			if err != nil {
				t.Fatal(err)
			}
			// On a failure too: no task left running, no tmpfs left mounted.
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c.Remove(ctx)
			})
			c.(executor.DependencyUser).SetDependencies(deps)
			if err := c.Start(ctxT(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if l := waitLine(t, c, 10*time.Second, func(l string) bool { return l == "ready" || strings.HasPrefix(l, "bad") }); l != "ready" {
				t.Fatalf("the task saw the wrong files: %s", l)
			}
			dir := filepath.Join(e.tasksDir, task.ID)
			secrets, configs := filepath.Join(dir, secretsDirName), filepath.Join(dir, configsDirName)
			wantMount := !onDisk && os.Geteuid() == 0 && runtime.GOOS == "linux"
			if got := mounted(t, secrets); got != wantMount {
				t.Errorf("secrets directory mounted %v, want %v", got, wantMount)
			}
			for path, mode := range map[string]os.FileMode{
				secrets: os.ModeDir | 0o700, configs: os.ModeDir | 0o700,
				filepath.Join(secrets, "db"): 0o400, filepath.Join(secrets, "certs/key"): 0o440,
				filepath.Join(configs, "app.conf"): 0o444,
			} {
				fi, err := os.Stat(path)
				if err != nil || fi.Mode() != mode {
					t.Errorf("%s: %v %v, want mode %v", path, fi.Mode(), err, mode)
				}
			}
			out := readLogs(t, c, executor.LogOptions{})
			for _, want := range []string{EnvSecretsDir + "=" + secrets, EnvConfigsDir + "=" + configs} {
				if !strings.Contains(out, want) {
					t.Errorf("environment lacks %s:\n%s", want, out)
				}
			}
			if strings.Contains(out, secretValue) {
				t.Error("the secret is in the task's environment")
			}
			rec, err := os.ReadFile(filepath.Join(dir, recordFile))
			if err != nil || bytes.Contains(rec, []byte(secretValue)) {
				t.Errorf("task record (%v) holds the data", err)
			}
			// Stopped, it holds them no more; removed, nothing is left.
			if err := c.Shutdown(ctxT(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			waitExit(t, c, 10*time.Second)
			for _, d := range []string{secrets, configs} {
				if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) || mounted(t, d) {
					t.Errorf("after the task stopped, %s: %v, mounted %v", d, err, mounted(t, d))
				}
			}
			if err := c.Remove(ctxT(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after remove: %v", err)
			}
			if strings.Contains(logs.String(), secretValue) {
				t.Errorf("the executor logged the secret:\n%s", logs.String())
			}
		})
	}
}

// A task whose secret was not handed over does not prepare, and says
// which one it lacks.
func TestSecretMissing(t *testing.T) {
	e := newTestExecutor(t, Config{})
	task, _ := secretTask(t)
	c, err := e.Controller(task)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Prepare(ctxT(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), `secret "db" (s1) was not handed to the executor`) {
		t.Fatalf("prepare: %v", err)
	}
	if err := c.Remove(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// As root, a task run as another user owns its directories and, unless a
// reference says otherwise, its files: it reads its secret, not one given
// to root with mode 0400. Without root the executor cannot mount a tmpfs
// and says once that it writes to disk, where the same files are.
func TestSecretFilesOwners(t *testing.T) {
	dir, err := os.MkdirTemp("", "apiary-secret-user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil { // reachable by the task's user
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	e := newTestExecutor(t, Config{DataDir: filepath.Join(dir, "data"), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	task := shTask(`cat "$APIARY_SECRETS_DIR/mine" >/dev/null && echo mine-ok
cat "$APIARY_SECRETS_DIR/roots" >/dev/null 2>&1 && echo roots-readable || echo roots-refused
echo ready; exec sleep 300`)
	task.Spec.Secrets = []api.SecretReference{{SecretID: "s1", SecretName: "s", File: &api.FileTarget{Name: "mine"}}}
	root := os.Geteuid() == 0
	if root {
		task.Spec.Process.User = "65534:65534"
		// Only root may give a file to another owner.
		task.Spec.Secrets = append(task.Spec.Secrets, api.SecretReference{SecretID: "s1", SecretName: "s", File: &api.FileTarget{Name: "roots", UID: "0", GID: "0"}})
	}
	c, err := e.Controller(task)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Remove(ctx)
	})
	c.(executor.DependencyUser).SetDependencies(executor.Dependencies{Secrets: []*api.Secret{{ID: "s1", Spec: api.SecretSpec{Data: api.SecretBytes(secretValue)}}}})
	if err := c.Start(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitLine(t, c, 10*time.Second, func(l string) bool { return l == "ready" })
	out := readLogs(t, c, executor.LogOptions{})
	secrets := filepath.Join(e.tasksDir, task.ID, secretsDirName)
	if !root {
		if mounted(t, secrets) || !strings.Contains(logs.String(), "written to disk") || !strings.Contains(out, "mine-ok") {
			t.Fatalf("without root: mounted %v, output %q, log:\n%s", mounted(t, secrets), out, logs.String())
		}
		return
	}
	if !strings.Contains(out, "mine-ok") || !strings.Contains(out, "roots-refused") {
		t.Errorf("the task, as 65534, saw: %q", out)
	}
	for path, uid := range map[string]uint32{secrets: 65534, filepath.Join(secrets, "mine"): 65534, filepath.Join(secrets, "roots"): 0} {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil || st.Uid != uid {
			t.Errorf("%s: owner %d (%v), want %d", path, st.Uid, err, uid)
		}
	}
}
