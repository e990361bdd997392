package controlapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// Secrets and configs (issue 16) are written and read the same way; what
// differs is in a dataKind. A secret's data is never handed out again:
// every secret the API returns is Redacted.

// dataKind is what the shared code needs to know of secrets or configs.
type dataKind[T api.Object] struct {
	kind  string // "secret" or "config", for messages
	table api.Kind
	// limit bounds how many the cluster holds.
	limit  int
	get    func(store.ReadTx) func(string) T
	find   func(store.ReadTx) func(store.By) ([]T, error)
	create func(store.Tx, T) error
	delete func(store.Tx, string) error
	annot  func(T) api.Annotations
	byRef  func(id string) store.By
	// out is what a caller gets: a copy, without the data where it must
	// not leave the managers (of a shared object, so it must copy).
	out func(T) T
	// listed is what a listing shows: a copy without the data.
	listed func(T) T

	// Versions (secretversions.go).
	maxVersions int
	update      func(store.Tx, T) error
	// version reads a version's number and whether a newer one replaced
	// it; supersede marks a copy replaced.
	version   func(T) (n uint64, superseded bool)
	supersede func(T) T
	// retarget points a template's references to any of from at to, the
	// newest version of name, and reports whether it changed one.
	retarget func(t *api.TaskSpec, from map[string]bool, to, name string) bool
}

var secrets = dataKind[*api.Secret]{
	kind: "secret", table: api.KindSecret, limit: api.MaxClusterSecrets,
	get:    func(tx store.ReadTx) func(string) *api.Secret { return tx.GetSecret },
	find:   func(tx store.ReadTx) func(store.By) ([]*api.Secret, error) { return tx.FindSecrets },
	create: func(tx store.Tx, s *api.Secret) error { return tx.CreateSecret(s) },
	delete: func(tx store.Tx, id string) error { return tx.DeleteSecret(id) },
	annot:  func(s *api.Secret) api.Annotations { return s.Spec.Annotations },
	byRef:  store.ByReferencedSecret,
	out:    (*api.Secret).Redacted,
	listed: (*api.Secret).Redacted,

	maxVersions: api.MaxSecretVersions,
	update:      func(tx store.Tx, s *api.Secret) error { return tx.UpdateSecret(s) },
	version:     func(s *api.Secret) (uint64, bool) { return s.DataVersion(), s.Superseded },
	supersede: func(s *api.Secret) *api.Secret {
		c := s.Copy()
		c.Superseded = true
		return c
	},
	retarget: func(t *api.TaskSpec, from map[string]bool, to, name string) bool {
		changed := false
		for i := range t.Secrets {
			if r := &t.Secrets[i]; from[r.SecretID] {
				r.SecretID, r.SecretName, changed = to, name, true
			}
		}
		return changed
	},
}

var configs = dataKind[*api.Config]{
	kind: "config", table: api.KindConfig, limit: api.MaxClusterConfigs,
	get:    func(tx store.ReadTx) func(string) *api.Config { return tx.GetConfig },
	find:   func(tx store.ReadTx) func(store.By) ([]*api.Config, error) { return tx.FindConfigs },
	create: func(tx store.Tx, c *api.Config) error { return tx.CreateConfig(c) },
	delete: func(tx store.Tx, id string) error { return tx.DeleteConfig(id) },
	annot:  func(c *api.Config) api.Annotations { return c.Spec.Annotations },
	byRef:  store.ByReferencedConfig,
	out:    (*api.Config).Copy,
	listed: func(c *api.Config) *api.Config {
		o := *c
		o.Spec.Annotations = c.Spec.Annotations.Copy()
		o.Spec.Data = nil
		return &o
	},

	maxVersions: api.MaxConfigVersions,
	update:      func(tx store.Tx, c *api.Config) error { return tx.UpdateConfig(c) },
	version:     func(c *api.Config) (uint64, bool) { return c.DataVersion(), c.Superseded },
	supersede: func(c *api.Config) *api.Config {
		o := c.Copy()
		o.Superseded = true
		return o
	},
	retarget: func(t *api.TaskSpec, from map[string]bool, to, name string) bool {
		changed := false
		for i := range t.Configs {
			if r := &t.Configs[i]; from[r.ConfigID] {
				r.ConfigID, r.ConfigName, changed = to, name, true
			}
		}
		return changed
	},
}

