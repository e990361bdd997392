package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// withStdin runs fn with os.Stdin reading data (cobra's InOrStdin falls
// back to it).
func withStdin(t *testing.T, data string, fn func()) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old; f.Close() }()
	fn()
}

// The secret and config commands and the service flags that use them,
// through a manager's control socket: created from a file and from
// standard input, listed, inspected (never a secret's data), referenced
// by services in both of docker's forms, added and removed on update;
// one in use is not removed; bad input is refused naming the flag or the
// field, and changes nothing.
func TestSecretCommands(t *testing.T) {
	run := manager(t)
	const data = "correct-horse-battery-staple"
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	dbID := strings.TrimSpace(must(t, run, "secret", "create", "--label", "env=prod", "db", file))
	withStdin(t, "key-material", func() { must(t, run, "secret", "create", "tls", "-") })
	withStdin(t, "listen 80;", func() { must(t, run, "config", "create", "-l", "a=b", "nginx.conf", "-") })

	ls := must(t, run, "secret", "ls")
	for _, want := range []string{"ID", "NAME", "CREATED", "UPDATED", dbID, "db", "tls"} {
		if !strings.Contains(ls, want) {
			t.Errorf("secret ls lacks %q:\n%s", want, ls)
		}
	}
	if got := strings.TrimSpace(must(t, run, "secret", "ls", "-q", "--filter", "label=env=prod")); got != dbID {
		t.Errorf("secret ls -q --filter label=env=prod: %q, want %s", got, dbID)
	}
	sec := inspectJSON[api.Secret](t, run, "secret", "inspect", "db")
	if sec.ID != dbID || sec.Spec.Data != nil || sec.Spec.Labels["env"] != "prod" {
		t.Errorf("secret inspect: %+v", sec)
	}
	everything := ls + must(t, run, "secret", "inspect", "db", "tls") + must(t, run, "secret", "ls", "--format", "json")
	if strings.Contains(everything, data) || strings.Contains(everything, "key-material") {
		t.Fatalf("a secret's data was printed:\n%s", everything)
	}
	if cfg := inspectJSON[api.Config](t, run, "config", "inspect", "nginx.conf"); string(cfg.Spec.Data) != "listen 80;" || cfg.Spec.Labels["a"] != "b" {
		t.Errorf("config inspect: %+v", cfg)
	}
	if got := must(t, run, "config", "ls"); !strings.Contains(got, "nginx.conf") {
		t.Errorf("config ls:\n%s", got)
	}

	must(t, run, "service", "create", "-d", "--name", "web", "--secret", "db",
		"--secret", "source=tls,target=certs/tls.key,uid=1000,gid=1000,mode=0400",
		"--config", "src=nginx.conf,target=nginx/nginx.conf,mode=444", "--", "/bin/app")
	web := inspectJSON[api.Service](t, run, "service", "inspect", "web")
	tls := inspectJSON[api.Secret](t, run, "secret", "inspect", "tls")
	want := []api.SecretReference{
		{SecretID: dbID, SecretName: "db", File: &api.FileTarget{Name: "db"}},
		{SecretID: tls.ID, SecretName: "tls", File: &api.FileTarget{Name: "certs/tls.key", UID: "1000", GID: "1000", Mode: 0o400}},
	}
	if got := web.Spec.TaskTemplate.Secrets; !reflect.DeepEqual(got, want) {
		t.Errorf("service secrets %+v, want %+v", got, want)
	}
	if c := web.Spec.TaskTemplate.Configs; len(c) != 1 || c[0].ConfigName != "nginx.conf" || c[0].File.Mode != 0o444 || c[0].File.Name != "nginx/nginx.conf" {
		t.Errorf("service configs %+v", c)
	}

	must(t, run, "service", "update", "-d", "--secret-rm", "tls", "--config-rm", "nginx.conf", "--secret-add", "source=tls,target=other", "web")
	upd := inspectJSON[api.Service](t, run, "service", "inspect", "web")
	if s := upd.Spec.TaskTemplate.Secrets; len(s) != 2 || s[1].File.Name != "other" || len(upd.Spec.TaskTemplate.Configs) != 0 {
		t.Errorf("after update: secrets %+v configs %+v", s, upd.Spec.TaskTemplate.Configs)
	}

	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, api.MaxSecretSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "rm", "db"}, `secret "db" is used by service(s) "web"`},
		{[]string{"service", "update", "--secret-add", "nope", "web"}, `task_template.secrets[2]: secret "nope" not found`},
		{[]string{"service", "create", "--name", "x", "--secret", "nope", "--", "/bin/app"}, `task_template.secrets[0]: secret "nope" not found`},
		{[]string{"service", "create", "--name", "x", "--config", "nope", "--", "/bin/app"}, `task_template.configs[0]: config "nope" not found`},
		{[]string{"service", "create", "--name", "x", "--secret", "source=db,mode=9", "--", "/bin/app"}, `--secret "source=db,mode=9": mode "9": want octal`},
		{[]string{"service", "create", "--name", "x", "--secret", "target=x", "--", "/bin/app"}, `source: missing`},
		{[]string{"service", "create", "--name", "x", "--secret", "source=db,target=../x", "--", "/bin/app"}, `task_template.secrets[0].file.name: must be a relative path`},
		{[]string{"service", "update", "--secret-rm", "nope", "web"}, `--secret-rm "nope": the service has no such secret`},
		{[]string{"secret", "create", "big", big}, "more than 512000 bytes"},
		{[]string{"secret", "create", "db", file}, `name "db" is taken`},
		{[]string{"secret", "create", "x.", file}, `secret "x.": name: must be at most 64`},
		{[]string{"secret", "create", "y", filepath.Join(t.TempDir(), "missing")}, "no such file"},
	} {
		before := must(t, run, "service", "inspect", "web")
		secrets := must(t, run, "secret", "ls", "--format", "json")
		out, err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("apiaryctl %s: %v %s; want an error naming %s", strings.Join(c.args, " "), err, out, c.want)
		}
		if after := must(t, run, "service", "inspect", "web"); after != before {
			t.Errorf("apiaryctl %s changed service web", strings.Join(c.args, " "))
		}
		if after := must(t, run, "secret", "ls", "--format", "json"); after != secrets {
			t.Errorf("apiaryctl %s changed the secrets", strings.Join(c.args, " "))
		}
	}
	must(t, run, "service", "rm", "web")
	must(t, run, "secret", "rm", "db", "tls")
	must(t, run, "config", "rm", "nginx.conf")
	if got := strings.TrimSpace(must(t, run, "secret", "ls", "-q") + must(t, run, "config", "ls", "-q")); got != "" {
		t.Errorf("left after rm: %q", got)
	}
}

// FuzzFileRef: what parseFileRef accepts, written back in the long form,
// parses to the same reference; what it refuses it refuses with a reason.
func FuzzFileRef(f *testing.F) {
	for _, s := range []string{"db", "source=db,target=x/y,uid=1,gid=2,mode=0400", "src=a,mode=444", "source=,target=x", "a,b", "mode=8", "source=a,mode=1777777777777"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, file, err := parseFileRef(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refused without a reason")
			}
			return
		}
		long := "source=" + name
		if file != nil {
			for _, kv := range [][2]string{{"target", file.Name}, {"uid", file.UID}, {"gid", file.GID}} {
				if kv[1] != "" {
					long += "," + kv[0] + "=" + kv[1]
				}
			}
			if file.Mode != 0 {
				long += ",mode=" + strconv.FormatUint(uint64(file.Mode), 8)
			}
		}
		name2, file2, err := parseFileRef(long)
		if err != nil || name2 != name || !reflect.DeepEqual(file2, file) {
			t.Fatalf("%q -> %q %+v; %q -> %q %+v %v", s, name, file, long, name2, file2, err)
		}
	})
}
