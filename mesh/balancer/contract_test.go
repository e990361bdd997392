package balancer_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/balancer/balancertest"
)

func TestProxyMeetsTheContract(t *testing.T) {
	balancertest.Run(t, func(t *testing.T) balancer.Balancer {
		p, err := balancer.New(balancer.Config{Logger: testutil.DiscardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
}

func TestRecorderMeetsTheContract(t *testing.T) {
	balancertest.Run(t, func(t *testing.T) balancer.Balancer { return balancer.NewRecorder() })
}

func TestRecorderRecordsTheDesiredState(t *testing.T) {
	r := balancer.NewRecorder()
	fe := balancertest.FreeFrontend(t, balancer.TCP)
	svc := balancer.Service{Frontend: fe, Options: balancer.Options{TrafficPolicy: balancer.TrafficLocal}}
	if err := r.UpsertService(svc); err != nil {
		t.Fatal(err)
	}
	list := []balancer.Backend{{Addr: fe.Addr, NodeID: "n1", Healthy: true, Local: true}}
	if err := r.SetBackends(fe, list); err != nil {
		t.Fatal(err)
	}
	list[0].NodeID = "changed by the caller afterwards"
	got, ok := r.Service(fe)
	if !ok || got.Service != svc || len(got.Backends) != 1 || got.Backends[0].NodeID != "n1" || !got.Backends[0].Local {
		t.Fatalf("recorded %+v (found %v), want %+v with its one local backend of n1", got, ok, svc)
	}
	if all := r.Services(); len(all) != 1 || all[0].Service != svc {
		t.Fatalf("Services() = %+v, want just %+v", all, svc)
	}
}

func TestRecorderFailBind(t *testing.T) {
	r := balancer.NewRecorder()
	fe := balancertest.FreeFrontend(t, balancer.TCP)
	r.FailBind(fe, syscall.EADDRINUSE)
	err := r.UpsertService(balancer.Service{Frontend: fe})
	var be *balancer.BindError
	if !errors.As(err, &be) || be.Frontend != fe || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err = %v, want a *BindError for %s wrapping EADDRINUSE", err, fe)
	}
	if _, ok := r.Service(fe); ok {
		t.Fatal("a service that could not bind was recorded")
	}
	r.FailBind(fe, nil)
	if err := r.UpsertService(balancer.Service{Frontend: fe}); err != nil {
		t.Fatalf("after FailBind(nil): %v", err)
	}
}

func TestConfigOutOfRangeIsRefused(t *testing.T) {
	for _, tc := range []struct {
		cfg  balancer.Config
		want string
	}{
		{balancer.Config{ConnectTimeout: -1}, "Config.ConnectTimeout -1ns"},
		{balancer.Config{DrainTimeout: 25 * 3600e9}, "Config.DrainTimeout 25h0m0s"},
		{balancer.Config{UDPIdleTimeout: 1e6}, "Config.UDPIdleTimeout 1ms"},
		{balancer.Config{MaxConnections: -5}, "Config.MaxConnections -5"},
		{balancer.Config{MaxUDPFlows: balancer.MaxConnectionsLimit + 1}, "Config.MaxUDPFlows"},
	} {
		_, err := balancer.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}
