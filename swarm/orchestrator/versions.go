package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/apiary-io/apiary/internal/loop"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
)

// Versions of secrets and configs (issue 16): an update makes a new object
// and supersedes the old one, which must stay while anything may still
// need its data (a service's spec or previous spec, which a rollback
// brings back; a task that has not ended, whose node holds it) and go
// once nothing does. VersionCollector is the leader's loop that deletes
// them then; the control API calls CollectVersions itself before it
// refuses an update for keeping too many.

// VersionKey names what the collector looks at: the versions of one
// secret (Kind api.KindSecret) or config.
type VersionKey struct {
	Kind api.Kind
	Name string
}

// VersionCollector deletes superseded versions of secrets and configs
// that nothing references. Only the leader runs it.
type VersionCollector struct {
	store *store.MemoryStore
	log   *slog.Logger
}

// NewVersionCollector returns a collector over s.
func NewVersionCollector(s *store.MemoryStore, log *slog.Logger) *VersionCollector {
	if log == nil {
		log = slog.Default()
	}
	return &VersionCollector{store: s, log: log.With("component", "versions")}
}

// Run collects until ctx ends: at start (and after a restore) every name
// with a superseded version, then the names an event may have let go of:
// a version superseded, a service's references changed or gone, a task
// ended or deleted.
func (c *VersionCollector) Run(ctx context.Context) error {
	return loop.New[VersionKey](loop.Config{
		Name:    "versions",
		Store:   c.store,
		Filters: []store.EventFilter{store.ByKinds(api.KindSecret, api.KindConfig, api.KindService, api.KindTask)},
		Shared:  true,
		Log:     c.log,
	}, collector{c}).Run(ctx)
}

// collector is the collector's loop.Reconciler. It keeps no view: every
// reconciliation reads the store.
type collector struct{ c *VersionCollector }

func (r collector) Resync(tx store.ReadTx, q *loop.Queue[VersionKey]) error {
	secrets, err := tx.FindSecrets(store.All)
	if err != nil {
		return err
	}
	for _, s := range secrets {
		if s.Superseded {
			q.Add(VersionKey{api.KindSecret, s.Spec.Name})
		}
	}
	configs, err := tx.FindConfigs(store.All)
	if err != nil {
		return err
	}
	for _, c := range configs {
		if c.Superseded {
			q.Add(VersionKey{api.KindConfig, c.Spec.Name})
		}
	}
	return nil
}

func (r collector) Observe(ev store.Event, q *loop.Queue[VersionKey]) {
	switch obj := ev.Object.(type) {
	case *api.Secret:
		if obj.Superseded {
			q.Add(VersionKey{api.KindSecret, obj.Spec.Name})
		}
	case *api.Config:
		if obj.Superseded {
			q.Add(VersionKey{api.KindConfig, obj.Spec.Name})
		}
	case *api.Service:
		// What the service referenced before the change may be free now
		// (an update drops the previous spec's, a removal all of them).
		if old, ok := ev.Old.(*api.Service); ok {
			addServiceRefs(old, q)
		}
		if ev.Action == store.ActionDelete {
			addServiceRefs(obj, q)
		}
	case *api.Task:
		if ev.Action == store.ActionDelete || !taskHolds(obj) {
			addTemplateRefs(&obj.Spec, q)
		}
	}
}

func addServiceRefs(s *api.Service, q *loop.Queue[VersionKey]) {
	addTemplateRefs(&s.Spec.TaskTemplate, q)
	if s.PreviousSpec != nil {
		addTemplateRefs(&s.PreviousSpec.TaskTemplate, q)
	}
}

func addTemplateRefs(t *api.TaskSpec, q *loop.Queue[VersionKey]) {
	for _, r := range t.Secrets {
		q.Add(VersionKey{api.KindSecret, r.SecretName})
	}
	for _, r := range t.Configs {
		q.Add(VersionKey{api.KindConfig, r.ConfigName})
	}
}

func (r collector) Reconcile(ctx context.Context, key VersionKey) (loop.Result, error) {
	n, err := CollectVersions(ctx, r.c.store, key)
	if n > 0 {
		r.c.log.Debug("superseded versions deleted", "kind", key.Kind, "name", key.Name, "deleted", n)
	}
	return loop.Result{}, err
}

