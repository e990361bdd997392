package dockerapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/docker/docker/api/types/swarm"
	docker "github.com/docker/docker/client"

	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/dockerapi"
	"github.com/apiary-io/apiary/swarm/encryption"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// Autolock through Docker's client: unlock-key with autolock off (no key),
// swarm update turning autolock on (inspect shows it, the key is the
// cluster's), rotateManagerUnlockKey (a new key; refused with nothing
// changed while autolock is off), and unlock on a running node (not
// locked).
func TestDockerAutolock(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1})
	a := serve(t, c, c.Members[0])
	ctx, cli := ctxT(t), a.cli
	if _, err := cli.SwarmGetUnlockKey(ctx); err == nil || !strings.Contains(err.Error(), "no unlock key is set") {
		t.Fatalf("unlock key with autolock off: %v", err)
	}
	sw, err := cli.SwarmInspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.SwarmUpdate(ctx, sw.Version, sw.Spec, swarm.UpdateFlags{RotateManagerUnlockKey: true}); err == nil || !strings.Contains(err.Error(), "autolock is off") {
		t.Fatalf("rotating with autolock off: %v", err)
	}
	if again, _ := cli.SwarmInspect(ctx); again.Version != sw.Version {
		t.Fatal("a refused rotation changed the cluster")
	}
	sw.Spec.EncryptionConfig.AutoLockManagers = true
	if err := cli.SwarmUpdate(ctx, sw.Version, sw.Spec, swarm.UpdateFlags{}); err != nil {
		t.Fatal(err)
	}
	if sw, err = cli.SwarmInspect(ctx); err != nil || !sw.Spec.EncryptionConfig.AutoLockManagers {
		t.Fatalf("inspect after autolock on: %+v %v", sw.Spec.EncryptionConfig, err)
	}
	key, err := cli.SwarmGetUnlockKey(ctx)
	if err != nil || !strings.HasPrefix(key.UnlockKey, encryption.UnlockKeyPrefix) {
		t.Fatalf("unlock key: %+v %v", key, err)
	}
	if ours, _ := c.Client(c.Members[0]).GetUnlockKey(ctx); ours != key.UnlockKey {
		t.Fatal("Docker's unlock key is not the cluster's")
	}
	if err := cli.SwarmUpdate(ctx, sw.Version, sw.Spec, swarm.UpdateFlags{RotateManagerUnlockKey: true}); err != nil {
		t.Fatal(err)
	}
	rotated, err := cli.SwarmGetUnlockKey(ctx)
	if err != nil || rotated.UnlockKey == key.UnlockKey || !strings.HasPrefix(rotated.UnlockKey, encryption.UnlockKeyPrefix) {
		t.Fatalf("after rotation: %+v %v", rotated, err)
	}
	if err := cli.SwarmUnlock(ctx, swarm.UnlockRequest{UnlockKey: rotated.UnlockKey}); err == nil || !strings.Contains(err.Error(), "not locked") {
		t.Fatalf("unlock on a running node: %v", err)
	}
	// Off again: Docker's CLI sends the spec it read, with the field false.
	sw, _ = cli.SwarmInspect(ctx)
	sw.Spec.EncryptionConfig.AutoLockManagers = false
	if err := cli.SwarmUpdate(ctx, sw.Version, sw.Spec, swarm.UpdateFlags{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.SwarmGetUnlockKey(ctx); err == nil {
		t.Fatal("an unlock key with autolock off again")
	}
}

// A locked node's server: /info says locked, /swarm/unlock hands the key
// to Config.Unlock (a wrong one is 400 and the node stays locked), and
// what needs the cluster answers that the swarm is locked, in Docker's
// words.
func TestDockerUnlockLockedNode(t *testing.T) {
	want := encryption.NewUnlockKey()
	var locked atomic.Bool
	locked.Store(true)
	cfg := dockerapi.DefaultConfig()
	cfg.Backend = lockedBackend{control.UnimplementedAPI{Err: control.ErrLocked}}
	cfg.Self = func() dockerapi.Self { return dockerapi.Self{NodeID: "n1", Hostname: "m1", Locked: locked.Load()} }
	cfg.Unlock = func(_ context.Context, key string) error {
		if key != want {
			return fmt.Errorf("%w: it does not open this manager's data", control.ErrWrongUnlockKey)
		}
		locked.Store(false)
		return nil
	}
	srv, err := dockerapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	cli, err := docker.NewClientWithOpts(docker.WithHost("tcp://"+strings.TrimPrefix(hs.URL, "http://")), docker.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxT(t)
	info, err := cli.Info(ctx)
	if err != nil || info.Swarm.LocalNodeState != swarm.LocalNodeStateLocked {
		t.Fatalf("info of a locked node: %+v %v", info.Swarm, err)
	}
	if _, err := cli.NodeList(ctx, swarm.NodeListOptions{}); err == nil || !strings.Contains(err.Error(), "docker swarm unlock") {
		t.Fatalf("node ls on a locked node: %v", err)
	}
	a := &apiServer{t: t, url: hs.URL}
	if code, msg := a.raw("POST", "/swarm/unlock", `{"UnlockKey":"`+encryption.NewUnlockKey()+`"}`); code != http.StatusBadRequest || !strings.Contains(msg, "unlock key") {
		t.Fatalf("a wrong key: %d %s", code, msg)
	}
	if !locked.Load() {
		t.Fatal("unlocked by a wrong key")
	}
	if err := cli.SwarmUnlock(ctx, swarm.UnlockRequest{UnlockKey: want}); err != nil || locked.Load() {
		t.Fatalf("unlock: %v (locked %v)", err, locked.Load())
	}
}

// lockedBackend is a locked node's: everything but Leave is ErrLocked.
type lockedBackend struct {
	control.UnimplementedAPI
}

func (lockedBackend) Leave(context.Context, bool) error { return control.ErrLocked }
