package swarm_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/encryption"
)

// secretsAtRest returns what must never be in a manager's files: the
// cluster's root key (PEM and DER), its join token secrets and unlock key,
// and a secret's bytes (raw and base64).
func secretsAtRest(t *testing.T, n *swarm.Node, secret []byte) map[string][]byte {
	t.Helper()
	var c *api.Cluster
	n.Manager().Store().View(func(tx store.ReadTx) {
		cs, err := tx.FindClusters(store.All)
		if err != nil || len(cs) == 0 {
			t.Fatalf("cluster: %v", err)
		}
		c = cs[0]
	})
	var rec pki.CARecord
	if err := json.Unmarshal(c.CAState, &rec); err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(rec.RootKey)
	if b == nil {
		t.Fatal("no root key")
	}
	if _, err := x509.ParseECPrivateKey(b.Bytes); err != nil {
		if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
			t.Fatalf("root key: %v", err)
		}
	}
	out := map[string][]byte{
		"a PRIVATE KEY marker": []byte("PRIVATE KEY"),
		"the root key's DER":   b.Bytes,
		"the root key's PEM":   rec.RootKey[len("-----BEGIN EC PRIVATE KEY-----\n")+10 : len("-----BEGIN EC PRIVATE KEY-----\n")+60],
		"the worker secret":    []byte(rec.WorkerSecret),
		"the manager secret":   []byte(rec.ManagerSecret),
		"the secret":           secret,
		"the secret in base64": []byte(base64.StdEncoding.EncodeToString(secret)),
	}
	if c.UnlockKey != "" {
		out["the unlock key"] = []byte(c.UnlockKey)
	}
	return out
}

// loadIdentity loads the node identity in dataDir, a manager's node key
// opened with its data key.
func loadIdentity(t *testing.T, dataDir string) (*pki.NodeIdentity, error) {
	t.Helper()
	if !encryption.Exists(dataDir) {
		return pki.LoadNodeIdentity(dataDir)
	}
	keys, err := encryption.Open(dataDir)
	if err != nil {
		return nil, err
	}
	return pki.LoadSealedNodeIdentity(dataDir, keys.DEK())
}

