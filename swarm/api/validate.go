package api

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// ValidationError is one problem of a spec: which object, which field, which
// rule. Validate methods return every problem of a spec joined with
// errors.Join, so the message lists them one per line while
//
//	var ve *api.ValidationError
//	errors.As(err, &ve)
//
// finds the first; ValidationErrors returns them all.
type ValidationError struct {
	// Kind is the object's kind: "service", "node", "cluster", "network",
	// "task" or "task spec".
	Kind string
	// Name is the object's name (or ID when it has no name).
	Name string
	// Field is a short, lower-case, dotted path in the words of the Docker
	// CLI, e.g. "replicas" or "task_template.placement.constraints[1]".
	Field string
	// Problem states the rule and what was found, e.g. "must be >= 0, got -1".
	Problem string
}

// Error returns `<kind> "<name>": <field>: <problem>`, e.g.
// `service "web": replicas: must be >= 0, got -1`. When there is no name
// (a service spec that lacks one, a lone task spec) the quoted name is left
// out rather than printed as "", which reads like a bug.
func (e *ValidationError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("%s: %s: %s", e.Kind, e.Field, e.Problem)
	}
	return fmt.Sprintf("%s %q: %s: %s", e.Kind, e.Name, e.Field, e.Problem)
}

// ValidationErrors returns every *ValidationError in err's tree, in order,
// for callers (the control API, the Docker API layer) that report problems
// one by one.
func ValidationErrors(err error) []*ValidationError {
	var out []*ValidationError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *ValidationError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// validator collects the problems of one object so that a user fixes a spec
// in one round instead of one error per attempt.
type validator struct {
	kind, name string
	errs       []error
}

func (v *validator) addf(field, format string, args ...any) {
	v.errs = append(v.errs, &ValidationError{
		Kind:    v.kind,
		Name:    v.name,
		Field:   field,
		Problem: fmt.Sprintf(format, args...),
	})
}

func (v *validator) err() error { return errors.Join(v.errs...) }

// fieldPath joins a field to its parent's path. Validation names every
// field it checks, most of them valid, and these joins were a twentieth
// of the bytes a manager allocated per service write (issue 14): the
// paths joined already are kept (fieldPaths) and given again.
func fieldPath(prefix, field string) string {
	if prefix == "" {
		return field
	}
	k := pathKey{prefix, field}
	fieldPaths.RLock()
	p, ok := fieldPaths.m[k]
	fieldPaths.RUnlock()
	if ok {
		return p
	}
	p = prefix + "." + field
	fieldPaths.Lock()
	if len(fieldPaths.m) < maxFieldPaths {
		fieldPaths.m[k] = p
	}
	fieldPaths.Unlock()
	return p
}

// pathKey is a parent's path and a field's name.
type pathKey struct{ prefix, field string }

// fieldPaths are the paths fieldPath joined, at most maxFieldPaths of
// them: the fields of the API's types number in the hundreds, and
// elements of lists (a prefix with an index) take what is left; past the
// bound a path is joined anew each time, as it was before.
var fieldPaths = struct {
	sync.RWMutex
	m map[pathKey]string
}{m: map[pathKey]string{}}

const maxFieldPaths = 4096

// fieldIndex names element i of a list field.
func fieldIndex(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// maxNameLength is Swarm's limit, which is also a DNS label's: service names
// become DNS names on the cluster's networks.
const maxNameLength = 63

// namePattern is a DNS-label-like name, the form service and network names
// must take so they resolve in the cluster's DNS.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (v *validator) checkName(field, name string) {
	switch {
	case name == "":
		v.addf(field, "must not be empty")
	case len(name) > maxNameLength:
		v.addf(field, "must be at most %d characters, got %d", maxNameLength, len(name))
	case !namePattern.MatchString(name):
		v.addf(field, "must start with a letter or digit and contain only letters, digits, '_', '.' and '-', got %q", name)
	}
}

// labels checks label keys; values are free text. Keys are visited in order
// so the same spec always gives the same message.
func (v *validator) labels(field string, labels map[string]string) {
	if !v.maxItems(field, len(labels), MaxLabels) {
		return
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.TrimSpace(k) == "" {
			v.addf(field, "keys must not be empty, got %q", k)
		}
	}
}

func (v *validator) nonNegative(field string, d time.Duration) {
	if d < 0 {
		v.addf(field, "must be >= 0, got %s", d)
	}
}

// oneOf checks an enumerated string. allowEmpty is for fields whose empty
// value means "the default" (ApplyDefaults fills it in).
func (v *validator) oneOf(field, got string, allowEmpty bool, want ...string) {
	if got == "" && allowEmpty {
		return
	}
	for _, w := range want {
		if got == w {
			return
		}
	}
	v.addf(field, "must be %s, got %q", orList(want), got)
}

// orList writes "a, b or c".
func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// env checks KEY=VALUE entries: a KEY is needed for the entry to mean
// anything, and an entry without '=' is a common mistake (a flag pasted
// into the list).
func (v *validator) env(field string, env []string) {
	if !v.maxItems(field, len(env), MaxEnv) {
		return
	}
	for i, e := range env {
		if k, _, ok := strings.Cut(e, "="); !ok || strings.TrimSpace(k) == "" {
			v.addf(fieldIndex(field, i), "must be KEY=VALUE with a non-empty KEY, got %q", e)
		}
	}
}
