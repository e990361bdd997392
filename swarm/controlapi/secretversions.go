package controlapi

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/orchestrator"
)

// Versioned updates of secrets and configs (issue 16). An update makes a
// new object (a new ID, the same name, Version one more) and supersedes
// the one before, so a task's reference (an ID) always names the data it
// was made with, a node given a version never sees it change under a
// running task, and a service's previous spec still names what a rollback
// returns to. In the same write every service whose spec uses the secret
// gets a new spec pointing at the new version, which its orchestrator
// rolls out as any update (UpdateConfig: parallelism, delay, order,
// failure action); `service rollback` goes back to the version before.
// Superseded versions are deleted by orchestrator.VersionCollector once
// nothing references them.

// maxMovesPerWrite bounds the services one write of an update moves to
// the new version: a service is at most two api.MaxSpecBytes specs, so 16
// of them (4 MiB) and the old and new versions (written again marked
// superseded, and created: 683 KB each, encoded) fit a raft entry (8 MiB)
// with room to spare.
// An update that moves more writes the rest in further writes, each
// service whole.
const maxMovesPerWrite = 16

// lookupData finds a secret or config by ID, name (the newest version),
// "name@version" or unique ID prefix.
func lookupData[T api.Object](tx store.ReadTx, k dataKind[T], ref string) (T, error) {
	name, version, ok := api.ParseVersionRef(ref)
	if !ok {
		return lookup(k.kind, ref, k.get(tx), k.find(tx))
	}
	var zero T
	all, err := k.find(tx)(store.ByVersionsOf(name))
	if err != nil {
		return zero, err
	}
	for _, o := range all {
		if n, _ := k.version(o); n == version {
			return o, nil
		}
	}
	return zero, fmt.Errorf("%s %q: %w", k.kind, ref, ErrNotFound)
}

// newest returns the newest version of o's secret or config.
func newest[T api.Object](tx store.ReadTx, k dataKind[T], o T) (T, error) {
	if _, superseded := k.version(o); !superseded {
		return o, nil
	}
	cur, err := k.find(tx)(store.ByName(k.annot(o).Name))
	if err != nil {
		return o, err
	}
	if len(cur) != 1 {
		return o, fmt.Errorf("%s %q: no newest version: %w", k.kind, k.annot(o).Name, ErrNotFound)
	}
	return cur[0], nil
}