// leaks lists the files under dir holding any of secrets.
func leaks(t *testing.T, dir string, secrets map[string][]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for what, s := range secrets {
			if bytes.Contains(b, s) {
				found = append(found, fmt.Sprintf("%s holds %s", p, what))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// raftDigest lists the raft dir's files with their checksums.
func raftDigest(t *testing.T, dataDir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(filepath.Join(dataDir, "raft"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		c, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "%s %08x\n", p, crc32.ChecksumIEEE(c))
		return nil
	})
	return b.String()
}

// unlockThroughSocket restarts the locked manager of cfg as apiaryd does:
// WaitForUnlock serves its socket, which answers only Unlock and Status
// and refuses a wrong key; raft does not start before the right key.
func unlockThroughSocket(t *testing.T, ctx context.Context, cfg swarm.NodeConfig, wrong, key string) *swarm.Node {
	t.Helper()
	if !swarm.Locked(cfg.DataDir) {
		t.Fatal("the manager's data is not locked")
	}
	if _, err := swarm.RestartNode(ctx, cfg); !errors.Is(err, swarm.ErrLocked) {
		t.Fatalf("restart without the key: %v, want ErrLocked", err)
	}
	before := raftDigest(t, cfg.DataDir)
	got := make(chan string, 1)
	errc := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		k, err := swarm.WaitForUnlock(wctx, cfg.DataDir, quietLogger())
		got <- k
		errc <- err
	}()
	c := socketClient(t, cfg.DataDir)
	testutil.EventuallyWhy(t, 10*time.Second, "the locked socket answers", func() (bool, string) {
		st, err := c.NodeStatus(ctx)
		if err != nil {
			return false, err.Error()
		}
		return st.Locked && st.Role == "manager", fmt.Sprintf("%+v", st)
	})
	if _, err := c.GetCluster(ctx); !errors.Is(err, control.ErrLocked) {
		t.Fatalf("GetCluster on a locked manager: %v, want ErrLocked", err)
	}
	if err := c.Leave(ctx, true); !errors.Is(err, control.ErrLocked) {
		t.Fatalf("Leave on a locked manager: %v, want ErrLocked", err)
	}
	for _, bad := range []string{wrong, "not a key"} {
		if err := c.Unlock(ctx, bad); !errors.Is(err, control.ErrWrongUnlockKey) {
			t.Fatalf("unlock with %q: %v, want ErrWrongUnlockKey", bad, err)
		}
	}
	if after := raftDigest(t, cfg.DataDir); after != before {
		t.Fatalf("the raft dir changed while locked:\n%s\n%s", before, after)
	}
	if err := c.Unlock(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	cfg.UnlockKey = <-got
	n, err := swarm.RestartNode(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The whole of autolock on two managers: init --autolock; nothing
// sensitive in any file of either manager; a restarted manager locked
// until unlocked through its socket (a wrong key refused, raft not
// started); the key rotated (the old one refused after, the new one
// works); autolock off (restarts alone) and on again (a new key); and
// force-new-cluster from a locked manager's data.
func TestAutolock(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c1cfg := nodeConfig(t, dir, "m1")
	c1cfg.Manager.ClusterSpec.EncryptionConfig.AutoLockManagers = true
	m1, err := swarm.InitNode(ctx, c1cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*swarm.Node{"m1": m1}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Stop()
		}
	})
	if !m1.AutolockApplied() || !swarm.Locked(c1cfg.DataDir) {
		t.Fatal("init --autolock returned with the data not locked")
	}
	c1 := socketClient(t, c1cfg.DataDir)
	key, err := c1.GetUnlockKey(ctx)
	if err != nil || !strings.HasPrefix(key, encryption.UnlockKeyPrefix) {
		t.Fatalf("unlock key %q: %v", key, err)
	}
	if cl, _ := c1.GetCluster(ctx); cl.UnlockKey != "" {
		t.Fatal("GetCluster returns the unlock key")
	}
	cluster, _ := c1.GetCluster(ctx)
	c2cfg := nodeConfig(t, dir, "m2")
	m2, err := swarm.JoinNode(ctx, c2cfg, cluster.JoinTokens.Manager, []string{c1cfg.ListenAddr})
	if err != nil {
		t.Fatal(err)
	}
	nodes["m2"] = m2
	secret := []byte("the-secret-bytes-7c1f0e9a")
	if _, err := c1.CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: "s"}, Data: secret}); err != nil {
		t.Fatal(err)
	}
	applied := func(what string, ns ...*swarm.Node) {
		t.Helper()
		testutil.EventuallyWhy(t, 20*time.Second, what, func() (bool, string) {
			for _, n := range ns {
				if !n.AutolockApplied() {
					return false, n.NodeID() + " not yet"
				}
			}
			return true, ""
		})
	}
	applied("the joined manager locks its data", m1, m2)
	scan := func(when string) {
		t.Helper()
		secrets := secretsAtRest(t, m1, secret)
		for _, d := range []string{c1cfg.DataDir, c2cfg.DataDir} {
			if found := leaks(t, d, secrets); len(found) > 0 {
				t.Fatalf("%s: %v", when, found)
			}
		}
	}
	scan("after init --autolock and a join")

	restart := func(cfg swarm.NodeConfig, name, wrong, key string) {
		t.Helper()
		nodes[name].Stop()
		delete(nodes, name)
		n := unlockThroughSocket(t, ctx, cfg, wrong, key)
		nodes[name] = n
		c := socketClient(t, cfg.DataDir)
		testutil.EventuallyWhy(t, 30*time.Second, "the secret after the restart", func() (bool, string) {
			_, err := c.GetSecret(ctx, "s")
			return err == nil, fmt.Sprint(err)
		})
	}
	restart(c1cfg, "m1", encryption.NewUnlockKey(), key)
	// A connection from before a restart may have gone to the locked
	// socket: dial again after each.
	c1 = socketClient(t, c1cfg.DataDir)

	// Rotation: the old key opens nothing once each manager has the new.
	old := key
	if key, err = c1.RotateUnlockKey(ctx); err != nil || key == old {
		t.Fatalf("rotate: %q %v", key, err)
	}
	applied("both managers rewrap with the new key", nodes["m1"], nodes["m2"])
	restart(c2cfg, "m2", old, key)
	restart(c1cfg, "m1", old, key)
	c1 = socketClient(t, c1cfg.DataDir)
	scan("after the rotation")

	// Off: a manager restarts alone.
	if _, err := c1.EditCluster(ctx, func(s *api.ClusterSpec) error { s.EncryptionConfig.AutoLockManagers = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.GetUnlockKey(ctx); !errors.Is(err, control.ErrNoUnlockKey) {
		t.Fatalf("unlock key with autolock off: %v", err)
	}
	applied("both managers unlocked", nodes["m1"], nodes["m2"])
	nodes["m1"].Stop()
	if swarm.Locked(c1cfg.DataDir) {
		t.Fatal("locked with autolock off")
	}
	if nodes["m1"], err = swarm.RestartNode(ctx, c1cfg); err != nil {
		t.Fatal(err)
	}
	c1 = socketClient(t, c1cfg.DataDir)
	// On again: a new key.
	if _, err := c1.EditCluster(ctx, func(s *api.ClusterSpec) error { s.EncryptionConfig.AutoLockManagers = true; return nil }); err != nil {
		t.Fatal(err)
	}
	again, err := c1.GetUnlockKey(ctx)
	if err != nil || again == key {
		t.Fatalf("a new key when autolock is on again: %q %v", again, err)
	}
	applied("both managers locked again", nodes["m1"], nodes["m2"])
	restart(c1cfg, "m1", key, again)
	scan("after autolock off and on")

	// Force a new cluster from m1's locked data: m2 is gone for good.
	for _, name := range []string{"m1", "m2"} {
		nodes[name].Stop()
		delete(nodes, name)
	}
	force := c1cfg
	force.ForceNewCluster = true
	if _, err := swarm.RestartNode(ctx, force); !errors.Is(err, swarm.ErrLocked) {
		t.Fatalf("force-new-cluster without the key: %v", err)
	}
	force.UnlockKey = again
	if nodes["m1"], err = swarm.RestartNode(ctx, force); err != nil {
		t.Fatal(err)
	}
	c := socketClient(t, c1cfg.DataDir)
	testutil.EventuallyWhy(t, 30*time.Second, "the secret after force-new-cluster", func() (bool, string) {
		_, err := c.GetSecret(ctx, "s")
		return err == nil, fmt.Sprint(err)
	})
	// followAutolock applies the cluster's autolock as the manager
	// starts.
	testutil.EventuallyWhy(t, 20*time.Second, "force-new-cluster: autolock applied", func() (bool, string) {
		return nodes["m1"].AutolockApplied(), ""
	})
	scan("after force-new-cluster")
}

// A manager's data dir of a version without encryption (a plain node key,
// a plaintext raft log and snapshots, no keys) starts, and is sealed as
// it starts: no private key marker or secret is left in any file.
func TestPlaintextManagerDirIsSealedOnStart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := nodeConfig(t, dir, "m1")
	m1, err := swarm.InitNode(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("older-version-secret-5d2a")
	c := socketClient(t, cfg.DataDir)
	if _, err := c.CreateSecret(ctx, api.SecretSpec{Annotations: api.Annotations{Name: "s"}, Data: secret}); err != nil {
		t.Fatal(err)
	}
	secrets := secretsAtRest(t, m1, secret)
	m1.Stop()
	// Make it an older version's dir: everything in plaintext, no keys.
	keys, err := encryption.Open(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := raft.OpenEncryptedDiskStorage(filepath.Join(cfg.DataDir, "raft"), raft.Encryption{Old: []raft.Cipher{keys.DEK()}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	id, err := pki.LoadSealedNodeIdentity(cfg.DataDir, keys.DEK())
	if err != nil {
		t.Fatal(err)
	}
	if err := id.SetKeySealer(nil); err != nil {
		t.Fatal(err)
	}
	if err := encryption.Remove(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	if found := leaks(t, cfg.DataDir, secrets); len(found) == 0 {
		t.Fatal("the plaintext dir shows nothing: the test proves nothing")
	}
	m1, err = swarm.RestartNode(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Stop()
	c = socketClient(t, cfg.DataDir)
	testutil.EventuallyWhy(t, 30*time.Second, "the secret after the restart", func() (bool, string) {
		_, err := c.GetSecret(ctx, "s")
		return err == nil, fmt.Sprint(err)
	})
	if found := leaks(t, cfg.DataDir, secrets); len(found) > 0 {
		t.Fatalf("after starting: %v", found)
	}
}
