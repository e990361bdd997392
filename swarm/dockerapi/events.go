package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/apiary-io/apiary/swarm/api/control"
)

// /events streams the changes of the cluster's objects (services, nodes,
// networks, secrets, configs) as Docker's swarm-scope events: create,
// update, remove. The control API has no watch, so each stream looks at
// the objects every Config.EventsPoll and reports what changed since (a
// change and its undoing within one period are not seen); at most
// Config.MaxEventStreams streams are open at once. Past events are not
// kept: since is accepted only for now or later; until ends the stream.

// objVersion is what a poll records of an object.
type objVersion struct {
	version uint64
	name    string
}

type eventKey struct {
	typ events.Type
	id  string
}

// snapshot lists every object an event can be about.
func (s *Server) snapshot(ctx context.Context) (map[eventKey]objVersion, error) {
	out := map[eventKey]objVersion{}
	b := s.cfg.Backend
	svcs, err := b.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	for _, x := range svcs {
		out[eventKey{events.ServiceEventType, x.ID}] = objVersion{x.Meta.Version, x.Spec.Name}
	}
	nodes, err := b.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, x := range nodes {
		name := x.Spec.Name
		if name == "" && x.Description != nil {
			name = x.Description.Hostname
		}
		out[eventKey{events.NodeEventType, x.ID}] = objVersion{x.Meta.Version, name}
	}
	nets, err := b.ListNetworks(ctx, control.NetworkFilter{})
	if err != nil {
		return nil, err
	}
	for _, x := range nets {
		out[eventKey{events.NetworkEventType, x.ID}] = objVersion{x.Meta.Version, x.Spec.Name}
	}
	secrets, err := b.ListSecrets(ctx, control.ObjectFilter{})
	if err != nil {
		return nil, err
	}
	for _, x := range secrets {
		out[eventKey{events.SecretEventType, x.ID}] = objVersion{x.Meta.Version, x.Spec.Name}
	}
	configs, err := b.ListConfigs(ctx, control.ObjectFilter{})
	if err != nil {
		return nil, err
	}
	for _, x := range configs {
		out[eventKey{events.ConfigEventType, x.ID}] = objVersion{x.Meta.Version, x.Spec.Name}
	}
	return out, nil
}

// diff returns the events that lead from old to cur.
func diff(old, cur map[eventKey]objVersion, now time.Time) []events.Message {
	var out []events.Message
	msg := func(k eventKey, v objVersion, a events.Action) events.Message {
		return events.Message{Type: k.typ, Action: a, Actor: events.Actor{ID: k.id, Attributes: map[string]string{"name": v.name}},
			Scope: "swarm", Time: now.Unix(), TimeNano: now.UnixNano()}
	}
	for k, v := range cur {
		o, ok := old[k]
		switch {
		case !ok:
			out = append(out, msg(k, v, events.ActionCreate))
		case o.version != v.version:
			out = append(out, msg(k, v, events.ActionUpdate))
		}
	}
	for k, v := range old {
		if _, ok := cur[k]; !ok {
			out = append(out, msg(k, v, events.ActionRemove))
		}
	}
	return out
}

// eventMatches applies Docker's event filters that concern cluster
// objects: type, event (action), scope, and the object kinds by ID or
// name.
func eventMatches(f filters.Args, m events.Message) bool {
	if !anyEqual(f, "type", string(m.Type)) || !anyEqual(f, "event", string(m.Action)) || !anyEqual(f, "scope", "swarm") {
		return false
	}
	for _, kind := range []events.Type{events.ServiceEventType, events.NodeEventType, events.NetworkEventType, events.SecretEventType, events.ConfigEventType} {
		vals := f.Get(string(kind))
		if len(vals) == 0 {
			continue
		}
		if m.Type != kind || !(anyEqual(f, string(kind), m.Actor.ID) || anyEqual(f, string(kind), m.Actor.Attributes["name"])) {
			return false
		}
	}
	return true
}

// unixParam reads Docker's since/until (seconds, with an optional
// fraction).
func unixParam(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return time.Time{}, errInvalid(fmt.Errorf("invalid timestamp %q: want seconds since the epoch", v))
	}
	return time.Unix(0, int64(f*1e9)), nil
}

func (s *Server) eventsStream(w http.ResponseWriter, r *http.Request) error {
	f, err := s.listFilters(r, "type", "event", "scope", "service", "node", "network", "secret", "config", "container", "image", "volume", "daemon", "plugin", "label")
	if err != nil {
		return err
	}
	since, err := unixParam(r.URL.Query().Get("since"))
	if err != nil {
		return err
	}
	until, err := unixParam(r.URL.Query().Get("until"))
	if err != nil {
		return err
	}
	if !since.IsZero() && time.Since(since) > time.Minute {
		return errInvalid(errors.New("events: past events are not kept: since must be now or later"))
	}
	select {
	case s.events <- struct{}{}:
		defer func() { <-s.events }()
	default:
		return errUnavailable(fmt.Errorf("events: %d streams are open already, the most allowed", s.cfg.MaxEventStreams))
	}
	ctx := r.Context()
	if !until.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, until)
		defer cancel()
	}
	prev, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush(w)
	enc := json.NewEncoder(w)
	t := time.NewTicker(s.cfg.EventsPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur, err := s.snapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("docker API: events poll failed", "err", err)
			}
			continue
		}
		for _, m := range diff(prev, cur, time.Now()) {
			if !eventMatches(f, m) {
				continue
			}
			if err := enc.Encode(m); err != nil {
				return nil
			}
		}
		flush(w)
		prev = cur
	}
}
