package controlapi_test

// A service's next versions: update, scale and rollback.

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// An update reads the stored service without copying it and writes a new
// version: neither the stored one nor the caller's spec changes.
func TestUpdateServiceLeavesTheStoredAndTheGivenAlone(t *testing.T) {
	srv, s := newServer(t)
	net := mustCreateNetwork(t, srv, netSpec("front"))
	first := spec("web", 1)
	first.TaskTemplate.Networks = []api.NetworkAttachmentConfig{{Target: "front"}}
	first.Labels = map[string]string{"v": "1"}
	svc := mustCreate(t, srv, first)
	var old *api.Service
	s.ViewShared(func(tx store.ReadTx) { old = tx.GetService(svc.ID) })
	before := old.Copy()

	given := spec("web", 2)
	given.TaskTemplate.Networks = []api.NetworkAttachmentConfig{{Target: "front"}}
	given.Labels = map[string]string{"v": "2"}
	upd, err := srv.UpdateService(ctx, "web", svc.Meta.Version, given)
	if err != nil {
		t.Fatal(err)
	}
	if got := upd.Spec.TaskTemplate.Networks[0].Target; got != net.ID {
		t.Errorf("the update's network is %q, want its ID %s", got, net.ID)
	}
	if given.TaskTemplate.Networks[0].Target != "front" || given.UpdateConfig != nil || given.Labels["v"] != "2" {
		t.Errorf("UpdateService changed the caller's spec: %+v", given)
	}
	if !reflect.DeepEqual(old, before) {
		t.Errorf("the stored version 1 changed:\n got %+v\nwant %+v", old, before)
	}
	if !reflect.DeepEqual(*upd.PreviousSpec, before.Spec) {
		t.Errorf("previous spec = %+v, want version 1's", upd.PreviousSpec)
	}
	// The new version's previous spec is its own: a reader changing a
	// copy of it changes nothing stored.
	upd.PreviousSpec.Labels["v"] = "changed"
	if again, _ := srv.GetService(ctx, "web"); again.PreviousSpec.Labels["v"] != "1" || old.Spec.Labels["v"] != "1" {
		t.Error("a returned service shares its previous spec with the store")
	}
	// The store keeps the new version as the update made it, and that
	// must not hold the version before it: each would keep the one
	// before alive, every version of the service.
	var cur *api.Service
	s.ViewShared(func(tx store.ReadTx) { cur = tx.GetService(svc.ID) })
	if cur.PreviousSpec == &old.Spec {
		t.Error("the stored version 2's previous spec is version 1's own field: every version stays reachable")
	}
}

// Updates that race for the dynamic ports all land, each on a port of its
// own: one that lost its port at commit is tried again from the spec as
// given (its network named, not yet resolved).
func TestConcurrentUpdatesTakeDistinctDynamicPorts(t *testing.T) {
	srv, _ := newServer(t)
	net := mustCreateNetwork(t, srv, netSpec("front"))
	const n = 8
	var svcs []*api.Service
	for i := range n {
		svcs = append(svcs, mustCreate(t, srv, spec(fmt.Sprintf("web-%d", i), 1)))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	out := make([]*api.Service, n)
	for i, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := spec(svc.Spec.Name, 1)
			next.TaskTemplate.Networks = []api.NetworkAttachmentConfig{{Target: "front"}}
			next = withPorts(next, tcp(0))
			out[i], errs[i] = srv.UpdateService(ctx, svc.ID, svc.Meta.Version, next)
		}()
	}
	wg.Wait()
	ports := map[uint32]string{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if got := out[i].Spec.TaskTemplate.Networks[0].Target; got != net.ID {
			t.Errorf("update %d: network %q, want %s", i, got, net.ID)
		}
		p := out[i].Endpoint.Ports[0].PublishedPort
		if other, taken := ports[p]; taken {
			t.Errorf("%s and %s both publish %d", other, out[i].Spec.Name, p)
		}
		ports[p] = out[i].Spec.Name
	}
}

