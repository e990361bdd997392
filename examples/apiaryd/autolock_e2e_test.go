//go:build unix

package main_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ctlIn runs apiaryctl against node's socket with stdin.
func (e *e2e) ctlIn(node, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.bin, "apiaryctl"), append([]string{"--socket", filepath.Join(e.procs[node].dir, "control.sock")}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("apiaryctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Issue 16's autolock with the real binaries: apiaryd init --autolock
// prints the unlock key; no file of the manager's data dir holds a
// private key, the join token secrets, the key or a secret's bytes; the
// restarted daemon waits locked (its socket refuses the control API and a
// wrong key, saying so) until apiaryctl swarm unlock gives it the key on
// stdin, and then serves the secret it had.
func TestBinariesAutolock(t *testing.T) {
	e := startupE2E(t)
	addr := addr3(t, 16)
	m1 := e.launch("m1", addr, "077", "init", "--listen-addr", addr, "--autolock", "--executor", "fake", "--log-level", "warn")
	e.waitAnswers("m1")
	key, err := e.ctl("m1", "swarm", "unlock-key", "-q")
	if err != nil {
		t.Fatal(err)
	}
	key = strings.TrimSpace(key)
	if !strings.HasPrefix(key, "APKEY-1-") || !strings.Contains(m1.log.String(), key) {
		t.Fatalf("unlock key %q; init printed:\n%s", key, m1.log.String())
	}
	dir := t.TempDir()
	secret := "autolock-secret-" + fmt.Sprint(time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(dir, "s"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctl("m1", "secret", "create", "db", filepath.Join(dir, "s")); err != nil {
		t.Fatal(err)
	}
	var forbidden []string
	for _, role := range []string{"worker", "manager"} {
		tok, err := e.ctl("m1", "swarm", "join-token", role, "-q")
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(strings.TrimSpace(tok), "-")
		forbidden = append(forbidden, parts[len(parts)-1])
	}
	forbidden = append(forbidden, "PRIVATE KEY", key, secret, base64.StdEncoding.EncodeToString([]byte(secret)))
	m1.stop(t)
	filepath.WalkDir(m1.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range forbidden {
			if bytes.Contains(b, []byte(f)) {
				t.Errorf("%s holds %q", p, f)
			}
		}
		return nil
	})

	m1 = e.launch("m1", addr, "077", "run", "--log-level", "warn")
	e.waitFor("the locked socket", 30*time.Second, func() (bool, string) {
		out, err := e.ctl("m1", "node", "ls")
		return err != nil && strings.Contains(out, "locked"), fmt.Sprint(out, err)
	})
	if out, err := e.ctlIn("m1", "APKEY-1-"+strings.Repeat("A", 43)+"\n", "swarm", "unlock"); err == nil || !strings.Contains(out, "unlock key is wrong") {
		t.Fatalf("a wrong key: %v %s", err, out)
	}
	if out, err := e.ctlIn("m1", "", "swarm", "unlock"); err == nil || !strings.Contains(out, "no unlock key on stdin") {
		t.Fatalf("no key: %v %s", err, out)
	}
	if _, err := e.ctlIn("m1", key+"\n", "swarm", "unlock"); err != nil {
		t.Fatal(err)
	}
	e.waitAnswers("m1")
	if _, err := e.ctl("m1", "secret", "inspect", "db"); err != nil {
		t.Fatal(err)
	}
	if out, err := e.ctl("m1", "swarm", "update", "--autolock=false"); err != nil {
		t.Fatal(out, err)
	}
	e.waitFor("the key file beside the data", 30*time.Second, func() (bool, string) {
		_, err := os.Stat(filepath.Join(m1.dir, "encryption", "kek"))
		return err == nil, fmt.Sprint(err)
	})
	m1.stop(t)
	e.launch("m1", addr, "077", "run", "--log-level", "warn")
	e.waitAnswers("m1")
}
