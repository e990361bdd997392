package controlapi_test

import (
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
