package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// secret update and config update make a new version from standard input
// or a file and move the services using the old one to it; ls shows one
// row a name with its version, NAME@N and versions show older ones,
// service rollback goes back; the data is in no output; bad input is
// refused naming why, changing nothing.
func TestSecretUpdateCommands(t *testing.T) {
	run := manager(t)
	withStdin(t, "first-password", func() { must(t, run, "secret", "create", "--label", "env=prod", "db", "-") })
	withStdin(t, "a=1", func() { must(t, run, "config", "create", "app.conf", "-") })
	v1 := inspectJSON[api.Secret](t, run, "secret", "inspect", "db")
	must(t, run, "service", "create", "-d", "--name", "web", "--secret", "db", "--config", "app.conf", "--", "/bin/app")

	var v2ID string
	withStdin(t, "second-password", func() { v2ID = strings.TrimSpace(must(t, run, "secret", "update", "db", "-")) })
	v2 := inspectJSON[api.Secret](t, run, "secret", "inspect", "db")
	if v2.ID != v2ID || v2.ID == v1.ID || v2.Version != 2 || v2.Spec.Labels["env"] != "prod" {
		t.Fatalf("after update: %+v (printed %s)", v2, v2ID)
	}
	if old := inspectJSON[api.Secret](t, run, "secret", "inspect", "db@1"); old.ID != v1.ID || !old.Superseded {
		t.Errorf("db@1: %+v", old)
	}
	web := inspectJSON[api.Service](t, run, "service", "inspect", "web")
	if web.Spec.TaskTemplate.Secrets[0].SecretID != v2.ID || web.PreviousSpec.TaskTemplate.Secrets[0].SecretID != v1.ID {
		t.Errorf("web's secrets: %+v, previous %+v", web.Spec.TaskTemplate.Secrets, web.PreviousSpec.TaskTemplate.Secrets)
	}
	if _, err := run("secret", "rm", "db@1"); err == nil || !strings.Contains(err.Error(), `("web" only in the previous spec`) {
		t.Errorf("secret rm db@1 while web's previous spec uses it: %v", err)
	}
	ls := must(t, run, "secret", "ls")
	if !strings.Contains(ls, "VERSION") || strings.Count(ls, "\ndb ") > 0 || !strings.Contains(ls, v2.ID) || strings.Contains(ls, v1.ID) {
		t.Errorf("secret ls shows the newest version only:\n%s", ls)
	}
	versions := must(t, run, "secret", "versions", "db")
	if !strings.Contains(versions, "db@2") || !strings.Contains(versions, "db@1") || strings.Index(versions, "db@2") > strings.Index(versions, "db@1") {
		t.Errorf("secret versions, newest first:\n%s", versions)
	}
	if got := strings.Fields(must(t, run, "secret", "versions", "-q", "db")); len(got) != 2 || got[0] != v2.ID || got[1] != v1.ID {
		t.Errorf("secret versions -q: %v", got)
	}
	everything := ls + versions + must(t, run, "secret", "inspect", "db", "db@1") + must(t, run, "secret", "versions", "--format", "json", "db") +
		must(t, run, "service", "inspect", "web")
	if strings.Contains(everything, "password") {
		t.Fatalf("a secret's data was printed:\n%s", everything)
	}

	file := t.TempDir() + "/app.conf"
	writeFile(t, file, "a=2")
	must(t, run, "config", "update", "--label", "v=2", "app.conf", file)
	cfg := inspectJSON[api.Config](t, run, "config", "inspect", "app.conf")
	if string(cfg.Spec.Data) != "a=2" || cfg.Version != 2 || cfg.Spec.Labels["v"] != "2" {
		t.Errorf("config after update: %+v", cfg)
	}
	if old := inspectJSON[api.Config](t, run, "config", "inspect", "app.conf@1"); string(old.Spec.Data) != "a=1" {
		t.Errorf("app.conf@1: %+v", old)
	}

	// web's previous spec moved on to secret version 2: version 1 is
	// collected (web's tasks never ran: no worker).
	deadline := time.Now().Add(20 * time.Second)
	for len(strings.Fields(must(t, run, "secret", "versions", "-q", "db"))) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("db@1 still kept:\n%s", must(t, run, "secret", "versions", "db"))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Rollback returns web to the config's version 1 (its last change).
	must(t, run, "service", "rollback", "-d", "web")
	web = inspectJSON[api.Service](t, run, "service", "inspect", "web")
	if web.Spec.TaskTemplate.Configs[0].ConfigName != "app.conf" || web.Spec.TaskTemplate.Configs[0].ConfigID == cfg.ID {
		t.Errorf("web rolled back: configs %+v", web.Spec.TaskTemplate.Configs)
	}

	big := t.TempDir() + "/big"
	writeFile(t, big, strings.Repeat("x", api.MaxSecretSize+1))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "update", "db", big}, "more than 512000 bytes"},
		{[]string{"secret", "update", "nope", file}, `secret "nope"`},
		{[]string{"secret", "update", "db"}, "accepts 2 arg(s)"},
		{[]string{"secret", "update", "--label", "x", "db", file}, `--label "x": want K=V`},
		{[]string{"secret", "rm", "db"}, `secret "db" is used by service(s) "web"`},
	} {
		before := must(t, run, "service", "inspect", "web")
		secrets := must(t, run, "secret", "versions", "--format", "json", "db")
		out, err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("apiaryctl %s: %v %s; want an error naming %s", strings.Join(c.args, " "), err, out, c.want)
		}
		if after := must(t, run, "service", "inspect", "web"); after != before {
			t.Errorf("apiaryctl %s changed service web", strings.Join(c.args, " "))
		}
		if after := must(t, run, "secret", "versions", "--format", "json", "db"); after != secrets {
			t.Errorf("apiaryctl %s changed the secrets", strings.Join(c.args, " "))
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