func TestUpdateService(t *testing.T) {
	srv, s := newServer(t)
	svc := mustCreate(t, srv, spec("web", 1))
	next := spec("web", 4)
	next.Labels = map[string]string{"v": "2"}
	upd, err := srv.UpdateService(ctx, "web", svc.Meta.Version, next)
	if err != nil {
		t.Fatal(err)
	}
	if upd.SpecVersion != 2 || upd.Spec.Mode.Replicated.Replicas != 4 || upd.Spec.Labels["v"] != "2" {
		t.Errorf("updated = %+v", upd)
	}
	if upd.PreviousSpec == nil || !reflect.DeepEqual(*upd.PreviousSpec, svc.Spec) || upd.PreviousSpecVersion != 1 {
		t.Errorf("previous spec = %+v (version %d), want the original", upd.PreviousSpec, upd.PreviousSpecVersion)
	}
	if upd.Meta.Version <= svc.Meta.Version {
		t.Errorf("version did not advance: %d -> %d", svc.Meta.Version, upd.Meta.Version)
	}

	// A stale version is a conflict; nothing changes.
	index := s.Index()
	_, err = srv.UpdateService(ctx, svc.ID, svc.Meta.Version, spec("web", 9))
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale update: err = %v, want ErrConflict", err)
	}
	if s.Index() != index {
		t.Error("stale update wrote to the store")
	}
	// The mode cannot change.
	_, err = srv.UpdateService(ctx, svc.ID, upd.Meta.Version, globalSpec("web"))
	invalidNaming(t, err, "mode", "replicated", "global")
	if s.Index() != index {
		t.Error("mode change wrote to the store")
	}
	// Renaming onto another service's name is refused.
	mustCreate(t, srv, spec("api", 1))
	index = s.Index()
	if _, err := srv.UpdateService(ctx, svc.ID, upd.Meta.Version, spec("api", 1)); !errors.Is(err, store.ErrNameConflict) {
		t.Errorf("rename onto an existing name: err = %v, want ErrNameConflict", err)
	}
	if s.Index() != index {
		t.Error("refused rename wrote to the store")
	}
	// Unknown service.
	if _, err := srv.UpdateService(ctx, "nope", 1, spec("nope", 1)); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("update of a missing service: err = %v, want ErrNotFound", err)
	}
}

func TestPublishedPortConflicts(t *testing.T) {
	srv, s := newServer(t)
	a := mustCreate(t, srv, withPorts(spec("a", 1), tcp(8080)))

	index := s.Index()
	_, err := srv.CreateService(ctx, withPorts(spec("b", 1), tcp(9090), tcp(8080)))
	invalidNaming(t, err, `"b"`, `"a"`, "8080", "endpoint_spec.ports[1].published_port")
	if s.Index() != index {
		t.Error("conflicting create wrote to the store")
	}

	// Another protocol, a host-mode port, or a dynamic one do not conflict.
	udp := api.PortConfig{TargetPort: 53, PublishedPort: 8080, Protocol: api.PortProtocolUDP}
	host := api.PortConfig{TargetPort: 80, PublishedPort: 8080, PublishMode: api.PublishModeHost}
	b := mustCreate(t, srv, withPorts(spec("b", 1), udp, host, tcp(0)))

	// A service may keep its own ports on update.
	if _, err := srv.UpdateService(ctx, a.ID, a.Meta.Version, withPorts(spec("a", 2), tcp(8080))); err != nil {
		t.Errorf("update keeping its own port: %v", err)
	}
	// But not take another's.
	index = s.Index()
	_, err = srv.UpdateService(ctx, b.ID, b.Meta.Version, withPorts(spec("b", 1), tcp(8080)))
	invalidNaming(t, err, `"b"`, `"a"`, "8080")
	if s.Index() != index {
		t.Error("conflicting update wrote to the store")
	}

	// Ports the allocator handed out dynamically count too.
	mustUpdate(t, s, func(tx store.Tx) error {
		svc := tx.GetService(b.ID)
		svc.Endpoint = &api.Endpoint{Spec: *svc.Spec.EndpointSpec, Ports: []api.PortConfig{
			{TargetPort: 80, PublishedPort: 30000, Protocol: api.PortProtocolTCP, PublishMode: api.PublishModeIngress},
		}}
		return tx.UpdateService(svc)
	})
	_, err = srv.CreateService(ctx, withPorts(spec("c", 1), tcp(30000)))
	invalidNaming(t, err, `"c"`, `"b"`, "30000")
}