// createData writes o, whose spec was validated, unless the cluster holds
// the most of its kind already.
func createData[T api.Object](ctx context.Context, s *Server, k dataKind[T], o T) (T, error) {
	name := k.annot(o).Name
	err := s.store.UpdateContext(ctx, func(tx store.Tx) error {
		if n := tx.Count(k.table); n >= k.limit {
			return invalid("%s %q: the cluster has %d %ss, the most it may have", k.kind, name, n, k.kind)
		}
		return k.create(tx, o)
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("create %s %q: %w", k.kind, name, err)
	}
	return getData(s, k, o.GetID())
}

// getData returns one by ID, name or unique ID prefix, as k.out gives it.
func getData[T api.Object](s *Server, k dataKind[T], ref string) (T, error) {
	var out T
	var err error
	// Shared: the stored object is not copied with its data only for the
	// copy to drop it; out copies what it returns.
	s.store.ViewShared(func(tx store.ReadTx) { out, err = lookupData(tx, k, ref) })
	if err != nil {
		return out, err
	}
	return k.out(out), nil
}

// listData returns the newest version of those that match filter, by
// name, without their data (as Docker lists them: one row a name).
func listData[T api.Object](s *Server, k dataKind[T], filter control.ObjectFilter) ([]T, error) {
	var all []T
	var err error
	s.store.ViewShared(func(tx store.ReadTx) { all, err = k.find(tx)(store.All) })
	if err != nil {
		return nil, err
	}
	var out []T
	for _, o := range all {
		if _, superseded := k.version(o); superseded {
			continue
		}
		if objectMatches(o.GetID(), k.annot(o), filter) {
			out = append(out, k.listed(o))
		}
	}
	sortByName(out, func(x T) string { return k.annot(x).Name }, func(x T) string { return x.GetID() })
	return out, nil
}

// removeData deletes one that no service references, with every version
// of it kept (ref names the newest: by name, or by its ID), or one
// superseded version (ref is "name@version" or its ID). A service whose
// spec or previous spec (what a rollback brings back) references what
// would be deleted refuses it, ErrInUse naming the services. Tasks of an
// older template that still reference it keep running (their node keeps
// what it was given), as in Swarm.
func removeData[T api.Object](ctx context.Context, s *Server, k dataKind[T], ref string) error {
	err := s.updateRetrying(ctx, func(tx store.Tx) error {
		o, err := lookupData(tx, k, ref)
		if err != nil {
			return err
		}
		targets := []T{o}
		if _, superseded := k.version(o); !superseded {
			if targets, err = k.find(tx)(store.ByVersionsOf(k.annot(o).Name)); err != nil {
				return err
			}
		}
		users, err := dataUsers(tx, k, targets)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return previousOnly(inUse(k.kind, k.annot(o).Name, users), k, users, targets)
		}
		for _, v := range targets {
			if err := k.delete(tx, v.GetID()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove %s %q: %w", k.kind, ref, err)
	}
	return nil
}

// previousOnly adds to err which users hold targets in their previous
// spec alone, and how they let go.
func previousOnly[T api.Object](err error, k dataKind[T], users []*api.Service, targets []T) error {
	ids := map[string]bool{}
	for _, v := range targets {
		ids[v.GetID()] = true
	}
	var names []string
	for _, u := range users {
		if t := u.Spec.TaskTemplate.Copy(); !k.retarget(&t, ids, "", "") {
			names = append(names, fmt.Sprintf("%q", u.Spec.Name))
		}
	}
	if len(names) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s only in the previous spec a rollback would bring back: update once more to let go)", err, strings.Join(names, ", "))
}

// CreateSecret validates spec (Swarm's name rule, 1 byte to
// api.MaxSecretSize of data) and creates the secret; a name another
// secret has is refused (api.ErrNameConflict). The secret returned has no
// data.
func (s *Server) CreateSecret(ctx context.Context, spec api.SecretSpec) (*api.Secret, error) {
	spec = spec.Copy()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return createData(ctx, s, secrets, &api.Secret{ID: api.NewID(), Spec: spec})
}

// GetSecret returns a secret, without its data, by ID, name (the newest
// version), "name@version" or unique ID prefix.
func (s *Server) GetSecret(ctx context.Context, ref string) (*api.Secret, error) {
	return getData(s, secrets, ref)
}

// ListSecrets returns the secrets that match filter, ordered by name,
// without their data.
func (s *Server) ListSecrets(ctx context.Context, filter control.ObjectFilter) ([]*api.Secret, error) {
	return listData(s, secrets, filter)
}

// RemoveSecret deletes a secret, every version of it kept, that no
// service's spec or previous spec uses (ErrInUse names those that do);
// "name@version" deletes that superseded version alone.
func (s *Server) RemoveSecret(ctx context.Context, ref string) error {
	return removeData(ctx, s, secrets, ref)
}

// CreateConfig validates spec (as CreateSecret's) and creates the config.
func (s *Server) CreateConfig(ctx context.Context, spec api.ConfigSpec) (*api.Config, error) {
	spec = spec.Copy()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return createData(ctx, s, configs, &api.Config{ID: api.NewID(), Spec: spec})
}

// GetConfig returns a config with its data by ID, name (the newest
// version), "name@version" or unique ID prefix.
func (s *Server) GetConfig(ctx context.Context, ref string) (*api.Config, error) {
	return getData(s, configs, ref)
}

// ListConfigs returns the configs that match filter, ordered by name,
// without their data.
func (s *Server) ListConfigs(ctx context.Context, filter control.ObjectFilter) ([]*api.Config, error) {
	return listData(s, configs, filter)
}

// RemoveConfig deletes a config as RemoveSecret deletes a secret.
func (s *Server) RemoveConfig(ctx context.Context, ref string) error {
	return removeData(ctx, s, configs, ref)
}

// resolveSecretsAndConfigs replaces the secret and config references of a
// service's template with what they name now: the ID and the name, and a
// file target named after it when the template gives none (as the Docker
// CLI does). A reference that carries an ID (a spec written before, as a
// rollback brings back) must find that very object; one with a name alone
// is looked up as any reference (ID, name, unique ID prefix). A reference
// to nothing is refused naming its field and what it named, and so are two
// references that end up at the same file.
func resolveSecretsAndConfigs(tx store.ReadTx, spec *api.ServiceSpec) error {
	t := &spec.TaskTemplate
	for i := range t.Secrets {
		r := &t.Secrets[i]
		id, name, err := resolveRef(tx, secrets, spec.Name, fmt.Sprintf("task_template.secrets[%d]", i), r.SecretID, r.SecretName)
		if err != nil {
			return err
		}
		r.SecretID, r.SecretName = id, name
		r.File = defaultTarget(r.File, name)
	}
	for i := range t.Configs {
		r := &t.Configs[i]
		id, name, err := resolveRef(tx, configs, spec.Name, fmt.Sprintf("task_template.configs[%d]", i), r.ConfigID, r.ConfigName)
		if err != nil {
			return err
		}
		r.ConfigID, r.ConfigName = id, name
		r.File = defaultTarget(r.File, name)
	}
	if err := checkTargets(spec.Name, "task_template.secrets", len(t.Secrets), func(i int) string { return t.Secrets[i].File.Name }); err != nil {
		return err
	}
	return checkTargets(spec.Name, "task_template.configs", len(t.Configs), func(i int) string { return t.Configs[i].File.Name })
}

// resolveRef finds what one reference names.
func resolveRef[T api.Object](tx store.ReadTx, k dataKind[T], service, field, id, name string) (string, string, error) {
	var o T
	var err error
	if id != "" {
		o = k.get(tx)(id)
		if isNil(o) {
			return "", "", invalid("service %q: %s: %s %s (%q) not found", service, field, k.kind, id, name)
		}
	} else {
		o, err = lookupData(tx, k, name)
		if errors.Is(err, ErrNotFound) {
			return "", "", invalid("service %q: %s: %s %q not found", service, field, k.kind, name)
		}
		if err != nil {
			return "", "", fmt.Errorf("service %q: %s: %w", service, field, err)
		}
	}
	return o.GetID(), k.annot(o).Name, nil
}

// defaultTarget is the file a reference without one gets: the object's
// name, owner and mode left to the executor.
func defaultTarget(f *api.FileTarget, name string) *api.FileTarget {
	if f == nil {
		return &api.FileTarget{Name: name}
	}
	if f.Name == "" {
		c := *f
		c.Name = name
		return &c
	}
	return f
}

// checkTargets refuses two references of one list (which share a
// directory) that end up at the same file once defaulted.
func checkTargets(service, field string, n int, target func(int) string) error {
	seen := map[string]int{}
	for i := range n {
		name := target(i)
		if j, dup := seen[name]; dup {
			return invalid("service %q: %s[%d].file.name: target %q is also %s[%d]'s", service, field, i, name, field, j)
		}
		seen[name] = i
	}
	return nil
}
