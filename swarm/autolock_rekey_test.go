package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/seal"
	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/encryption"
)

// rekeyConfig is a manager's config that snapshots often, so that the
// raft dir holds snapshot files as well as a log.
func rekeyConfig(t *testing.T, dir, name string) swarm.NodeConfig {
	cfg := nodeConfig(t, dir, name)
	cfg.Manager.Raft.SnapshotInterval = 20
	cfg.Manager.Raft.SnapshotCatchUpEntries = 5
	return cfg
}

// writeSecrets creates n secrets named prefix-i holding prefix-i-data.
func writeSecrets(t *testing.T, ctx context.Context, c *swarm.Client, prefix string, n int) []byte {
	t.Helper()
	var last []byte
	for i := range n {
		last = fmt.Appendf(nil, "%s-%d-data-3b9e", prefix, i)
		if _, err := c.CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: fmt.Sprintf("%s-%d", prefix, i)}, Data: last}); err != nil {
			t.Fatal(err)
		}
	}
	return last
}

// initWithSecrets initialises a manager without autolock in dir, writes
// 30 secrets, stops it and returns its config and a copy of its data dir
// (with the key file beside the data).
func initWithSecrets(t *testing.T, ctx context.Context, dir string) (swarm.NodeConfig, string) {
	t.Helper()
	cfg := rekeyConfig(t, dir, "m1")
	m1, err := swarm.InitNode(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeSecrets(t, ctx, socketClient(t, cfg.DataDir), "early", 30)
	m1.Stop()
	return cfg, copyTree(t, cfg.DataDir)
}

// copyTree copies a stopped node's data dir.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// oldKeyOpensNothing checks that the DEK in before (a copy of the data dir
// with its key file, taken before autolock) opens nothing in the stopped
// manager's data dir now: not its raft data (log and snapshot files), not
// its node key; the key it has now opens both, with nothing left to
// rewrite, and no file holds late (a secret written after the rotation).
func oldKeyOpensNothing(t *testing.T, before string, cfg swarm.NodeConfig, unlockKey string, late []byte) {
	t.Helper()
	old, err := encryption.Open(before)
	if err != nil {
		t.Fatalf("the copy from before does not open with its key file: %v", err)
	}
	now, err := encryption.Unlock(cfg.DataDir, unlockKey)
	if err != nil {
		t.Fatal(err)
	}
	if now.Rotating() {
		t.Fatal("the rotation is still pending")
	}
	if old.DEK().Equal(now.DEK()) {
		t.Fatal("the data key was not rotated")
	}
	raftDir := filepath.Join(cfg.DataDir, "raft")
	snaps, _ := filepath.Glob(filepath.Join(raftDir, "snap", "*.snap"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot file: the check of snapshot files proves nothing")
	}
	for _, enc := range []raft.Encryption{{Key: old.DEK()}, {Key: seal.NewRandomKey(), Old: []raft.Cipher{old.DEK()}}} {
		if st, err := raft.OpenEncryptedDiskStorage(copyTree(t, raftDir), enc); !errors.Is(err, raft.ErrKey) {
			if st != nil {
				st.Close()
			}
			t.Fatalf("the raft data with the old data key: %v, want ErrKey", err)
		}
	}
	// Every snapshot file alone, as the only one (a log the old key does
	// not open would hide a snapshot it does).
	for _, s := range snaps {
		d := copyTree(t, raftDir)
		all, _ := filepath.Glob(filepath.Join(d, "snap", "*.snap"))
		for _, o := range all {
			if filepath.Base(o) != filepath.Base(s) {
				os.Remove(o)
			}
		}
		st, err := raft.OpenEncryptedDiskStorage(d, raft.Encryption{Key: now.DEK(), Old: []raft.Cipher{old.DEK()}})
		if err == nil {
			if st.Rekeyed() {
				t.Errorf("%s or the log was still under the old key", s)
			}
			st.Close()
		}
	}
	st, err := raft.OpenEncryptedDiskStorage(copyTree(t, raftDir), raft.Encryption{Key: now.DEK(), Old: []raft.Cipher{old.DEK()}})
	if err != nil {
		t.Fatalf("the raft data with the new key: %v", err)
	}
	if st.Rekeyed() {
		t.Fatal("something in the raft data was still under the old key")
	}
	st.Close()
	if _, err := pki.ReadNodeKeyPEM(cfg.DataDir, old.DEK()); !errors.Is(err, pki.ErrKeySealed) {
		t.Fatalf("the node key with the old data key: %v, want ErrKeySealed", err)
	}
	if _, err := pki.ReadNodeKeyPEM(cfg.DataDir, now.DEK()); err != nil {
		t.Fatalf("the node key with the new data key: %v", err)
	}
	if found := leaks(t, cfg.DataDir, map[string][]byte{"the late secret": late, "a PRIVATE KEY marker": []byte("PRIVATE KEY")}); len(found) > 0 {
		t.Fatal(found)
	}
}

// Autolock turned on rotates the manager's data key: a copy of its data
// dir taken before, with the key file beside it, opens nothing the
// manager holds once the rotation is done (its raft log, snapshot files
// and node key), while the manager ran on without a restart. Rotating the
// unlock key rotates it again.
func TestAutolockRotatesDataKey(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, before := initWithSecrets(t, ctx, dir)
	m1, err := swarm.RestartNode(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { m1.Stop() }()
	c := socketClient(t, cfg.DataDir)
	if _, err := c.EditCluster(ctx, func(s *api.ClusterSpec) error { s.EncryptionConfig.AutoLockManagers = true; return nil }); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 30*time.Second, "autolock applied", func() (bool, string) { return m1.AutolockApplied(), "" })
	key, err := c.GetUnlockKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	late := writeSecrets(t, ctx, c, "late", 30)
	m1.Stop()
	oldKeyOpensNothing(t, before, cfg, key, late)

	// The unlock key rotated: the data key again.
	before = copyTree(t, cfg.DataDir)
	cfg.UnlockKey = key
	if m1, err = swarm.RestartNode(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	c = socketClient(t, cfg.DataDir)
	if key, err = c.RotateUnlockKey(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWhy(t, 30*time.Second, "the new unlock key applied", func() (bool, string) { return m1.AutolockApplied(), "" })
	late = writeSecrets(t, ctx, c, "later", 30)
	m1.Stop()
	// The copy from before is locked with the old unlock key: open its
	// DEK with it, as someone who had both would.
	oldKeys, err := encryption.Unlock(before, cfg.UnlockKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := oldKeys.Unlocked(); err != nil { // the copy only: a key file beside it
		t.Fatal(err)
	}
	oldKeyOpensNothing(t, before, cfg, key, late)
	cfg.UnlockKey = key
	if m1, err = swarm.RestartNode(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	c = socketClient(t, cfg.DataDir)
	testutil.EventuallyWhy(t, 30*time.Second, "every secret after the restart", func() (bool, string) {
		ss, err := c.ListSecrets(ctx, control.ObjectFilter{})
		return err == nil && len(ss) == 90, fmt.Sprint(len(ss), err)
	})
}

// A crash between any two steps of the rotation (the dek file written
// with the new key pending, the raft data rewritten, the node key
// resealed) leaves a manager that starts with the unlock key, finishes the
// rotation as it starts, and keeps every secret; the old key opens
// nothing after.
func TestAutolockRotationCrash(t *testing.T) {
	for _, crashAfter := range []string{"rotating", "raft rewritten", "node key resealed"} {
		t.Run(crashAfter, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cfg, before := initWithSecrets(t, ctx, dir)
			var mu sync.Mutex
			crashed := false
			swarm.SetRekeyHook(func(_, step string) error {
				mu.Lock()
				defer mu.Unlock()
				if step == crashAfter || crashed {
					crashed = true
					return errors.New("crash")
				}
				return nil
			})
			m1, err := swarm.RestartNode(ctx, cfg)
			if err != nil {
				swarm.SetRekeyHook(nil)
				t.Fatal(err)
			}
			// Cleanups run last first: the hook is reset once m1 stopped.
			t.Cleanup(func() { swarm.SetRekeyHook(nil) })
			t.Cleanup(func() { m1.Stop() })
			c := socketClient(t, cfg.DataDir)
			if _, err := c.EditCluster(ctx, func(s *api.ClusterSpec) error { s.EncryptionConfig.AutoLockManagers = true; return nil }); err != nil {
				t.Fatal(err)
			}
			testutil.EventuallyWhy(t, 30*time.Second, "the crash", func() (bool, string) {
				mu.Lock()
				defer mu.Unlock()
				return crashed, ""
			})
			key, err := c.GetUnlockKey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m1.Stop()
			swarm.SetRekeyHook(nil)
			if k, err := encryption.Unlock(cfg.DataDir, key); err != nil || !k.Rotating() {
				t.Fatalf("after the crash: rotating %v, %v", k != nil && k.Rotating(), err)
			}
			cfg.UnlockKey = key
			if m1, err = swarm.RestartNode(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			testutil.EventuallyWhy(t, 30*time.Second, "the rotation finished", func() (bool, string) { return m1.AutolockApplied(), "" })
			c = socketClient(t, cfg.DataDir)
			late := writeSecrets(t, ctx, c, "late", 10)
			testutil.EventuallyWhy(t, 30*time.Second, "every secret", func() (bool, string) {
				ss, err := c.ListSecrets(ctx, control.ObjectFilter{})
				return err == nil && len(ss) == 40, fmt.Sprint(len(ss), err)
			})
			m1.Stop()
			oldKeyOpensNothing(t, before, cfg, key, late)
		})
	}
}
