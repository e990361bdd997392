package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/encryption"
)

// Encryption at rest and autolock on a node (docs/security.md). A
// manager's raft log, snapshots and node key file are sealed with its
// data-encryption key (swarm/encryption), which is wrapped by a key file
// beside the data or, with autolock, by the cluster's unlock key. A
// worker keeps no cluster state and its node key stays a plain 0600 file.

// ErrLocked: the node's data is locked by the cluster's unlock key and
// NodeConfig.UnlockKey is empty: serve WaitForUnlock first.
var ErrLocked = control.ErrLocked

// Locked reports whether the node in dataDir cannot start before it is
// given the cluster's unlock key.
func Locked(dataDir string) bool {
	if !encryption.Exists(dataDir) {
		return false
	}
	locked, err := encryption.IsLocked(dataDir)
	return err == nil && locked
}

// WaitForUnlock serves the control socket of the locked node in dataDir
// until it is given an unlock key that opens its data (apiaryctl swarm
// unlock), or ctx ends, for as long as that takes. The socket answers
// Unlock and Status only; a wrong key is refused (ErrWrongUnlockKey) and
// the wait goes on. It returns the key, for NodeConfig.UnlockKey.
func WaitForUnlock(ctx context.Context, dataDir string, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.Default()
	}
	st, err := loadState(dataDir)
	if err != nil {
		return "", fmt.Errorf("unlock: %w (initialise or join first)", err)
	}
	lis, err := listenControlSocket(ControlSocket(dataDir))
	if err != nil {
		return "", err
	}
	l := &lockedNode{dataDir: dataDir, state: st, log: log, done: make(chan string, 1)}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(workerMaxMsg))
	control.RegisterLocal(srv, l, nil)
	control.RegisterAPI(srv, control.UnimplementedAPI{Err: control.ErrLocked}, nil)
	go func() { _ = srv.Serve(lis) }()
	// Graceful: the Unlock that ended the wait gets its answer. It closes
	// lis, which removes the socket file.
	defer srv.GracefulStop()
	log.Warn("this manager is locked: its data is encrypted with the cluster's unlock key; waiting for `apiaryctl swarm unlock`", "socket", ControlSocket(dataDir))
	select {
	case key := <-l.done:
		log.Info("unlocked")
		return key, nil
	case <-ctx.Done():
		return "", fmt.Errorf("unlock: %w", ctx.Err())
	}
}

// lockedNode answers a locked node's control socket.
type lockedNode struct {
	dataDir string
	state   nodeState
	log     *slog.Logger
	mu      sync.Mutex
	done    chan string
	ok      bool
}

func (l *lockedNode) Leave(context.Context, bool) error { return control.ErrLocked }

func (l *lockedNode) Unlock(_ context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return nil
	}
	if _, err := encryption.Unlock(l.dataDir, key); err != nil {
		l.log.Warn("unlock refused", "err", err)
		return unlockErr(err)
	}
	l.ok = true
	l.done <- key
	return nil
}

func (l *lockedNode) Status(context.Context) (*control.NodeStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &control.NodeStatus{NodeID: l.state.NodeID, Role: l.state.Role, Locked: !l.ok, Autolock: true}, nil
}

// unlockErr maps encryption's errors to the control API's.
func unlockErr(err error) error {
	switch {
	case errors.Is(err, encryption.ErrWrongKey), errors.Is(err, encryption.ErrMalformedKey):
		return fmt.Errorf("%w: %v", control.ErrWrongUnlockKey, err)
	case errors.Is(err, encryption.ErrLocked):
		return control.ErrLocked
	}
	return err
}

