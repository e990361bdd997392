//go:build unix

package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 16's rotation with the real binaries: `apiaryctl secret update`
// makes version 2 and rolls the process service using the secret to it
// (its new task reads version 2 in its file), `service rollback` returns
// it to version 1, `secret versions` lists both, and neither version is in
// any apiaryctl output or the daemon's log.
func TestBinariesSecretUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	m := startSecretsManager(t, "127.0.6.2")
	e, ctl := m.e, m.ctl
	dir := t.TempDir()
	stamp := fmt.Sprint(time.Now().UnixNano())
	versions := []string{"rotation-one-" + stamp, "rotation-two-" + stamp}
	for i, data := range versions {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("v", i+1)), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctl("secret", "create", "db", filepath.Join(dir, "v1"))
	// Each task copies what it finds into seen/TASKID, whole.
	if err := os.Mkdir(filepath.Join(dir, "seen"), 0o700); err != nil {
		t.Fatal(err)
	}
	script := `cp "$APIARY_SECRETS_DIR/db" "$SEEN/.$APIARY_TASK_ID" && mv "$SEEN/.$APIARY_TASK_ID" "$SEEN/$APIARY_TASK_ID"
exec sleep 300`
	ctl("service", "create", "--name", "app", "--secret", "db", "--update-order", "start-first", "--update-monitor", "1s",
		"--env", "SEEN="+filepath.Join(dir, "seen"), "--", "/bin/sh", "-c", script)
	m.removeOnCleanup("app")
	// running waits until the service's one running task has read want.
	running := func(what, want string) string {
		t.Helper()
		var id string
		e.waitFor(what, 60*time.Second, func() (bool, string) {
			var tasks []taskJSON
			if err := e.ctlJSON("m1", &tasks, "service", "ps", "app"); err != nil {
				return false, err.Error()
			}
			tasks = slices.DeleteFunc(tasks, func(tk taskJSON) bool { return tk.DesiredState != "running" || tk.Status.State != "running" })
			if len(tasks) != 1 {
				return false, fmt.Sprintf("%d running tasks", len(tasks))
			}
			id = tasks[0].ID
			b, err := os.ReadFile(filepath.Join(dir, "seen", id))
			return err == nil && string(b) == want, fmt.Sprintf("task %s read %q %v", id, b, err)
		})
		return id
	}
	first := running("a task reading version 1", versions[0])

	out := ctl("secret", "update", "db", filepath.Join(dir, "v2"))
	if !strings.Contains(out, "db@2: rolling out to service(s) app") {
		t.Errorf("secret update said %q", out)
	}
	second := running("a task reading version 2", versions[1])
	if listed := ctl("secret", "versions", "db"); !strings.Contains(listed, "db@2") || !strings.Contains(listed, "db@1") {
		t.Errorf("secret versions:\n%s", listed)
	}
	ctl("service", "rollback", "app")
	third := running("a task reading version 1 again", versions[0])
	if first == second || second == third || first == third {
		t.Errorf("tasks %s, %s, %s: each change of the secret needs a new task", first, second, third)
	}
	for _, args := range [][]string{{"secret", "ls"}, {"secret", "inspect", "db", "db@1"}, {"service", "inspect", "app"},
		{"secret", "versions", "--format", "json", "db"}} {
		ctl(args...)
	}
	for _, v := range versions {
		checkNoSecret(t, "apiaryctl's output", strings.Join(m.outputs, "\n"), v)
		checkNoSecret(t, "the daemon's log", m.m1.log.String(), v)
	}
}
