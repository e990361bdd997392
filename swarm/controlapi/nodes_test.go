package controlapi_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

func nodeObj(id, host string, role api.NodeRole, state api.NodeState) *api.Node {
	return &api.Node{
		ID:          id,
		Spec:        api.NodeSpec{Role: role, Availability: api.NodeAvailabilityActive},
		Description: &api.NodeDescription{Hostname: host},
		Status:      api.NodeStatus{State: state},
	}
}

func withNodes(t *testing.T, nodes ...*api.Node) (*controlapi.Server, *store.MemoryStore) {
	t.Helper()
	srv, s := newServer(t)
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, n := range nodes {
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		return nil
	})
	return srv, s
}

func TestNodeLookup(t *testing.T) {
	named := nodeObj("qqq111", "gamma", api.NodeRoleWorker, api.NodeStateReady)
	named.Spec.Name = "edge"
	srv, _ := withNodes(t,
		nodeObj("abc111", "alpha", api.NodeRoleWorker, api.NodeStateReady),
		nodeObj("abc222", "beta", api.NodeRoleWorker, api.NodeStateReady),
		named,
		nodeObj("zzz001", "twin", api.NodeRoleWorker, api.NodeStateDown),
		nodeObj("zzz002", "twin", api.NodeRoleWorker, api.NodeStateReady),
	)
	tests := []struct {
		ref, want string
		err       error
	}{
		{"abc111", "abc111", nil},
		{"beta", "abc222", nil},
		{"edge", "qqq111", nil},
		{"qqq", "qqq111", nil},
		{"abc", "", controlapi.ErrInvalidArgument},  // ambiguous prefix
		{"twin", "", controlapi.ErrInvalidArgument}, // ambiguous hostname
		{"nope", "", controlapi.ErrNotFound},
	}
	for _, tc := range tests {
		got, err := srv.GetNode(ctx, tc.ref)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("GetNode(%q): err = %v, want %v", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil || got.ID != tc.want {
			t.Errorf("GetNode(%q) = %v, %v; want %s", tc.ref, got, err, tc.want)
		}
	}
	list, err := srv.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range list {
		ids = append(ids, n.ID)
	}
	if want := []string{"abc111", "abc222", "qqq111", "zzz001", "zzz002"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ListNodes = %v, want by hostname then ID %v", ids, want)
	}
}

func TestUpdateNode(t *testing.T) {
	srv, s := withNodes(t, nodeObj("n1", "alpha", api.NodeRoleWorker, api.NodeStateReady))
	n, err := srv.GetNode(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	sp := n.Spec
	sp.Availability = api.NodeAvailabilityDrain
	sp.Labels = map[string]string{"zone": "a"}
	upd, err := srv.UpdateNode(ctx, "alpha", n.Meta.Version, sp)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Spec.Availability != api.NodeAvailabilityDrain || upd.Spec.Labels["zone"] != "a" {
		t.Errorf("updated spec = %+v", upd.Spec)
	}
	if upd.Status != n.Status || !reflect.DeepEqual(upd.Description, n.Description) {
		t.Error("UpdateNode changed more than the spec")
	}

	index := s.Index()
	// Stale version.
	if _, err := srv.UpdateNode(ctx, "n1", n.Meta.Version, sp); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale update: err = %v, want ErrConflict", err)
	}
	// Role change.
	promote := upd.Spec
	promote.Role = api.NodeRoleManager
	_, err = srv.UpdateNode(ctx, "n1", upd.Meta.Version, promote)
	invalidNaming(t, err, "role", "worker", "manager", "replication")
	// Invalid spec.
	bad := upd.Spec
	bad.Availability = "asleep"
	_, err = srv.UpdateNode(ctx, "n1", upd.Meta.Version, bad)
	invalidNaming(t, err, "availability")
	if s.Index() != index {
		t.Error("refused node updates wrote to the store")
	}
	if _, err := srv.UpdateNode(ctx, "nope", 1, sp); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("update of a missing node: err = %v, want ErrNotFound", err)
	}
}

func TestRemoveNode(t *testing.T) {
	srv, s := withNodes(t,
		nodeObj("ready", "ready-host", api.NodeRoleWorker, api.NodeStateReady),
		nodeObj("down", "down-host", api.NodeRoleWorker, api.NodeStateDown),
		nodeObj("mgr", "mgr-host", api.NodeRoleManager, api.NodeStateReady),
		nodeObj("mgr-down", "mgr-down-host", api.NodeRoleManager, api.NodeStateDown),
	)
	index := s.Index()
	err := srv.RemoveNode(ctx, "ready-host", false)
	invalidNaming(t, err, "ready", "force")
	for _, id := range []string{"mgr", "mgr-down"} {
		for _, force := range []bool{false, true} {
			err := srv.RemoveNode(ctx, id, force)
			invalidNaming(t, err, "manager")
		}
	}
	if s.Index() != index {
		t.Error("refused removals wrote to the store")
	}

	if err := srv.RemoveNode(ctx, "down", false); err != nil {
		t.Errorf("remove a down node: %v", err)
	}
	if err := srv.RemoveNode(ctx, "ready", true); err != nil {
		t.Errorf("forced removal of a ready node: %v", err)
	}
	for _, id := range []string{"down", "ready"} {
		if _, err := srv.GetNode(ctx, id); !errors.Is(err, controlapi.ErrNotFound) {
			t.Errorf("node %s after removal: err = %v, want ErrNotFound", id, err)
		}
	}
	if err := srv.RemoveNode(ctx, "down", false); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("second removal: err = %v, want ErrNotFound", err)
	}
}

func TestGetCluster(t *testing.T) {
	srv, s := newServer(t)
	if _, err := srv.GetCluster(ctx); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("GetCluster without a cluster: err = %v, want ErrNotFound", err)
	}
	c := &api.Cluster{ID: "c1", Spec: api.DefaultClusterSpec(), JoinTokens: api.JoinTokens{Worker: "w", Manager: "m"}}
	mustUpdate(t, s, func(tx store.Tx) error { return tx.CreateCluster(c) })
	got, err := srv.GetCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "c1" || got.Spec.Name != api.DefaultClusterName || got.JoinTokens != c.JoinTokens {
		t.Errorf("cluster = %+v", got)
	}
	if !strings.Contains(got.Spec.Name, "default") {
		t.Errorf("cluster name = %q", got.Spec.Name)
	}
}