// openKeys opens the node's data key before its identity loads (the node
// key file is sealed with it): ErrLocked without the unlock key when
// locked. A data dir without keys (a worker's, or a manager's of a
// version without encryption) returns nil: a manager makes them when it
// starts (managerKeys).
func openKeys(cfg NodeConfig) (*encryption.Keys, error) {
	if !encryption.Exists(cfg.DataDir) {
		return nil, nil
	}
	k, err := encryption.Open(cfg.DataDir)
	if errors.Is(err, encryption.ErrLocked) {
		if cfg.UnlockKey == "" {
			return nil, control.ErrLocked
		}
		k, err = encryption.Unlock(cfg.DataDir, cfg.UnlockKey)
	}
	if err != nil {
		return nil, unlockErr(err)
	}
	return k, nil
}

// loadIdentity loads the node's identity, its key file opened (and
// sealed, if it was plain) with keys' DEK.
func loadIdentity(dataDir string, keys *encryption.Keys) (*pki.NodeIdentity, error) {
	if keys == nil {
		return pki.LoadNodeIdentity(dataDir)
	}
	// Sealer: mid-rotation, the file may be under the old DEK or the new.
	return pki.LoadSealedNodeIdentity(dataDir, keys.Sealer())
}

// managerKeys returns the manager's data keys, made (unlocked) the first
// time the node runs as a manager, with its node key file sealed by them.
func (n *Node) managerKeys() (*encryption.Keys, error) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	if n.keys == nil {
		k, err := encryption.Create(n.cfg.DataDir)
		if err != nil {
			return nil, err
		}
		n.keys = k
	}
	if err := n.identity.SetKeySealer(n.keys.Sealer()); err != nil {
		return nil, err
	}
	return n.keys, nil
}

// dropKeys forgets a demoted manager's data keys: it keeps no raft data,
// and its node key is a plain file again.
func (n *Node) dropKeys() error {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	if err := n.identity.SetKeySealer(nil); err != nil {
		return err
	}
	n.keys = nil
	return encryption.Remove(n.cfg.DataDir)
}

// raftEncryption is what the manager's raft storage seals with: the DEK,
// and mid-rotation the old one too (opening the storage then rewrites what
// is under it).
func raftEncryption(k *encryption.Keys) raft.Encryption {
	enc := raft.Encryption{Key: k.DEK()}
	for _, o := range k.OldDEKs() {
		enc.Old = append(enc.Old, o)
	}
	return enc
}

// rekeyHook, when set (tests), is called after each step of a DEK
// rotation; an error stops the rotation there, as a crash would.
var rekeyHook func(nodeID, step string) error

// finishRotation completes the DEK rotation keys have pending (Rotate):
// the raft log and snapshots rewritten under the new DEK while raft runs,
// the node key file resealed, then the new DEK committed and the old one
// dropped. Every step is durable before the next; a crash anywhere leaves
// the pending DEK beside the old one in the dek file, and the next start
// opens raft with both (which rewrites what is left) and finishes here.
// Called with keysMu held.
func (n *Node) finishRotation(m *Manager, keys *encryption.Keys) error {
	step := func(name string) error {
		if rekeyHook != nil {
			return rekeyHook(n.state.NodeID, name)
		}
		return nil
	}
	if err := step("rotating"); err != nil {
		return err
	}
	if m.raft != nil {
		if err := m.raft.RotateEncryptionKey(keys.DEK()); err != nil {
			return fmt.Errorf("rewrite the raft data under the new data key: %w", err)
		}
	}
	if err := step("raft rewritten"); err != nil {
		return err
	}
	if err := n.identity.SetKeySealer(keys.DEK()); err != nil {
		return fmt.Errorf("reseal the node key: %w", err)
	}
	if err := step("node key resealed"); err != nil {
		return err
	}
	if err := keys.CommitDEK(); err != nil {
		return err
	}
	n.log.Info("data key rotated: the manager's raft data and node key are sealed with a new key, which the old one does not open")
	return nil
}

// Unlock implements control.Local: a running node is not locked.
func (n *Node) Unlock(context.Context, string) error { return nil }