func TestScaleService(t *testing.T) {
	srv, s := newServer(t)
	svc := mustCreate(t, srv, spec("web", 1))
	out, err := srv.ScaleService(ctx, "web", 5)
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.Mode.Replicated.Replicas != 5 || out.SpecVersion != svc.SpecVersion+1 {
		t.Errorf("scaled = %+v", out)
	}
	if out.PreviousSpec == nil || out.PreviousSpec.Mode.Replicated.Replicas != 1 {
		t.Errorf("previous spec after scale = %+v", out.PreviousSpec)
	}

	index := s.Index()
	_, err = srv.ScaleService(ctx, "web", -2)
	invalidNaming(t, err, "replicas")
	if s.Index() != index {
		t.Error("invalid scale wrote to the store")
	}
	g := mustCreate(t, srv, globalSpec("agent"))
	index = s.Index()
	_, err = srv.ScaleService(ctx, g.ID, 3)
	invalidNaming(t, err, "replicas", "global")
	if s.Index() != index {
		t.Error("refused scale wrote to the store")
	}
	if _, err := srv.ScaleService(ctx, "nope", 3); !errors.Is(err, controlapi.ErrNotFound) {
		t.Errorf("scale of a missing service: err = %v, want ErrNotFound", err)
	}
}

func TestScaleServiceRetriesConcurrentEdits(t *testing.T) {
	srv, _ := newServer(t)
	svc := mustCreate(t, srv, spec("web", 1))
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := srv.ScaleService(ctx, svc.ID, int64(i+2))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent scale: %v", err)
		}
	}
	got, err := srv.GetService(ctx, svc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SpecVersion != 1+n {
		t.Errorf("spec version = %d after %d scales, want %d", got.SpecVersion, n, 1+n)
	}
	if r := got.Spec.Mode.Replicated.Replicas; r < 2 || r > n+1 {
		t.Errorf("replicas = %d, want one of the requested values", r)
	}
}

func TestRollbackService(t *testing.T) {
	srv, s := newServer(t)
	v1 := mustCreate(t, srv, spec("web", 2))
	index := s.Index()
	_, err := srv.RollbackService(ctx, "web")
	invalidNaming(t, err, "previous spec")
	if s.Index() != index {
		t.Error("refused rollback wrote to the store")
	}

	next := spec("web", 2)
	next.TaskTemplate.Process.Args = []string{"--v2"}
	v2, err := srv.UpdateService(ctx, "web", v1.Meta.Version, next)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC()
	rb, err := srv.RollbackService(ctx, v1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rb.Spec, v1.Spec) {
		t.Errorf("spec after rollback = %+v, want the original %+v", rb.Spec, v1.Spec)
	}
	if rb.PreviousSpec == nil || !reflect.DeepEqual(*rb.PreviousSpec, v2.Spec) {
		t.Errorf("previous spec after rollback = %+v, want the rolled-back one", rb.PreviousSpec)
	}
	if rb.SpecVersion != v2.SpecVersion+1 || rb.PreviousSpecVersion != v2.SpecVersion {
		t.Errorf("spec versions after rollback: %d (previous %d), want %d (previous %d)", rb.SpecVersion, rb.PreviousSpecVersion, v2.SpecVersion+1, v2.SpecVersion)
	}
	if rb.UpdateStatus == nil || rb.UpdateStatus.State != api.UpdateStateRollbackStarted || rb.UpdateStatus.StartedAt == nil || rb.UpdateStatus.StartedAt.Before(before.Add(-time.Second)) {
		t.Errorf("update status = %+v, want rollback_started now", rb.UpdateStatus)
	}
	// A later update clears the rollback status.
	up, err := srv.UpdateService(ctx, "web", rb.Meta.Version, spec("web", 3))
	if err != nil {
		t.Fatal(err)
	}
	if up.UpdateStatus != nil {
		t.Errorf("update status after a new update = %+v, want none", up.UpdateStatus)
	}
}

func TestRollbackRefusesPortTakenMeanwhile(t *testing.T) {
	srv, s := newServer(t)
	a := mustCreate(t, srv, withPorts(spec("a", 1), tcp(8080)))
	if _, err := srv.UpdateService(ctx, "a", a.Meta.Version, withPorts(spec("a", 1), tcp(8081))); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, srv, withPorts(spec("b", 1), tcp(8080)))
	index := s.Index()
	_, err := srv.RollbackService(ctx, "a")
	invalidNaming(t, err, `"a"`, `"b"`, "8080")
	if s.Index() != index {
		t.Error("refused rollback wrote to the store")
	}
}
