package api

import (
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Secrets and configs (issue 16): data the managers keep and hand a
// node only for the tasks it runs that reference them. A secret's data
// prints as "[redacted]" (SecretBytes) and the control API never
// returns it; a config's is plain. Neither changes once created: an
// update makes a new version, a new object with its own ID and the same
// name (see Secret.Version), and moves the services that use the secret
// to it.

// Bounds on secrets and configs, from the user.
const (
	// MaxSecretSize and MaxConfigSize bound a secret's or config's data:
	// Swarm's 500 KiB. Every manager keeps it in memory and in its raft
	// log, and it travels to every node that needs it in one assignments
	// message (session.MaxAssignmentsBytes, with room for its encoding).
	MaxSecretSize = 500 * 1024
	MaxConfigSize = 500 * 1024

	// MaxClusterSecrets and MaxClusterConfigs bound how many secrets and
	// configs a cluster holds: at the size limit, 1,000 are ~500 MB that
	// every manager keeps, as much as MaxTemplateBytesTimesReplicas lets
	// one service's tasks hold.
	MaxClusterSecrets = 1_000
	MaxClusterConfigs = 1_000

	// MaxSecretReferences and MaxConfigReferences bound the secrets and
	// configs one task template references: each is a file the executor
	// writes, and at most that many payloads travel with the task.
	MaxSecretReferences = 100
	MaxConfigReferences = 100

	// MaxSecretVersions and MaxConfigVersions bound the versions of one
	// secret or config kept at once, the newest included: an older one
	// stays while a service's spec or previous spec, or a task that has
	// not ended, references it, and an update that would keep more is
	// refused until they let go. Every version counts toward
	// MaxClusterSecrets (MaxClusterConfigs).
	MaxSecretVersions = 10
	MaxConfigVersions = 10

	// maxSecretNameLength is Swarm's limit on a secret's or config's name.
	maxSecretNameLength = 64
	// maxFileTargetLength bounds a reference's File.Name (Linux's PATH_MAX
	// is 4096; a name is a file inside the task's secrets directory).
	maxFileTargetLength = 1024
)

// secretNamePattern is Swarm's rule for secret and config names: letters,
// digits, '-', '_' and '.', starting and ending with a letter or digit.
var secretNamePattern = regexp.MustCompile(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`)

// Secret is sensitive data that tasks get as files. Each version of a
// secret is an object of its own: a task references one version by ID,
// so a node is given exactly the data its task was made with, and a
// service rolled back refers to the version it had.
type Secret struct {
	ID   string     `json:"ID"`
	Meta Meta       `json:"Meta"`
	Spec SecretSpec `json:"Spec"`
	// Version numbers the secret's data under its name: 1 when created,
	// one more with each update. Zero (an object written before versions
	// existed) is version 1.
	Version uint64 `json:"Version,omitempty"`
	// Superseded marks a version a newer one replaced: the name finds the
	// newest, "name@version" (VersionRef) this one, and it is deleted once
	// no service's spec or previous spec, nor any task that has not
	// ended, references it.
	Superseded bool `json:"Superseded,omitempty"`
}

// SecretSpec is the user-owned part of a secret.
type SecretSpec struct {
	Annotations
	// Data is the secret, 1 to MaxSecretSize bytes. The control API's
	// Get and List leave it out (as Docker's do): once created, only the
	// nodes running a task that references the secret see it.
	Data SecretBytes `json:"Data,omitempty"`
}

// Config is non-sensitive data that tasks get as files, versioned as
// Secret.
type Config struct {
	ID   string     `json:"ID"`
	Meta Meta       `json:"Meta"`
	Spec ConfigSpec `json:"Spec"`
	// Version and Superseded are Secret's.
	Version    uint64 `json:"Version,omitempty"`
	Superseded bool   `json:"Superseded,omitempty"`
}

// ConfigSpec is the user-owned part of a config.
type ConfigSpec struct {
	Annotations
	// Data is the config, 1 to MaxConfigSize bytes.
	Data []byte `json:"Data,omitempty"`
}

// FileTarget is where and how a task sees a secret or config: a file
// named Name in the task's secrets (configs) directory, owned by UID:GID
// with Mode. Empty UID and GID leave the file to the task's user; a zero
// Mode is the executor's default (process: 0400 for secrets, 0444 for
// configs; Docker: 0444, Docker's).
type FileTarget struct {
	// Name is a relative path inside the directory ("db-password",
	// "tls/key.pem"), without "." or ".." elements; empty, the control
	// API names the file after the secret or config.
	Name string      `json:"Name"`
	UID  string      `json:"UID,omitempty"`
	GID  string      `json:"GID,omitempty"`
	Mode os.FileMode `json:"Mode,omitempty"`
}

// SecretReference is a task template's use of a secret, as Swarm's. A
// service names the secret by SecretName (or ID); the control API stores
// both the ID and the name it resolved to.
type SecretReference struct {
	SecretID   string      `json:"SecretID,omitempty"`
	SecretName string      `json:"SecretName,omitempty"`
	File       *FileTarget `json:"File,omitempty"`
}

// ConfigReference is a task template's use of a config, as Swarm's.
type ConfigReference struct {
	ConfigID   string      `json:"ConfigID,omitempty"`
	ConfigName string      `json:"ConfigName,omitempty"`
	File       *FileTarget `json:"File,omitempty"`
}

// VersionRef names one version of a secret or config: "name@version".
// '@' is in no name, so it never names anything else.
func VersionRef(name string, version uint64) string {
	return name + "@" + strconv.FormatUint(max(version, 1), 10)
}

// ParseVersionRef splits a reference made by VersionRef; ok is false for
// any other reference (a name, an ID).
func ParseVersionRef(ref string) (name string, version uint64, ok bool) {
	i := strings.LastIndexByte(ref, '@')
	if i <= 0 {
		return "", 0, false
	}
	v, err := strconv.ParseUint(ref[i+1:], 10, 64)
	if err != nil || v == 0 {
		return "", 0, false
	}
	return ref[:i], v, true
}

// DataVersion is the secret's version, 1 for objects written before
// versions existed.
func (s *Secret) DataVersion() uint64 { return max(s.Version, 1) }

// DataVersion is the config's version, as Secret's.
func (c *Config) DataVersion() uint64 { return max(c.Version, 1) }

// GetID implements Object.
func (s *Secret) GetID() string { return s.ID }

// GetMeta implements Object.
func (s *Secret) GetMeta() Meta { return s.Meta }

// SetMeta implements Object.
func (s *Secret) SetMeta(m Meta) { s.Meta = m }

// Kind implements Object.
func (s *Secret) Kind() Kind { return KindSecret }

// CopyObject implements Object.
func (s *Secret) CopyObject() Object { return s.Copy() }

// Copy returns a deep copy.
func (s *Secret) Copy() *Secret {
	if s == nil {
		return nil
	}
	c := *s
	c.Spec = s.Spec.Copy()
	return &c
}

// Copy returns a deep copy.
func (s SecretSpec) Copy() SecretSpec {
	s.Annotations = s.Annotations.Copy()
	s.Data = SecretBytes(copySlice([]byte(s.Data)))
	return s
}

// Redacted returns a copy without the data, as the control API hands a
// secret out.
func (s *Secret) Redacted() *Secret {
	if s == nil {
		return nil
	}
	c := *s
	c.Spec.Annotations = s.Spec.Annotations.Copy()
	c.Spec.Data = nil
	return &c
}

// GetID implements Object.
func (c *Config) GetID() string { return c.ID }

// GetMeta implements Object.
func (c *Config) GetMeta() Meta { return c.Meta }

// SetMeta implements Object.
func (c *Config) SetMeta(m Meta) { c.Meta = m }

// Kind implements Object.
func (c *Config) Kind() Kind { return KindConfig }

// CopyObject implements Object.
func (c *Config) CopyObject() Object { return c.Copy() }

// Copy returns a deep copy.
func (c *Config) Copy() *Config {
	if c == nil {
		return nil
	}
	o := *c
	o.Spec = c.Spec.Copy()
	return &o
}

// Copy returns a deep copy.
func (s ConfigSpec) Copy() ConfigSpec {
	s.Annotations = s.Annotations.Copy()
	s.Data = copySlice(s.Data)
	return s
}

func copyRefs[T any](refs []T, fileOf func(*T) **FileTarget) []T {
	if refs == nil {
		return nil
	}
	out := append([]T(nil), refs...)
	for i := range out {
		f := fileOf(&out[i])
		*f = copyPtr(*f)
	}
	return out
}

func copySecretRefs(refs []SecretReference) []SecretReference {
	return copyRefs(refs, func(r *SecretReference) **FileTarget { return &r.File })
}

func copyConfigRefs(refs []ConfigReference) []ConfigReference {
	return copyRefs(refs, func(r *ConfigReference) **FileTarget { return &r.File })
}

// Validate checks a secret spec: Swarm's name rule, labels, and 1 to
// MaxSecretSize bytes of data.
func (s *SecretSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "secret", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "secret", name: s.Name}
	validateSecretLike(v, s.Annotations, len(s.Data), MaxSecretSize)
	return v.err()
}

// Validate checks a config spec, as SecretSpec's.
func (s *ConfigSpec) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "config", Field: "spec", Problem: "must not be nil"}
	}
	v := &validator{kind: "config", name: s.Name}
	validateSecretLike(v, s.Annotations, len(s.Data), MaxConfigSize)
	return v.err()
}

// Validate checks the secret's spec.
func (s *Secret) Validate() error {
	if s == nil {
		return &ValidationError{Kind: "secret", Field: "secret", Problem: "must not be nil"}
	}
	return s.Spec.Validate()
}

// Validate checks the config's spec.
func (c *Config) Validate() error {
	if c == nil {
		return &ValidationError{Kind: "config", Field: "config", Problem: "must not be nil"}
	}
	return c.Spec.Validate()
}

func validateSecretLike(v *validator, a Annotations, size, limit int) {
	switch {
	case a.Name == "":
		v.addf("name", "must not be empty")
	case len(a.Name) > maxSecretNameLength || !secretNamePattern.MatchString(a.Name):
		v.addf("name", "must be at most %d of [a-zA-Z0-9-_.], starting and ending with a letter or digit, got %q", maxSecretNameLength, a.Name)
	}
	v.labels("labels", a.Labels)
	v.specBytes("labels", a.Labels)
	switch {
	case size == 0:
		v.addf("data", "must not be empty")
	case size > limit:
		v.addf("data", "must be at most %d bytes (500 KiB), got %d", limit, size)
	}
}

// validateFileRefs checks a template's secret or config references: each
// names its object, its file target is a clean relative path, its owner
// numeric and its mode permission bits; no two targets are the same file.
// what is "secret" or "config"; refs gives each reference's (name, ID,
// target).
func validateFileRefs(v *validator, p, what string, n, limit int, ref func(i int) (name, id string, f *FileTarget)) {
	if !v.maxItems(p, n, limit) {
		return
	}
	targets := map[string]int{}
	for i := range n {
		rp := fieldIndex(p, i)
		name, id, f := ref(i)
		if name == "" && id == "" {
			v.addf(rp, "must name a %s (%s_name or %s_id)", what, what, what)
		}
		if f == nil {
			continue
		}
		fp := fieldPath(rp, "file")
		if f.Name != "" && !validFileTarget(f.Name) {
			v.addf(fieldPath(fp, "name"), "must be a relative path of at most %d bytes without \".\" or \"..\" elements, got %q", maxFileTargetLength, f.Name)
		} else if j, dup := targets[f.Name]; dup {
			v.addf(fieldPath(fp, "name"), "target %q is also %s[%d]'s", f.Name, p, j)
		} else {
			targets[f.Name] = i
		}
		for _, o := range []struct{ field, val string }{{"uid", f.UID}, {"gid", f.GID}} {
			if o.val == "" {
				continue
			}
			if _, err := strconv.ParseUint(o.val, 10, 32); err != nil {
				v.addf(fieldPath(fp, o.field), "must be a number, got %q", o.val)
			}
		}
		if f.Mode&^os.ModePerm != 0 {
			v.addf(fieldPath(fp, "mode"), "must be permission bits (at most 0777), got %#o", uint32(f.Mode))
		}
	}
}

// validFileTarget accepts a clean relative path with no "." or ".."
// element.
func validFileTarget(name string) bool {
	if name == "" || len(name) > maxFileTargetLength || strings.HasPrefix(name, "/") ||
		strings.ContainsRune(name, 0) || path.Clean(name) != name {
		return false
	}
	for _, e := range strings.Split(name, "/") {
		if e == "." || e == ".." {
			return false
		}
	}
	return true
}

func validateTaskFileRefs(v *validator, p string, t *TaskSpec) {
	validateFileRefs(v, fieldPath(p, "secrets"), "secret", len(t.Secrets), MaxSecretReferences, func(i int) (string, string, *FileTarget) {
		r := t.Secrets[i]
		return r.SecretName, r.SecretID, r.File
	})
	validateFileRefs(v, fieldPath(p, "configs"), "config", len(t.Configs), MaxConfigReferences, func(i int) (string, string, *FileTarget) {
		r := t.Configs[i]
		return r.ConfigName, r.ConfigID, r.File
	})
}
