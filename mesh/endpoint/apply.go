package endpoint

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"

	"github.com/apiary-io/apiary/mesh/balancer"
	"github.com/apiary-io/apiary/mesh/dns"
)

// Records is what the runtime writes DNS services to; *dns.Table is one.
type Records interface {
	Set(dns.Service) error
	Delete(name string) bool
}

var _ Records = (*dns.Table)(nil)

// applier moves a balancer and DNS records from the state it last applied
// to the next one, touching only what changed: an unchanged frontend keeps
// its listener and connections, an unchanged service its records.
type applier struct {
	bal balancer.Balancer
	dns Records
	log *slog.Logger
	// frontends are the services the balancer holds, with the backends
	// last set; unsynced are those whose backends are yet to be set (new,
	// or SetBackends failed), so the next apply sets them whatever they are.
	frontends map[balancer.Frontend]frontend
	unsynced  map[balancer.Frontend]bool
	// failing are the frontends that could not listen at the last try:
	// logged at their first failure, quietly retried, logged when they
	// listen at last.
	failing map[balancer.Frontend]bool
	// services are those last given to dns (set, or refused as invalid:
	// a refusal is deterministic, so it is logged once, not retried).
	services map[string]*dns.Service
}

func newApplier(bal balancer.Balancer, rec Records, log *slog.Logger) *applier {
	return &applier{bal: bal, dns: rec, log: log,
		frontends: map[balancer.Frontend]frontend{}, unsynced: map[balancer.Frontend]bool{},
		failing: map[balancer.Frontend]bool{}, services: map[string]*dns.Service{}}
}

// apply makes the balancer and the records hold want. It reports whether
// something failed that may succeed later (a frontend that could not bind:
// the port held by another program for now), which the caller retries.
// Stale frontends are removed before new ones are added, so a port that
// moves from one service to another is free when the new one binds.
func (a *applier) apply(want state) (retry bool) {
	for fe := range a.frontends {
		if _, ok := want.Frontends[fe]; !ok {
			a.remove(fe)
		}
	}
	for fe := range a.failing {
		if _, ok := want.Frontends[fe]; !ok {
			delete(a.failing, fe)
		}
	}
	for _, f := range want.Frontends {
		if !a.applyFrontend(f) {
			retry = true
		}
	}
	for name := range a.services {
		if _, ok := want.Services[name]; !ok {
			a.dns.Delete(name)
			delete(a.services, name)
		}
	}
	for name, svc := range want.Services {
		if old, ok := a.services[name]; ok && (old == svc || reflect.DeepEqual(old, svc)) {
			continue
		}
		if err := a.dns.Set(*svc); err != nil {
			a.log.Warn("endpoint: DNS records refused a service", "service", name, "err", err)
		}
		a.services[name] = svc
	}
	return retry
}

// applyFrontend upserts f's service if new or changed and sets its
// backends if changed; it reports false on a failure to retry.
func (a *applier) applyFrontend(f frontend) bool {
	fe := f.Service.Frontend
	old, held := a.frontends[fe]
	if !held || old.Service != f.Service {
		if err := a.bal.UpsertService(f.Service); err != nil {
			level := slog.LevelWarn
			if a.failing[fe] {
				level = slog.LevelDebug
			}
			a.failing[fe] = true
			a.log.Log(context.Background(), level, "endpoint: frontend cannot be added; retrying", "frontend", fe.String(), "err", err)
			return false
		}
		if a.failing[fe] {
			delete(a.failing, fe)
			a.log.Info("endpoint: frontend added after failures", "frontend", fe.String())
		}
		if !held {
			a.unsynced[fe] = true
		}
		a.frontends[fe] = frontend{Service: f.Service, Backends: old.Backends}
	}
	if !a.unsynced[fe] && slices.Equal(a.frontends[fe].Backends, f.Backends) {
		return true
	}
	if err := a.bal.SetBackends(fe, f.Backends); err != nil {
		a.log.Error("endpoint: balancer refused backends", "frontend", fe.String(), "err", err)
		a.unsynced[fe] = true
		return false
	}
	delete(a.unsynced, fe)
	a.frontends[fe] = f
	return true
}

func (a *applier) remove(fe balancer.Frontend) {
	if err := a.bal.RemoveService(fe); err != nil && !errors.Is(err, balancer.ErrUnknownService) {
		a.log.Warn("endpoint: balancer could not remove a frontend", "frontend", fe.String(), "err", err)
	}
	delete(a.frontends, fe)
	delete(a.unsynced, fe)
}

// clear removes everything applied (Runtime.Close).
func (a *applier) clear() {
	a.apply(state{})
}
