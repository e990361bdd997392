package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretSpecValidate(t *testing.T) {
	ok := func(name string, n int) *SecretSpec {
		return &SecretSpec{Annotations: Annotations{Name: name}, Data: bytes.Repeat([]byte("x"), n)}
	}
	for _, tc := range []struct {
		spec *SecretSpec
		want string // "" for valid
	}{
		{ok("db.password", 1), ""},
		{ok("a", MaxSecretSize), ""},
		{ok(strings.Repeat("a", 64), 1), ""},
		{ok("db", MaxSecretSize+1), `secret "db": data: must be at most 512000 bytes (500 KiB), got 512001`},
		{ok("db", 0), `secret "db": data: must not be empty`},
		{ok("", 1), `secret: name: must not be empty`},
		{ok("-db", 1), `name: must be at most 64 of [a-zA-Z0-9-_.]`},
		{ok("db.", 1), `name: must be at most 64`},
		{ok("d b", 1), `name: must be at most 64`},
		{ok(strings.Repeat("a", 65), 1), `name: must be at most 64`},
	} {
		err := tc.spec.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.spec.Name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want %q", tc.spec.Name, err, tc.want)
		}
	}
	c := &ConfigSpec{Annotations: Annotations{Name: "nginx.conf"}, Data: make([]byte, MaxConfigSize+1)}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `config "nginx.conf": data: must be at most`) {
		t.Errorf("oversized config: %v", err)
	}
	c.Data = c.Data[:MaxConfigSize]
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	for name, err := range map[string]error{
		"secret spec": (*SecretSpec)(nil).Validate(), "config spec": (*ConfigSpec)(nil).Validate(),
		"secret": (*Secret)(nil).Validate(), "config": (*Config)(nil).Validate(),
	} {
		if err == nil || !strings.Contains(err.Error(), "must not be nil") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestFileReferencesValidate(t *testing.T) {
	base := func() TaskSpec {
		return TaskSpec{Process: &ProcessSpec{Command: []string{"true"}}}
	}
	good := base()
	good.Secrets = []SecretReference{
		{SecretName: "db", File: &FileTarget{Name: "db", UID: "1000", GID: "1000", Mode: 0o400}},
		{SecretID: "abc", File: &FileTarget{Name: "tls/key.pem"}},
	}
	good.Configs = []ConfigReference{{ConfigName: "app", File: &FileTarget{Name: "db"}}} // another directory
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*TaskSpec)
		want string
	}{
		{"no name", func(s *TaskSpec) { s.Secrets = []SecretReference{{}} }, "secrets[0]: must name a secret"},
		{"absolute", func(s *TaskSpec) { s.Secrets = []SecretReference{{SecretName: "a", File: &FileTarget{Name: "/etc/x"}}} }, "secrets[0].file.name: must be a relative path"},
		{"dotdot", func(s *TaskSpec) {
			s.Configs = []ConfigReference{{ConfigName: "a", File: &FileTarget{Name: "a/../../x"}}}
		}, "configs[0].file.name: must be a relative path"},
		{"dot", func(s *TaskSpec) { s.Configs = []ConfigReference{{ConfigName: "a", File: &FileTarget{Name: "./x"}}} }, "configs[0].file.name"},
		{"duplicate target", func(s *TaskSpec) {
			s.Secrets = []SecretReference{{SecretName: "a", File: &FileTarget{Name: "x"}}, {SecretName: "b", File: &FileTarget{Name: "x"}}}
		}, `secrets[1].file.name: target "x" is also secrets[0]'s`},
		{"uid", func(s *TaskSpec) {
			s.Secrets = []SecretReference{{SecretName: "a", File: &FileTarget{Name: "x", UID: "root"}}}
		}, `secrets[0].file.uid: must be a number, got "root"`},
		{"mode", func(s *TaskSpec) {
			s.Secrets = []SecretReference{{SecretName: "a", File: &FileTarget{Name: "x", Mode: 0o4755}}}
		}, "secrets[0].file.mode: must be permission bits"},
		{"too many", func(s *TaskSpec) {
			for i := range MaxSecretReferences + 1 {
				s.Secrets = append(s.Secrets, SecretReference{SecretName: fmt.Sprint("s", i)})
			}
		}, "secrets: must have at most 100 entries, got 101"},
	} {
		s := base()
		tc.edit(&s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A secret's data never shows when the secret is printed or logged, and
// Redacted drops it from what the control API returns; it still travels
// in JSON, as the store and the session need it.
func TestSecretDataRedacted(t *testing.T) {
	const data = "hunter2-very-secret"
	s := &Secret{ID: "s1", Spec: SecretSpec{Annotations: Annotations{Name: "pw", Labels: map[string]string{"a": "b"}}, Data: SecretBytes(data)}}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("secret", "s", s, "data", s.Spec.Data)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("secret", "s", s, "spec", s.Spec)
	out := logs.String() + fmt.Sprintf("%v %+v %#v %s %x", s, s, s, s.Spec.Data, s.Spec.Data)
	if strings.Contains(out, data) {
		t.Fatalf("secret data printed: %s", out)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Secret
	if err := json.Unmarshal(b, &back); err != nil || string(back.Spec.Data) != data {
		t.Fatalf("JSON round trip: %v %q", err, back.Spec.Data)
	}
	r := s.Redacted()
	if r.Spec.Data != nil || string(s.Spec.Data) != data || r.Spec.Name != "pw" {
		t.Fatalf("redacted %+v, original data %q", r, s.Spec.Data)
	}
	r.Spec.Labels["a"] = "changed"
	if s.Spec.Labels["a"] != "b" {
		t.Fatal("Redacted shares the labels")
	}
	if (*Secret)(nil).Redacted() != nil || (*Secret)(nil).Copy() != nil || (*Config)(nil).Copy() != nil {
		t.Fatal("nil")
	}
}

// name@N names one version; anything else (a name, an ID, a bad number)
// is not a version reference, and what VersionRef makes parses back.
func TestVersionRef(t *testing.T) {
	for ref, want := range map[string]struct {
		name    string
		version uint64
		ok      bool
	}{
		"db@1":                    {"db", 1, true},
		"a.b-c_d@42":              {"a.b-c_d", 42, true},
		"db":                      {},
		"db@":                     {},
		"db@0":                    {},
		"db@-1":                   {},
		"db@x":                    {},
		"@3":                      {},
		"db@1@2":                  {"db@1", 2, true}, // no such name: never found
		"db@99999999999999999999": {},
	} {
		name, v, ok := ParseVersionRef(ref)
		if name != want.name || v != want.version || ok != want.ok {
			t.Errorf("ParseVersionRef(%q) = %q %d %v, want %+v", ref, name, v, ok, want)
		}
	}
	if got := VersionRef("db", 0); got != "db@1" {
		t.Errorf("VersionRef of an object from before versions: %q", got)
	}
	if name, v, ok := ParseVersionRef(VersionRef("tls.key", 7)); name != "tls.key" || v != 7 || !ok {
		t.Errorf("round trip: %q %d %v", name, v, ok)
	}
}