// Status implements control.Local.
func (n *Node) Status(context.Context) (*control.NodeStatus, error) {
	s := &control.NodeStatus{NodeID: n.state.NodeID, Role: n.Role()}
	if m := n.Manager(); m != nil && m.Raft() != nil {
		s.RaftApplied = m.Raft().AppliedIndex()
	}
	n.keysMu.Lock()
	if n.keys != nil {
		s.Autolock = n.keys.Locked()
	}
	n.keysMu.Unlock()
	return s, nil
}

// followAutolock keeps the manager's data key wrapped as the cluster says,
// until the manager's store closes: by the unlock key while autolock is
// on (deleting the key file beside the data, and rotating the data key
// when the unlock key is new to it), by a key file beside it while it is
// off. The leader makes the unlock key when autolock is on without one (a
// cluster initialised with it). Once applied, the manager reports the
// generation it applied in its node record (Node.DataKey), retrying until
// the write commits.
func (n *Node) followAutolock(ctx context.Context, m *Manager, keys *encryption.Keys) {
	read := func() (c *api.Cluster) {
		m.store.View(func(tx store.ReadTx) {
			if cs, err := tx.FindClusters(store.All); err == nil && len(cs) > 0 {
				c = cs[0]
			}
		})
		return c
	}
	w, err := m.store.ViewAndWatch(func(store.ReadTx) error { return nil }, store.ByKinds(api.KindCluster))
	if err != nil {
		n.log.Error("autolock: watch the cluster", "err", err)
		return
	}
	defer w.Close()
	n.keysMu.Lock()
	if n.keys == keys && keys.Rotating() {
		// A rotation a crash (or an error) interrupted: raft opened with
		// both keys and rewrote what was left; finish it.
		if err := n.finishRotation(m, keys); err != nil {
			n.log.Error("autolock: finish the data key rotation", "err", err)
		}
	}
	n.keysMu.Unlock()
	if !n.caughtUp(ctx, m) {
		return
	}
	var retry <-chan time.Time
	for {
		retry = nil
		if c := read(); c != nil {
			on := c.Spec.EncryptionConfig.AutoLockManagers
			n.applyAutolock(m, keys, on, c.UnlockKey)
			if !n.reportDataKey(ctx, m, keys, c.KEKGeneration) {
				retry = time.After(time.Second)
			}
		}
		if !waitClusterChange(ctx, w, retry) {
			return
		}
	}
}

