package store

import (
	"fmt"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// readTx implements ReadTx on a state of the tables. It hands out copies:
// the stored objects are shared by every snapshot and must never change.
type readTx struct {
	db *dbState
	// shared hands out the stored objects themselves (ViewShared).
	shared bool
}

func (r readTx) GetCluster(id string) *api.Cluster {
	return get(r, api.KindCluster, id, (*api.Cluster).Copy)
}
func (r readTx) GetNode(id string) *api.Node { return get(r, api.KindNode, id, (*api.Node).Copy) }
func (r readTx) GetService(id string) *api.Service {
	return get(r, api.KindService, id, (*api.Service).Copy)
}
func (r readTx) GetTask(id string) *api.Task { return get(r, api.KindTask, id, (*api.Task).Copy) }
func (r readTx) GetNetwork(id string) *api.Network {
	return get(r, api.KindNetwork, id, (*api.Network).Copy)
}

func (r readTx) GetSecret(id string) *api.Secret {
	return get(r, api.KindSecret, id, (*api.Secret).Copy)
}
func (r readTx) GetConfig(id string) *api.Config {
	return get(r, api.KindConfig, id, (*api.Config).Copy)
}

func (r readTx) FindClusters(by By) ([]*api.Cluster, error) {
	return find(r, api.KindCluster, by, (*api.Cluster).Copy)
}

func (r readTx) FindNodes(by By) ([]*api.Node, error) {
	return find(r, api.KindNode, by, (*api.Node).Copy)
}

func (r readTx) FindServices(by By) ([]*api.Service, error) {
	return find(r, api.KindService, by, (*api.Service).Copy)
}

func (r readTx) FindTasks(by By) ([]*api.Task, error) {
	return find(r, api.KindTask, by, (*api.Task).Copy)
}

func (r readTx) FindNetworks(by By) ([]*api.Network, error) {
	return find(r, api.KindNetwork, by, (*api.Network).Copy)
}

func (r readTx) FindSecrets(by By) ([]*api.Secret, error) {
	return find(r, api.KindSecret, by, (*api.Secret).Copy)
}

func (r readTx) FindConfigs(by By) ([]*api.Config, error) {
	return find(r, api.KindConfig, by, (*api.Config).Copy)
}

func (r readTx) Count(kind api.Kind) int {
	ki, ok := kindByName[kind]
	if !ok {
		return 0
	}
	return r.db.count(ki)
}

func get[T api.Object](r readTx, kind api.Kind, id string, copyFn func(T) T) T {
	if r.shared {
		copyFn = func(o T) T { return o }
	}
	return copyAs(r.db.get(kindByName[kind], id), copyFn)
}

// copyAs returns a copy of o as its concrete type, or nil.
func copyAs[T api.Object](o api.Object, copyFn func(T) T) T {
	if o == nil {
		var zero T
		return zero
	}
	return copyFn(o.(T))
}

func find[T api.Object](r readTx, kind api.Kind, by By, copyFn func(T) T) ([]T, error) {
	ki := kindByName[kind]
	sel, err := query(ki, by)
	if err != nil {
		return nil, err
	}
	if r.shared {
		copyFn = func(o T) T { return o }
	}
	var out []T
	if sel.all {
		out = make([]T, 0, r.db.count(ki))
	}
	r.db.find(ki, sel, func(o api.Object) bool {
		out = append(out, copyFn(o.(T)))
		return true
	})
	return out, nil
}

// action is one write of a transaction, as proposed and applied.
type action struct {
	op   Action // ActionCreate, ActionUpdate or ActionDelete
	kind api.Kind
	id   string
	// obj is the object written (create, update), a private copy that
	// becomes the stored object when the action is applied. Nil for delete.
	obj api.Object
	// base is the version the writer saw: the stored version an update or
	// delete expects to replace.
	base uint64
	// old is the object a delete removes, as the transaction saw it. Local
	// to the transaction: not proposed.
	old api.Object
}

// tx implements Tx on a state of the tables (its snapshot) and records its
// writes as actions. The checks here give fast, precise errors; applyLocked
// repeats them against the committed state.
//
// Writes go to the overlay, not to the tables: Get and the checks answer
// from it, and most transactions never need more. Only a Find after a write
// needs the writes in the indexes; it replays the pending actions into a
// private writer of the snapshot first (sync). This halves the cost of a
// write, since applying it to the committed tables is unavoidable.
type tx struct {
	ov      overlay   // the snapshot plus the writes
	w       *dbWriter // private writer on the snapshot, opened by the first sync
	synced  int       // actions[:synced] are in w
	now     time.Time
	actions []action
}

// newTx opens a transaction on db.
func newTx(db *dbState, now time.Time) *tx {
	return &tx{ov: overlay{base: db}, now: now}
}

// reader returns a view that includes the transaction's writes.
func (t *tx) reader() readTx {
	t.sync()
	if t.w != nil {
		return readTx{db: &t.w.dbState}
	}
	return readTx{db: t.ov.base}
}

// sync writes the pending actions into the private writer.
func (t *tx) sync() {
	if t.synced == len(t.actions) {
		return
	}
	if t.w == nil {
		t.w = t.ov.base.writer()
	}
	for _, a := range t.actions[t.synced:] {
		ki := kindByName[a.kind]
		if a.op == ActionDelete {
			t.w.remove(ki, a.id)
		} else {
			t.w.put(ki, a.obj)
		}
	}
	t.synced = len(t.actions)
}

// view returns the snapshot with the transaction's writes (Batch's view).
// The transaction must not be used after.
func (t *tx) view() *dbState {
	t.sync()
	if t.w == nil {
		return t.ov.base
	}
	d := t.w.commit()
	t.w = nil
	return d
}

func (t *tx) abort() { t.w = nil }

func (t *tx) GetCluster(id string) *api.Cluster {
	return copyAs(t.ov.get(kindByName[api.KindCluster], id), (*api.Cluster).Copy)
}
func (t *tx) GetNode(id string) *api.Node {
	return copyAs(t.ov.get(kindByName[api.KindNode], id), (*api.Node).Copy)
}
func (t *tx) GetService(id string) *api.Service {
	return copyAs(t.ov.get(kindByName[api.KindService], id), (*api.Service).Copy)
}
func (t *tx) GetTask(id string) *api.Task {
	return copyAs(t.ov.get(kindByName[api.KindTask], id), (*api.Task).Copy)
}
func (t *tx) GetNetwork(id string) *api.Network {
	return copyAs(t.ov.get(kindByName[api.KindNetwork], id), (*api.Network).Copy)
}

func (t *tx) GetSecret(id string) *api.Secret {
	return copyAs(t.ov.get(kindByName[api.KindSecret], id), (*api.Secret).Copy)
}
func (t *tx) GetConfig(id string) *api.Config {
	return copyAs(t.ov.get(kindByName[api.KindConfig], id), (*api.Config).Copy)
}

func (t *tx) FindClusters(by By) ([]*api.Cluster, error) {
	return t.reader().FindClusters(by)
}

func (t *tx) FindNodes(by By) ([]*api.Node, error) {
	return t.reader().FindNodes(by)
}

func (t *tx) FindServices(by By) ([]*api.Service, error) {
	return t.reader().FindServices(by)
}

func (t *tx) FindTasks(by By) ([]*api.Task, error) {
	return t.reader().FindTasks(by)
}

func (t *tx) FindNetworks(by By) ([]*api.Network, error) {
	return t.reader().FindNetworks(by)
}

func (t *tx) FindSecrets(by By) ([]*api.Secret, error) {
	return t.reader().FindSecrets(by)
}

func (t *tx) FindConfigs(by By) ([]*api.Config, error) {
	return t.reader().FindConfigs(by)
}

func (t *tx) Count(kind api.Kind) int { return t.reader().Count(kind) }

func nilObject(op string, kind api.Kind) error {
	return fmt.Errorf("%s %s: nil object", op, kind)
}

func (t *tx) CreateCluster(c *api.Cluster) error {
	if c == nil {
		return nilObject("create", api.KindCluster)
	}
	return t.create(c.Copy())
}

func (t *tx) UpdateCluster(c *api.Cluster) error {
	if c == nil {
		return nilObject("update", api.KindCluster)
	}
	return t.update(c.Copy())
}

func (t *tx) DeleteCluster(id string) error { return t.delete(api.KindCluster, id) }

func (t *tx) CreateNode(n *api.Node) error {
	if n == nil {
		return nilObject("create", api.KindNode)
	}
	return t.create(n.Copy())
}

func (t *tx) UpdateNode(n *api.Node) error {
	if n == nil {
		return nilObject("update", api.KindNode)
	}
	return t.update(n.Copy())
}

func (t *tx) DeleteNode(id string) error { return t.delete(api.KindNode, id) }

func (t *tx) CreateService(s *api.Service) error {
	if s == nil {
		return nilObject("create", api.KindService)
	}
	return t.create(s.Copy())
}

func (t *tx) UpdateService(s *api.Service) error {
	if s == nil {
		return nilObject("update", api.KindService)
	}
	return t.update(s.Copy())
}

func (t *tx) CreateServiceOwned(s *api.Service) error {
	if s == nil {
		return nilObject("create", api.KindService)
	}
	return t.create(s)
}

func (t *tx) UpdateServiceOwned(s *api.Service) error {
	if s == nil {
		return nilObject("update", api.KindService)
	}
	return t.update(s)
}

func (t *tx) DeleteService(id string) error { return t.delete(api.KindService, id) }

func (t *tx) CreateTask(k *api.Task) error {
	if k == nil {
		return nilObject("create", api.KindTask)
	}
	return t.create(k.Copy())
}

func (t *tx) UpdateTask(k *api.Task) error {
	if k == nil {
		return nilObject("update", api.KindTask)
	}
	return t.update(k.Copy())
}

func (t *tx) DeleteTask(id string) error { return t.delete(api.KindTask, id) }

func (t *tx) CreateNetwork(n *api.Network) error {
	if n == nil {
		return nilObject("create", api.KindNetwork)
	}
	return t.create(n.Copy())
}

func (t *tx) UpdateNetwork(n *api.Network) error {
	if n == nil {
		return nilObject("update", api.KindNetwork)
	}
	return t.update(n.Copy())
}

func (t *tx) DeleteNetwork(id string) error { return t.delete(api.KindNetwork, id) }

func (t *tx) CreateSecret(s *api.Secret) error {
	if s == nil {
		return nilObject("create", api.KindSecret)
	}
	return t.create(s.Copy())
}

func (t *tx) UpdateSecret(s *api.Secret) error {
	if s == nil {
		return nilObject("update", api.KindSecret)
	}
	return t.update(s.Copy())
}

func (t *tx) DeleteSecret(id string) error { return t.delete(api.KindSecret, id) }

func (t *tx) CreateConfig(c *api.Config) error {
	if c == nil {
		return nilObject("create", api.KindConfig)
	}
	return t.create(c.Copy())
}

func (t *tx) UpdateConfig(c *api.Config) error {
	if c == nil {
		return nilObject("update", api.KindConfig)
	}
	return t.update(c.Copy())
}

func (t *tx) DeleteConfig(id string) error { return t.delete(api.KindConfig, id) }

// create writes o, a copy the transaction owns.
func (t *tx) create(o api.Object) error {
	kind, id := o.Kind(), o.GetID()
	ki := kindByName[kind]
	if id == "" {
		return fmt.Errorf("create %s: empty ID", kind)
	}
	if t.ov.get(ki, id) != nil {
		return fmt.Errorf("create %s %s: %w", kind, id, ErrExist)
	}
	if err := t.ov.checkName(ki, o); err != nil {
		return fmt.Errorf("create %s %s: %w", kind, id, err)
	}
	// Version stays 0 until the commit assigns the commit index.
	o.SetMeta(api.Meta{CreatedAt: t.now, UpdatedAt: t.now})
	t.ov.put(ki, o)
	t.actions = append(t.actions, action{op: ActionCreate, kind: kind, id: id, obj: o})
	return nil
}

// update writes o, a copy the transaction owns, over the stored object of
// the same version.
func (t *tx) update(o api.Object) error {
	kind, id := o.Kind(), o.GetID()
	ki := kindByName[kind]
	cur := t.ov.get(ki, id)
	if cur == nil {
		return fmt.Errorf("update %s %s: %w", kind, id, ErrNotFound)
	}
	m := cur.GetMeta()
	if o.GetMeta().Version != m.Version {
		return fmt.Errorf("update %s %s: %w", kind, id, ErrConflict)
	}
	if err := t.ov.checkName(ki, o); err != nil {
		return fmt.Errorf("update %s %s: %w", kind, id, err)
	}
	// The version stays the one the transaction started from, so that a
	// second update of the object in this transaction, made from what it
	// reads back, is accepted; CreatedAt is the store's, not the caller's.
	m.UpdatedAt = t.now
	o.SetMeta(m)
	t.ov.put(ki, o)
	t.actions = append(t.actions, action{op: ActionUpdate, kind: kind, id: id, obj: o, base: m.Version})
	return nil
}

func (t *tx) delete(kind api.Kind, id string) error {
	ki := kindByName[kind]
	cur := t.ov.get(ki, id)
	if cur == nil {
		return fmt.Errorf("delete %s %s: %w", kind, id, ErrNotFound)
	}
	t.ov.remove(ki, id)
	t.actions = append(t.actions, action{op: ActionDelete, kind: kind, id: id, base: cur.GetMeta().Version, old: cur})
	return nil
}