// CollectVersions deletes the superseded versions of key's secret or
// config that no service's spec or previous spec, and no task that may
// still need it (taskHolds), references, and returns how many it
// deleted.
//
// The tasks are read shared, outside the transaction (a version may be
// referenced by 100,000 of them, which a transaction would copy): once
// no service references a version, no new task can, and a task that let
// go (ended, or told to stop before it reached a node, which the
// scheduler then never places) never needs it again, so a version free
// of both stays free. The
// services are checked again inside the transaction, where an update
// that took the version back in since (a spec written back with its ID)
// keeps it.
func CollectVersions(ctx context.Context, s *store.MemoryStore, key VersionKey) (int, error) {
	var free []string
	var err error
	s.ViewShared(func(tx store.ReadTx) { free, err = unreferencedVersions(tx, key) })
	if err != nil || len(free) == 0 {
		return 0, err
	}
	deleted := 0
	err = s.UpdateContext(ctx, func(tx store.Tx) error {
		deleted = 0
		for _, id := range free {
			superseded, by := versionState(tx, key, id)
			if !superseded {
				continue // gone already
			}
			users, err := tx.FindServices(by)
			if err != nil {
				return err
			}
			if len(users) > 0 {
				continue
			}
			if key.Kind == api.KindSecret {
				err = tx.DeleteSecret(id)
			} else {
				err = tx.DeleteConfig(id)
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			deleted++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("collect versions of %s %q: %w", key.Kind, key.Name, err)
	}
	return deleted, nil
}

// versionState says whether id is a superseded version of key's, and the
// By that finds its users.
func versionState(tx store.ReadTx, key VersionKey, id string) (superseded bool, by store.By) {
	if key.Kind == api.KindSecret {
		s := tx.GetSecret(id)
		return s != nil && s.Superseded && s.Spec.Name == key.Name, store.ByReferencedSecret(id)
	}
	c := tx.GetConfig(id)
	return c != nil && c.Superseded && c.Spec.Name == key.Name, store.ByReferencedConfig(id)
}

// unreferencedVersions returns the IDs of key's superseded versions that
// no service and no task that has not ended references.
func unreferencedVersions(tx store.ReadTx, key VersionKey) ([]string, error) {
	var candidates []string
	var refBy func(string) store.By
	var err error
	switch key.Kind {
	case api.KindSecret:
		candidates, err = superseded(tx.FindSecrets(store.ByVersionsOf(key.Name)))
		refBy = store.ByReferencedSecret
	case api.KindConfig:
		candidates, err = superseded(tx.FindConfigs(store.ByVersionsOf(key.Name)))
		refBy = store.ByReferencedConfig
	default:
		return nil, fmt.Errorf("versions of %s: not a secret or config", key.Kind)
	}
	if err != nil {
		return nil, err
	}
	var free []string
	for _, id := range candidates {
		used, err := versionUsed(tx, refBy(id))
		if err != nil {
			return nil, err
		}
		if !used {
			free = append(free, id)
		}
	}
	return free, nil
}

// superseded returns the IDs of the superseded versions among all.
func superseded[T interface {
	*api.Secret | *api.Config
	api.Object
}](all []T, err error) ([]string, error) {
	var out []string
	for _, o := range all {
		var gone bool
		switch v := any(o).(type) {
		case *api.Secret:
			gone = v.Superseded
		case *api.Config:
			gone = v.Superseded
		}
		if gone {
			out = append(out, o.GetID())
		}
	}
	return out, err
}

// versionUsed reports whether a service or a task that has not ended
// references what by selects.
func versionUsed(tx store.ReadTx, by store.By) (bool, error) {
	services, err := tx.FindServices(by)
	if err != nil || len(services) > 0 {
		return len(services) > 0, err
	}
	tasks, err := tx.FindTasks(by)
	if err != nil {
		return false, err
	}
	for _, t := range tasks {
		if taskHolds(t) {
			return true, nil
		}
	}
	return false, nil
}

// taskHolds reports whether a task may still need the data it references:
// it has not ended, and it is either wanted running or on a node already
// (one told to stop may still run there). A task told to stop before it
// reached a node never will.
func taskHolds(t *api.Task) bool {
	return !t.Status.State.Terminal() && (t.DesiredState <= api.TaskStateRunning || t.Status.State >= api.TaskStateAssigned)
}
