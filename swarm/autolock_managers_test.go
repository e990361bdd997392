package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/client"
	"github.com/apiary-io/apiary/swarm/encryption"
)

func managerNames(ms []client.DataKeyManager) string {
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	return strings.Join(names, ",")
}

// After the unlock key is rotated, each manager reports the KEK
// generation it has applied (its node's DataKey), and WaitDataKeys waits
// for every reachable one: with three managers, one stopped during the
// rotation and one slow to rewrite its data, the wait times out naming
// the slow one, then returns once it has applied, the stopped one listed
// as unreachable; unlocked with the key it had, the stopped one applies
// the new key too.
func TestUnlockKeyRotationReportsManagers(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfgs := map[string]swarm.NodeConfig{}
	nodes := map[string]*swarm.Node{}
	// Cleanups run last first: the hook is reset once the nodes stopped.
	t.Cleanup(func() { swarm.SetRekeyHook(nil) })
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Stop()
		}
	})
	cfgs["m1"] = nodeConfig(t, dir, "m1")
	c1cfg := cfgs["m1"]
	c1cfg.Manager.ClusterSpec.EncryptionConfig.AutoLockManagers = true
	m1, err := swarm.InitNode(ctx, c1cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes["m1"] = m1
	c1 := socketClient(t, c1cfg.DataDir)
	cluster, err := c1.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"m2", "m3"} {
		cfgs[name] = nodeConfig(t, dir, name)
		n, err := swarm.JoinNode(ctx, cfgs[name], cluster.JoinTokens.Manager, []string{c1cfg.ListenAddr})
		if err != nil {
			t.Fatal(err)
		}
		nodes[name] = n
	}
	wait := func(d time.Duration) (client.DataKeyStatus, error) {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return c1.WaitDataKeys(wctx, 50*time.Millisecond)
	}
	testutil.EventuallyWhy(t, 30*time.Second, "three managers report the generation of init --autolock", func() (bool, string) {
		st, err := c1.DataKeys(ctx)
		return err == nil && len(st.Applied) == 3 && st.Generation > 0, managerNames(st.Applied)
	})
	oldKey, err := c1.GetUnlockKey(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// m2 is slow: its rotation waits until released.
	m2ID := nodes["m2"].NodeID()
	release := make(chan struct{})
	var once sync.Once
	swarm.SetRekeyHook(func(nodeID, step string) error {
		if nodeID == m2ID && step == "rotating" {
			<-release
		}
		return nil
	})
	defer once.Do(func() { close(release) })
	nodes["m3"].Stop()
	delete(nodes, "m3")
	key, err := c1.RotateUnlockKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// m2 is reachable but has not applied: the wait times out naming it
	// (on a loaded machine m2's heartbeats may lag and make it
	// unreachable for a moment, when it is not waited for: ask again).
	testutil.EventuallyWhy(t, 60*time.Second, "a wait timing out on m2", func() (bool, string) {
		st, err := wait(time.Second)
		return errors.Is(err, context.DeadlineExceeded) && managerNames(st.Pending) == "m2" && strings.Contains(err.Error(), "m2 ("),
			fmt.Sprintf("%+v, %v", st, err)
	})
	once.Do(func() { close(release) })
	// m3 is waited for until the leader sees it unreachable.
	st, err := wait(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if managerNames(st.Applied) != "m1,m2" || managerNames(st.Unreachable) != "m3" {
		t.Fatalf("applied %s, unreachable %s; want m1,m2 and m3", managerNames(st.Applied), managerNames(st.Unreachable))
	}
	for _, m := range st.Applied {
		if m.Generation != st.Generation {
			t.Fatalf("%s at generation %d, the cluster at %d", m.Name, m.Generation, st.Generation)
		}
	}
	// m3 opens with the key it had, then takes the new one.
	nodes["m3"] = unlockThroughSocket(t, ctx, cfgs["m3"], encryption.NewUnlockKey(), oldKey)
	testutil.EventuallyWhy(t, 30*time.Second, "m3 applies the new key", func() (bool, string) {
		st, err := c1.DataKeys(ctx)
		return err == nil && len(st.Applied) == 3, managerNames(st.Applied) + " " + managerNames(st.Unreachable)
	})
	if !nodes["m3"].AutolockApplied() {
		t.Fatal("m3 reports the generation without having applied it")
	}
	nodes["m3"].Stop()
	delete(nodes, "m3")
	c3 := cfgs["m3"]
	if _, err := swarm.RestartNode(ctx, withKey(c3, oldKey)); err == nil {
		t.Fatal("m3 opens with the old key after applying the new")
	}
	if nodes["m3"], err = swarm.RestartNode(ctx, withKey(c3, key)); err != nil {
		t.Fatal(err)
	}
}

func withKey(cfg swarm.NodeConfig, key string) swarm.NodeConfig {
	cfg.UnlockKey = key
	return cfg
}
