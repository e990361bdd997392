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
	return pki.LoadSealedNodeIdentity(dataDir, keys.DEK())
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
	if err := n.identity.SetKeySealer(n.keys.DEK()); err != nil {
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

// raftEncryption is what the manager's raft storage seals with.
func raftEncryption(k *encryption.Keys) raft.Encryption { return raft.Encryption{Key: k.DEK()} }

// Unlock implements control.Local: a running node is not locked.
func (n *Node) Unlock(context.Context, string) error { return nil }

// Status implements control.Local.
func (n *Node) Status(context.Context) (*control.NodeStatus, error) {
	s := &control.NodeStatus{NodeID: n.state.NodeID, Role: n.Role()}
	n.keysMu.Lock()
	if n.keys != nil {
		s.Autolock = n.keys.Locked()
	}
	n.keysMu.Unlock()
	return s, nil
}

// followAutolock keeps the manager's data key wrapped as the cluster says,
// until the manager's store closes: by the unlock key while autolock is
// on (deleting the key file beside the data), by a key file beside it
// while it is off. The leader makes the unlock key when autolock is on
// without one (a cluster initialised with it).
func (n *Node) followAutolock(m *Manager, keys *encryption.Keys) {
	read := func() (on bool, key string, ok bool) {
		m.store.View(func(tx store.ReadTx) {
			cs, err := tx.FindClusters(store.All)
			if err == nil && len(cs) > 0 {
				on, key, ok = cs[0].Spec.EncryptionConfig.AutoLockManagers, cs[0].UnlockKey, true
			}
		})
		return
	}
	w, err := m.store.ViewAndWatch(func(store.ReadTx) error { return nil }, store.ByKinds(api.KindCluster))
	if err != nil {
		n.log.Error("autolock: watch the cluster", "err", err)
		return
	}
	defer w.Close()
	for {
		on, key, ok := read()
		if ok {
			n.applyAutolock(m, keys, on, key)
		}
		if _, open := <-w.Events(); !open {
			return
		}
	}
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
			return tx.UpdateCluster(cs[0])
		})
		if err != nil {
			n.log.Warn("autolock: make the unlock key", "err", err)
		}
	case on && !keys.LockedWith(key):
		if err := keys.Lock(key); err != nil {
			n.log.Error("autolock: lock the data key with the unlock key", "err", err)
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
// cluster says: by its unlock key while autolock is on. Tests and apiaryd
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
