package controlapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

func withCluster(t *testing.T) (*controlapi.Server, *store.MemoryStore) {
	t.Helper()
	srv, s := newServer(t)
	mustUpdate(t, s, func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{ID: "c1", Spec: api.DefaultClusterSpec()})
	})
	return srv, s
}

func TestUpdateCluster(t *testing.T) {
	srv, s := withCluster(t)
	cur, err := srv.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spec := cur.Spec
	spec.Dispatcher.HeartbeatPeriod = 7 * time.Second
	spec.CAConfig.NodeCertExpiry = 48 * time.Hour
	spec.Orchestration.TaskHistoryRetentionLimit = 2
	spec.Labels = map[string]string{"env": "prod"}
	got, err := srv.UpdateCluster(ctx, cur.Meta.Version, spec)
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Dispatcher.HeartbeatPeriod != 7*time.Second || got.Spec.CAConfig.NodeCertExpiry != 48*time.Hour ||
		got.Spec.Orchestration.TaskHistoryRetentionLimit != 2 || got.Spec.Labels["env"] != "prod" {
		t.Errorf("returned spec = %+v", got.Spec)
	}
	if got.Meta.Version <= cur.Meta.Version {
		t.Errorf("version %d after the update, was %d", got.Meta.Version, cur.Meta.Version)
	}
	var stored api.ClusterSpec
	s.View(func(tx store.ReadTx) { stored = tx.GetCluster("c1").Spec })
	if stored.Dispatcher.HeartbeatPeriod != 7*time.Second || stored.CAConfig.NodeCertExpiry != 48*time.Hour || stored.Orchestration.TaskHistoryRetentionLimit != 2 {
		t.Errorf("stored spec = %+v", stored)
	}
	// The caller's map is not the store's.
	spec.Labels["env"] = "changed"
	s.View(func(tx store.ReadTx) { stored = tx.GetCluster("c1").Spec })
	if stored.Labels["env"] != "prod" {
		t.Errorf("the store shares the caller's labels: %v", stored.Labels)
	}
	// Zero is each setting's default: adaptive heartbeats, 90-day
	// certificates, no history kept.
	zero := got.Spec
	zero.Dispatcher.HeartbeatPeriod, zero.CAConfig.NodeCertExpiry, zero.Orchestration.TaskHistoryRetentionLimit = 0, 0, 0
	if _, err := srv.UpdateCluster(ctx, got.Meta.Version, zero); err != nil {
		t.Errorf("zero settings: %v", err)
	}
}

// Each bad setting is refused naming its field, and nothing is written.
func TestUpdateClusterInvalid(t *testing.T) {
	srv, s := withCluster(t)
	cur, err := srv.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*api.ClusterSpec)
		field string
	}{
		{"negative heartbeat", func(s *api.ClusterSpec) { s.Dispatcher.HeartbeatPeriod = -time.Second }, "dispatcher.heartbeat_period"},
		{"heartbeat too fast", func(s *api.ClusterSpec) { s.Dispatcher.HeartbeatPeriod = api.MinHeartbeatPeriod - 1 }, "dispatcher.heartbeat_period"},
		{"heartbeat too slow", func(s *api.ClusterSpec) { s.Dispatcher.HeartbeatPeriod = api.MaxHeartbeatPeriod + 1 }, "dispatcher.heartbeat_period"},
		{"cert expiry too short", func(s *api.ClusterSpec) { s.CAConfig.NodeCertExpiry = 30 * time.Minute }, "ca_config.node_cert_expiry"},
		{"cert expiry too long", func(s *api.ClusterSpec) { s.CAConfig.NodeCertExpiry = api.MaxNodeCertExpiry + time.Hour }, "ca_config.node_cert_expiry"},
		{"negative history", func(s *api.ClusterSpec) { s.Orchestration.TaskHistoryRetentionLimit = -1 }, "orchestration.task_history_retention_limit"},
		{"history too long", func(s *api.ClusterSpec) { s.Orchestration.TaskHistoryRetentionLimit = api.MaxTaskHistoryRetention + 1 }, "orchestration.task_history_retention_limit"},
		{"renamed", func(s *api.ClusterSpec) { s.Name = "other" }, "name"},
		{"bad labels", func(s *api.ClusterSpec) { s.Labels = map[string]string{"": "x"} }, "labels"},
		{"gossip key rotation too fast", func(s *api.ClusterSpec) { s.Gossip.KeyRotation = api.MinGossipKeyRotation - 1 }, "gossip.key_rotation"},
		{"gossip key rotation too slow", func(s *api.ClusterSpec) { s.Gossip.KeyRotation = api.MaxGossipKeyRotation + 1 }, "gossip.key_rotation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := cur.Spec.Copy()
			tc.edit(&spec)
			_, err := srv.UpdateCluster(ctx, cur.Meta.Version, spec)
			invalidNaming(t, err, tc.field)
			var after *api.Cluster
			s.View(func(tx store.ReadTx) { after = tx.GetCluster("c1") })
			if after.Meta.Version != cur.Meta.Version {
				t.Errorf("a refused update wrote the cluster (version %d, was %d)", after.Meta.Version, cur.Meta.Version)
			}
		})
	}
}