// updateData makes next(newest) the newest version of ref's secret or
// config and moves the services that use an older one to it. next builds
// (and validates) the new version from the one it replaces.
func updateData[T api.Object](ctx context.Context, s *Server, k dataKind[T], ref string, next func(cur T) (T, error)) (T, []string, error) {
	var zero T
	fail := func(err error) (T, []string, error) {
		return zero, nil, fmt.Errorf("update %s %q: %w", k.kind, ref, err)
	}
	// At the bound, let go of what is free first: the collector may not
	// have got to it yet.
	var name string
	var kept int
	var err error
	s.store.ViewShared(func(tx store.ReadTx) {
		var o T
		if o, err = lookupData(tx, k, ref); err != nil {
			return
		}
		name = k.annot(o).Name
		var all []T
		all, err = k.find(tx)(store.ByVersionsOf(name))
		kept = len(all)
	})
	if err != nil {
		return fail(err)
	}
	if kept >= k.maxVersions {
		if _, err := orchestrator.CollectVersions(ctx, s.store, orchestrator.VersionKey{Kind: k.table, Name: name}); err != nil {
			return fail(err)
		}
	}

	var created T
	var moved []*api.Service
	var rest []string
	from := map[string]bool{}
	err = s.updateRetrying(ctx, func(tx store.Tx) error {
		moved, rest, from = nil, nil, map[string]bool{}
		o, err := lookupData(tx, k, ref)
		if err != nil {
			return err
		}
		cur, err := newest(tx, k, o)
		if err != nil {
			return err
		}
		name := k.annot(cur).Name
		versions, err := k.find(tx)(store.ByVersionsOf(name))
		if err != nil {
			return err
		}
		users, err := dataUsers(tx, k, versions)
		if err != nil {
			return err
		}
		if len(versions) >= k.maxVersions {
			// Named: those that hold an older version.
			older := slices.DeleteFunc(slices.Clone(versions), func(v T) bool { return v.GetID() == cur.GetID() })
			holders, err := dataUsers(tx, k, older)
			if err != nil {
				return err
			}
			return tooManyVersions(k.kind, name, len(versions), holders)
		}
		if n := tx.Count(k.table); n >= k.limit {
			return invalid("%s %q: the cluster has %d %ss (every version counts), the most it may have", k.kind, name, n, k.kind)
		}
		if created, err = next(cur); err != nil {
			return err
		}
		// The name first passes from the old version to the new one.
		if err := k.update(tx, k.supersede(cur)); err != nil {
			return err
		}
		if err := k.create(tx, created); err != nil {
			return err
		}
		for _, v := range versions {
			from[v.GetID()] = true
		}
		for i, svc := range users {
			if i >= maxMovesPerWrite {
				rest = append(rest, svc.ID)
				continue
			}
			ok, err := moveService(tx, k, svc, from, created.GetID(), name)
			if err != nil {
				return err
			}
			if ok {
				moved = append(moved, svc)
			}
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	for len(rest) > 0 {
		batch := rest[:min(len(rest), maxMovesPerWrite)]
		rest = rest[len(batch):]
		var done []*api.Service
		err := s.updateRetrying(ctx, func(tx store.Tx) error {
			done = nil
			for _, id := range batch {
				svc := tx.GetService(id)
				if svc == nil {
					continue // removed meanwhile
				}
				ok, err := moveService(tx, k, svc, from, created.GetID(), k.annot(created).Name)
				if err != nil {
					return err
				}
				if ok {
					done = append(done, svc)
				}
			}
			return nil
		})
		if err != nil {
			// The new version exists and the services moved so far roll
			// to it; the caller learns which did not.
			return fail(fmt.Errorf("version %d made, but services %s still use an older one: %w",
				mustVersion(k, created), strings.Join(append(slices.Clone(batch), rest...), ", "), err))
		}
		moved = append(moved, done...)
	}
	out, err := getData(s, k, created.GetID())
	if err != nil {
		return fail(err)
	}
	names := make([]string, 0, len(moved))
	for _, svc := range moved {
		names = append(names, svc.Spec.Name)
	}
	slices.Sort(names)
	return out, names, nil
}

func mustVersion[T api.Object](k dataKind[T], o T) uint64 {
	n, _ := k.version(o)
	return n
}

// dataUsers returns the services whose spec or previous spec references
// one of versions, by name.
func dataUsers[T api.Object](tx store.ReadTx, k dataKind[T], versions []T) ([]*api.Service, error) {
	var users []*api.Service
	seen := map[string]bool{}
	for _, v := range versions {
		svcs, err := tx.FindServices(k.byRef(v.GetID()))
		if err != nil {
			return nil, err
		}
		for _, svc := range svcs {
			if !seen[svc.ID] {
				seen[svc.ID] = true
				users = append(users, svc)
			}
		}
	}
	sortByName(users, func(x *api.Service) string { return x.Spec.Name }, func(x *api.Service) string { return x.ID })
	return users, nil
}

// moveService gives svc a new spec whose references to from point at to,
// the previous spec kept for a rollback, as UpdateService would: the
// orchestrator rolls it out. A service whose spec references none of
// from (one that uses the secret in its previous spec only) is left.
func moveService[T api.Object](tx store.Tx, k dataKind[T], svc *api.Service, from map[string]bool, to, name string) (bool, error) {
	spec := svc.Spec.Copy()
	if !k.retarget(&spec.TaskTemplate, from, to, name) {
		return false, nil
	}
	prev := svc.Spec
	svc.PreviousSpec = &prev
	svc.PreviousSpecVersion = svc.SpecVersion
	svc.Spec = spec
	svc.SpecVersion++
	svc.UpdateStatus = nil
	return true, tx.UpdateService(svc)
}

// tooManyVersions refuses an update that would keep more than the bound,
// naming who holds the versions.
func tooManyVersions(kind, name string, n int, users []*api.Service) error {
	who := "tasks that have not ended"
	if len(users) > 0 {
		names := make([]string, 0, maxNamedUsers)
		for _, u := range users[:min(len(users), maxNamedUsers)] {
			names = append(names, fmt.Sprintf("%q", u.Spec.Name))
		}
		who = "service(s) " + strings.Join(names, ", ")
		if len(users) > maxNamedUsers {
			who += fmt.Sprintf(" and %d more", len(users)-maxNamedUsers)
		}
		who += " (their specs, previous specs or tasks)"
	}
	return fmt.Errorf("%s %q: %d versions are kept, the most there may be, for %s: update again once their rollouts have ended: %w",
		kind, name, n, who, ErrInUse)
}

// listVersions returns every version kept of ref's secret or config,
// newest first, as k.listed shows them.
func listVersions[T api.Object](s *Server, k dataKind[T], ref string) ([]T, error) {
	var out []T
	var err error
	s.store.ViewShared(func(tx store.ReadTx) {
		var o T
		if o, err = lookupData(tx, k, ref); err != nil {
			return
		}
		var all []T
		if all, err = k.find(tx)(store.ByVersionsOf(k.annot(o).Name)); err != nil {
			return
		}
		for _, v := range all {
			out = append(out, k.listed(v))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("versions of %s %q: %w", k.kind, ref, err)
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(mustVersion(k, b), mustVersion(k, a)) })
	return out, nil
}

// UpdateSecret makes spec the secret's next version (see
// control.API.UpdateSecret) and moves every service using an older
// version to it.
func (s *Server) UpdateSecret(ctx context.Context, ref string, spec api.SecretSpec) (*control.SecretUpdate, error) {
	spec = spec.Copy()
	out, moved, err := updateData(ctx, s, secrets, ref, func(cur *api.Secret) (*api.Secret, error) {
		err := nextSpec(secrets.kind, cur.Spec.Annotations, &spec.Annotations, spec.Validate)
		return &api.Secret{ID: api.NewID(), Spec: spec, Version: cur.DataVersion() + 1}, err
	})
	if err != nil {
		return nil, err
	}
	return &control.SecretUpdate{Secret: out, Services: moved}, nil
}

// UpdateConfig makes spec the config's next version, as UpdateSecret.
func (s *Server) UpdateConfig(ctx context.Context, ref string, spec api.ConfigSpec) (*control.ConfigUpdate, error) {
	spec = spec.Copy()
	out, moved, err := updateData(ctx, s, configs, ref, func(cur *api.Config) (*api.Config, error) {
		err := nextSpec(configs.kind, cur.Spec.Annotations, &spec.Annotations, spec.Validate)
		return &api.Config{ID: api.NewID(), Spec: spec, Version: cur.DataVersion() + 1}, err
	})
	if err != nil {
		return nil, err
	}
	return &control.ConfigUpdate{Config: out, Services: moved}, nil
}

// nextSpec makes given the new version's annotations and validates the
// spec they belong to: the name stays (an empty one is the current's,
// another is refused), labels not given (nil) are kept.
func nextSpec(kind string, cur api.Annotations, given *api.Annotations, validate func() error) error {
	if given.Name != "" && given.Name != cur.Name {
		return invalid("%s %q: name: cannot change to %q (create another %s)", kind, cur.Name, given.Name, kind)
	}
	given.Name = cur.Name
	if given.Labels == nil {
		given.Labels = cur.Copy().Labels
	}
	if err := validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return nil
}

// SecretVersions returns every version kept of a secret, newest first,
// without their data.
func (s *Server) SecretVersions(ctx context.Context, ref string) ([]*api.Secret, error) {
	return listVersions(s, secrets, ref)
}

// ConfigVersions returns every version kept of a config, newest first,
// without their data.
func (s *Server) ConfigVersions(ctx context.Context, ref string) ([]*api.Config, error) {
	return listVersions(s, configs, ref)
}