// waitClusterChange waits until a transaction that changed the cluster
// object has committed (or the store was restored), or retry fires; false
// means ctx ended or the watch closed. The watch's filter passes every
// write's commit event too: reading the cluster again at each would copy
// it once per write of any kind.
func waitClusterChange(ctx context.Context, w *store.Watcher, retry <-chan time.Time) bool {
	changed := false
	for {
		select {
		case ev, open := <-w.Events():
			if !open {
				return false
			}
			switch {
			case ev.Action == store.ActionRestore:
				return true
			case ev.Action == store.ActionCommit:
				if changed {
					return true
				}
			default:
				changed = true
			}
		case <-retry:
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// caughtUp waits until the manager's store reflects every write committed
// before it asks (raft's ReadIndex), retrying until it does or ctx ends
// (false). Right after a restart the store holds the latest snapshot and
// applies the log after it in the background: acting on the cluster
// object of that snapshot would rewrap (and rotate) the data key under an
// unlock key the cluster has since replaced, and a stop before the newer
// one was seen would leave the data locked with the older key.
func (n *Node) caughtUp(ctx context.Context, m *Manager) bool {
	if m.raft == nil {
		return true
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := m.raft.ReadIndex(rctx)
		cancel()
		if err == nil {
			return true
		}
		n.log.Debug("autolock: waiting for the store to catch up", "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// reportDataKey writes the KEK generation the manager has applied into its
// node record, if it has applied the cluster's: false when it has not, or
// the write did not commit (try again).
func (n *Node) reportDataKey(ctx context.Context, m *Manager, keys *encryption.Keys, gen uint64) bool {
	if !n.AutolockApplied() {
		return false
	}
	n.keysMu.Lock()
	if n.keys != keys {
		n.keysMu.Unlock()
		return true // demoted meanwhile: nothing to report
	}
	want := api.NodeDataKey{KEKGeneration: gen, Locked: keys.Locked()}
	n.keysMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := m.store.UpdateContext(ctx, func(tx store.Tx) error {
		nd := tx.GetNode(n.state.NodeID)
		if nd == nil {
			return errors.New("the manager's node record is not written yet")
		}
		if nd.DataKey != nil && *nd.DataKey == want {
			return nil
		}
		nd.DataKey = &want
		return tx.UpdateNode(nd)
	})
	if err != nil {
		n.log.Debug("autolock: report the data key", "generation", gen, "err", err)
		return false
	}
	return true
}

func (n *Node) applyAutolock(m *Manager, keys *encryption.Keys, on bool, key string) {
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	if n.keys != keys {
		return // demoted meanwhile
	}
	switch {
	case on && key == "":
		if !m.IsLeader() {
			return
		}
		err := m.store.Update(func(tx store.Tx) error {
			cs, err := tx.FindClusters(store.All)
			if err != nil || len(cs) == 0 || !cs[0].Spec.EncryptionConfig.AutoLockManagers || cs[0].UnlockKey != "" {
				return err
			}
			cs[0].UnlockKey = encryption.NewUnlockKey()
			cs[0].KEKGeneration++
			return tx.UpdateCluster(cs[0])
		})
		if err != nil {
			n.log.Warn("autolock: make the unlock key", "err", err)
		}
	case on && (!keys.LockedWith(key) || keys.Rotating()):
		// A new unlock key: a new data key too (swarm/encryption), so
		// that a copy of the data dir from before, with the key that
		// wrapped it then, opens nothing written from now on.
		if err := keys.Rotate(key); err != nil {
			n.log.Error("autolock: lock the data key with the unlock key", "err", err)
			return
		}
		if err := n.finishRotation(m, keys); err != nil {
			n.log.Error("autolock: rotate the data key", "err", err)
			return
		}
		n.log.Info("autolock: this manager's data key is wrapped by the cluster's unlock key; a restart needs `apiaryctl swarm unlock`")
	case !on && keys.Locked():
		if err := keys.Unlocked(); err != nil {
			n.log.Error("autolock: unlock the data key", "err", err)
			return
		}
		n.log.Info("autolock off: this manager's data key is wrapped by a key file beside the data")
	}
}

// AutolockApplied reports whether the node's data key is wrapped as the
// cluster says: by its unlock key while autolock is on, with no data key
// rotation unfinished. Tests and apiaryd
// wait on it after turning autolock on.
func (n *Node) AutolockApplied() bool {
	m := n.Manager()
	if m == nil {
		return false
	}
	var on bool
	var key string
	m.store.View(func(tx store.ReadTx) {
		if cs, err := tx.FindClusters(store.All); err == nil && len(cs) > 0 {
			on, key = cs[0].Spec.EncryptionConfig.AutoLockManagers, cs[0].UnlockKey
		}
	})
	n.keysMu.Lock()
	defer n.keysMu.Unlock()
	if n.keys == nil {
		return false
	}
	if n.keys.Rotating() {
		return false
	}
	if on {
		return key != "" && n.keys.LockedWith(key)
	}
	return !n.keys.Locked()
}

// waitAutolock waits until the node's data key is wrapped as the cluster
// says (AutolockApplied).
func (n *Node) waitAutolock(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !n.AutolockApplied() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for autolock: %w", ctx.Err())
		}
	}
	return nil
}

// UnlockKey returns the cluster's unlock key as this manager's store has
// it ("" with autolock off, or on a worker).
func (n *Node) UnlockKey() string {
	m := n.Manager()
	if m == nil {
		return ""
	}
	var key string
	m.store.View(func(tx store.ReadTx) {
		if cs, err := tx.FindClusters(store.All); err == nil && len(cs) > 0 {
			key = cs[0].UnlockKey
		}
	})
	return key
}