func TestUpdateClusterConflict(t *testing.T) {
	srv, _ := withCluster(t)
	cur, err := srv.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else changes the cluster first (here, a token rotation
	// would do the same).
	first := cur.Spec
	first.Orchestration.TaskHistoryRetentionLimit = 3
	if _, err := srv.UpdateCluster(ctx, cur.Meta.Version, first); err != nil {
		t.Fatal(err)
	}
	second := cur.Spec
	second.Dispatcher.HeartbeatPeriod = 2 * time.Second
	if _, err := srv.UpdateCluster(ctx, cur.Meta.Version, second); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("update at a stale version: err = %v, want api.ErrConflict", err)
	}
	now, err := srv.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now.Spec.Orchestration.TaskHistoryRetentionLimit != 3 || now.Spec.Dispatcher.HeartbeatPeriod != 0 {
		t.Errorf("after the conflict the spec is %+v, want the first update's alone", now.Spec)
	}
}

func TestUpdateClusterWithoutCluster(t *testing.T) {
	srv, _ := newServer(t)
	if _, err := srv.UpdateCluster(ctx, 1, api.DefaultClusterSpec()); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

// The gossip keys' material never leaves the store: GetCluster (swarm
// inspect) shows their clocks and times only, and an update keeps them.
func TestGetClusterHidesGossipKeys(t *testing.T) {
	srv, s := withCluster(t)
	key := api.SecretBytes(bytes.Repeat([]byte{0x5a}, api.GossipKeyLen))
	made := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mustUpdate(t, s, func(tx store.Tx) error {
		c := tx.GetCluster("c1")
		c.GossipKeys = api.GossipKeyring{Keys: []api.GossipKey{{Key: key, Lamport: 7, CreatedAt: made}}}
		return tx.UpdateCluster(c)
	})
	got, err := srv.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GossipKeys.Keys) != 1 || got.GossipKeys.Keys[0].Key != nil || got.GossipKeys.Keys[0].Lamport != 7 || !got.GossipKeys.Keys[0].CreatedAt.Equal(made) {
		t.Fatalf("GetCluster gossip keys = %+v, want lamport 7 made %s without its material", got.GossipKeys, made)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if enc := base64.StdEncoding.EncodeToString(key); bytes.Contains(b, []byte(enc)) {
		t.Fatalf("the cluster's JSON carries a gossip key: %s", b)
	}
	spec := got.Spec
	spec.Gossip.KeyRotation = time.Hour
	if _, err := srv.UpdateCluster(ctx, got.Meta.Version, spec); err != nil {
		t.Fatal(err)
	}
	var stored *api.Cluster
	s.View(func(tx store.ReadTx) { stored = tx.GetCluster("c1") })
	if stored.Spec.Gossip.KeyRotation != time.Hour || len(stored.GossipKeys.Keys) != 1 || !bytes.Equal(stored.GossipKeys.Keys[0].Key, key) {
		t.Fatalf("after an update the store holds rotation %s and keys %d", stored.Spec.Gossip.KeyRotation, len(stored.GossipKeys.Keys))
	}
}
