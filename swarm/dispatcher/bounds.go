package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// The bounds on what a worker sends are the contract's (package session).
const (
	MaxStatusUpdates    = session.MaxStatusUpdates
	MaxStatusText       = session.MaxStatusText
	MaxPortStatus       = session.MaxPortStatus
	MaxHostnameLen      = session.MaxHostnameLen
	MaxEngineLabels     = session.MaxEngineLabels
	MaxLabelKeyLen      = session.MaxLabelKeyLen
	MaxLabelValueLen    = session.MaxLabelValueLen
	MaxGenericResources = session.MaxGenericResources
	MaxDescriptionField = session.MaxDescriptionField
)

// ErrBadRequest: a worker's request breaks one of the bounds.
var ErrBadRequest = session.ErrBadRequest

// callerNode returns the node ID named by the verified certificate of the
// caller (the pki Authorizer put it in ctx), or ok false for a call from
// this process (the embedding API's StartWorker beside its manager), which
// is trusted to name its node.
func callerNode(ctx context.Context) (string, bool) {
	id, ok := pki.IdentityFromContext(ctx)
	return id.NodeID, ok
}

// bindCaller refuses a request that names another node than the caller's
// certificate does: a worker speaks only for itself.
func bindCaller(ctx context.Context, method, claimed string) error {
	if id, remote := callerNode(ctx); remote && id != claimed {
		return fmt.Errorf("%w: %s: the caller's certificate names node %s, the request node %q", pki.ErrPermissionDenied, method, id, claimed)
	}
	return nil
}

// checkDescription checks a node's self-description against the bounds.
func checkDescription(d *api.NodeDescription) error {
	var errs []error
	field := func(name, v string, max int) {
		if len(v) > max {
			errs = append(errs, fmt.Errorf("%s: %d bytes, at most %d", name, len(v), max))
		}
	}
	field("Description.Hostname", d.Hostname, MaxHostnameLen)
	field("Description.Platform.OS", d.Platform.OS, MaxDescriptionField)
	field("Description.Platform.Architecture", d.Platform.Architecture, MaxDescriptionField)
	field("Description.Engine.EngineVersion", d.Engine.EngineVersion, MaxDescriptionField)
	field("Description.Executor", d.Executor, MaxDescriptionField)
	if n := len(d.Engine.Labels); n > MaxEngineLabels {
		errs = append(errs, fmt.Errorf("Description.Engine.Labels: %d labels, at most %d", n, MaxEngineLabels))
	}
	for k, v := range d.Engine.Labels {
		field("Description.Engine.Labels key", k, MaxLabelKeyLen)
		field("Description.Engine.Labels["+truncate(k, 64)+"]", v, MaxLabelValueLen)
	}
	if n := len(d.Resources.GenericResources); n > MaxGenericResources {
		errs = append(errs, fmt.Errorf("Description.Resources.GenericResources: %d, at most %d", n, MaxGenericResources))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: node description: %w", ErrBadRequest, err)
	}
	return nil
}

// checkStatusUpdates checks a status batch against the bounds, and cuts
// the free-text fields of its reports to MaxStatusText.
func checkStatusUpdates(req *UpdateTaskStatusRequest) error {
	if n := len(req.Updates); n > MaxStatusUpdates {
		return fmt.Errorf("%w: Updates: %d reports, at most %d", ErrBadRequest, n, MaxStatusUpdates)
	}
	for i := range req.Updates {
		st := &req.Updates[i].Status
		if n := len(st.PortStatus); n > MaxPortStatus {
			return fmt.Errorf("%w: Updates[%d].Status.PortStatus: %d ports, at most %d", ErrBadRequest, i, n, MaxPortStatus)
		}
		switch st.Health {
		case "", api.HealthStarting, api.HealthHealthy, api.HealthUnhealthy:
		default:
			return fmt.Errorf("%w: Updates[%d].Status.Health: %q is not starting, healthy or unhealthy", ErrBadRequest, i, truncate(st.Health, 64))
		}
		st.Message = truncate(st.Message, MaxStatusText)
		st.Err = truncate(st.Err, MaxStatusText)
	}
	return nil
}

// truncate cuts s to at most max bytes, on a rune boundary.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}
