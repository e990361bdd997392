package controlapi_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

// Writers that choose ports at the same time never publish one port twice:
// of many creates asking for 8080 at once exactly one gets it and the
// others are told who holds it; creates asking for any port all get
// different ones.
func TestConcurrentCreatesNeverSharePorts(t *testing.T) {
	srv, s := newServer(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = srv.CreateService(ctx, withPorts(spec(fmt.Sprintf("fixed-%d", i), 1), tcp(8080)))
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, controlapi.ErrInvalidArgument):
			t.Errorf("create %d: %v, want success or ErrInvalidArgument naming the holder", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d creates got tcp/8080, want exactly 1", won)
	}
	for i := range n {
		wg.Go(func() {
			_, errs[i] = srv.CreateService(ctx, withPorts(spec(fmt.Sprintf("dynamic-%d", i), 1), tcp(0)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("dynamic create %d: %v", i, err)
		}
	}
	held := map[uint32]string{}
	s.View(func(tx store.ReadTx) {
		svcs, _ := tx.FindServices(store.All)
		for _, svc := range svcs {
			if svc.Endpoint == nil {
				continue
			}
			for _, p := range svc.Endpoint.Ports {
				if other, dup := held[p.PublishedPort]; dup {
					t.Errorf("port %d held by %s and %s", p.PublishedPort, other, svc.Spec.Name)
				}
				held[p.PublishedPort] = svc.Spec.Name
			}
		}
	})
	if len(held) != n+1 {
		t.Errorf("%d ports held, want %d", len(held), n+1)
	}
}
