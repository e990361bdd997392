//go:build unix

package main_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 16 with the real binaries: apiaryctl makes a secret and a config
// from files, a process service uses them, and its task finds them as
// files of the right content and mode (not in its environment); the
// secret is in no apiaryctl output and no daemon log, and its removal is
// refused while the service uses it; the task's files go with the task.
// What a manager's data directory still holds of it, in plaintext, is
// logged: encryption at rest is the rest of issue 16.
func TestBinariesSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	m := startSecretsManager(t, "127.0.6.1")
	e, m1, ctl := m.e, m.m1, m.ctl
	dir := t.TempDir()
	secret := "binaries-secret-" + fmt.Sprint(time.Now().UnixNano())
	for name, data := range map[string]string{"secret": secret, "config": "conf-data"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctl("secret", "create", "db", filepath.Join(dir, "secret"))
	ctl("config", "create", "app.conf", filepath.Join(dir, "config"))
	report := filepath.Join(dir, "report")
	script := `f="$APIARY_SECRETS_DIR/db"
{ cmp -s "$f" "$WANT/secret" && echo same || echo differ
stat -c %a "$f"
echo "$(cat "$APIARY_CONFIGS_DIR/app.conf")"
if env | grep -q "$(cat "$f")"; then echo in-env; else echo not-in-env; fi; } > "$WANT/report.tmp"
mv "$WANT/report.tmp" "$WANT/report"
exec sleep 300`
	ctl("service", "create", "--name", "app", "--secret", "source=db,target=db,mode=0400", "--config", "app.conf",
		"--env", "WANT="+dir, "--", "/bin/sh", "-c", script)
	m.removeOnCleanup("app")
	var got []byte
	e.waitFor("the task's report", 60*time.Second, func() (bool, string) {
		var err error
		got, err = os.ReadFile(report)
		return err == nil, fmt.Sprint(err)
	})
	if lines := strings.Split(strings.TrimSpace(string(got)), "\n"); !slices.Equal(lines, []string{"same", "400", "conf-data", "not-in-env"}) {
		t.Fatalf("the task saw %q", lines)
	}
	var tasks []taskJSON
	if err := e.ctlJSON("m1", &tasks, "service", "ps", "app"); err != nil {
		t.Fatal(err)
	}
	// The running one (a loaded machine may have replaced the first).
	tasks = slices.DeleteFunc(tasks, func(tk taskJSON) bool { return tk.DesiredState != "running" })
	if len(tasks) != 1 {
		t.Fatalf("running tasks %v", tasks)
	}
	secretsDir := filepath.Join(m1.dir, "executor", "tasks", tasks[0].ID, "secrets")
	if _, err := os.Stat(secretsDir); err != nil {
		t.Fatalf("the task's secrets directory: %v", err)
	}

	if out, err := e.ctl("m1", "secret", "rm", "db"); err == nil || !strings.Contains(err.Error(), `secret "db" is used by service(s) "app"`) {
		t.Errorf("secret rm in use: %v %s", err, out)
	}
	for _, args := range [][]string{{"secret", "ls"}, {"secret", "inspect", "db"}, {"service", "inspect", "app"},
		{"service", "ps", "app", "--format", "json"}, {"task", "inspect", tasks[0].ID}, {"config", "inspect", "app.conf"}} {
		ctl(args...)
	}
	checkNoSecret(t, "apiaryctl's output", strings.Join(m.outputs, "\n"), secret)

	// At rest: no file of the manager's data dir holds the secret, raw or
	// in base64 (the raft log and snapshots are sealed with its data key).
	// The executor's task directories are the worker's side, which hands
	// the secret to the task (a tmpfs where it can mount one): left out.
	var holders []string
	scanned := 0
	filepath.WalkDir(m1.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 || strings.HasPrefix(path, filepath.Join(m1.dir, "executor")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
			return nil
		}
		scanned++
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte(secret)))) {
			rel, _ := filepath.Rel(m1.dir, path)
			holders = append(holders, rel)
		}
		return nil
	})
	if segs, _ := filepath.Glob(filepath.Join(m1.dir, "raft", "wal", "*.wal")); len(segs) == 0 || scanned < 5 {
		t.Fatalf("scanned %d files, %d raft log segments: the scan proves nothing", scanned, len(segs))
	}
	if len(holders) > 0 {
		t.Errorf("files of the manager's data dir holding the secret: %v", holders)
	}

	ctl("service", "rm", "app")
	e.waitFor("the task's secrets gone", 30*time.Second, func() (bool, string) {
		_, err := os.Stat(secretsDir)
		return errors.Is(err, fs.ErrNotExist), fmt.Sprint(err)
	})
	ctl("secret", "rm", "db")
	checkNoSecret(t, "the daemon's log", m1.log.String(), secret)
}

// secretsManager is a one-manager cluster of the real binaries for the
// secret tests, on a loopback address of ip, with a way to run apiaryctl
// against it that keeps every output.
type secretsManager struct {
	t       *testing.T
	e       *e2e
	m1      *proc
	outputs []string
}

func startSecretsManager(t *testing.T, ip string) *secretsManager {
	t.Helper()
	e := &e2e{t: t, bin: build(t), root: t.TempDir(), procs: map[string]*proc{}}
	t.Cleanup(e.stopAll)
	port := 28000 + time.Now().Nanosecond()%1000
	addr := fmt.Sprintf("%s:%d", ip, port)
	m1 := e.start("m1", addr, "init", "--listen-addr", addr)
	e.waitFor("the manager to lead", 20*time.Second, func() (bool, string) {
		_, err := e.ctl("m1", "swarm", "join-token", "worker", "-q")
		return err == nil, fmt.Sprint(err)
	})
	return &secretsManager{t: t, e: e, m1: m1}
}

// ctl runs apiaryctl, failing the test if it fails, and keeps its output.
func (m *secretsManager) ctl(args ...string) string {
	m.t.Helper()
	out, err := m.e.ctl("m1", args...)
	if err != nil {
		m.t.Fatal(err)
	}
	m.outputs = append(m.outputs, out)
	return out
}

// removeOnCleanup removes the service when the test ends, a failed one
// too, and waits for its tasks' secrets to go (their tmpfs unmounted)
// while the daemon still runs.
func (m *secretsManager) removeOnCleanup(service string) {
	m.t.Cleanup(func() {
		if _, err := m.e.ctl("m1", "service", "rm", service); err != nil {
			return // removed already
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if ts, _ := filepath.Glob(filepath.Join(m.m1.dir, "executor", "tasks", "*", "secrets")); len(ts) == 0 {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// checkNoSecret fails if text holds the secret, raw or base64.
func checkNoSecret(t *testing.T, where, text, secret string) {
	t.Helper()
	for _, enc := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
		if strings.Contains(text, enc) {
			t.Errorf("%s holds the secret (%q)", where, enc)
		}
	}
}
