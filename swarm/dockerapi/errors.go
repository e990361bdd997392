package dockerapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/docker/docker/api/types"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
)

// Errors are written as Docker writes them: {"message": ...} with the
// status code of the error's kind (Docker's errdefs), which the docker CLI
// prints as it is.

// errNotManager is Docker's own message for a manager-only call on a
// worker (503).
const errNotManagerMessage = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."

// statusError carries its HTTP status.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func errInvalid(err error) error        { return &statusError{http.StatusBadRequest, err} }
func errNotFound(err error) error       { return &statusError{http.StatusNotFound, err} }
func errForbidden(err error) error      { return &statusError{http.StatusForbidden, err} }
func errConflict(err error) error       { return &statusError{http.StatusConflict, err} }
func errUnavailable(err error) error    { return &statusError{http.StatusServiceUnavailable, err} }
func errTooLarge(err error) error       { return &statusError{http.StatusRequestEntityTooLarge, err} }
func errNotImplemented(err error) error { return &statusError{http.StatusNotImplemented, err} }

// statusOf maps an error to Docker's status code and message.
func statusOf(err error) (int, string) {
	var se *statusError
	if errors.As(err, &se) {
		return se.code, se.Error()
	}
	switch {
	case errors.Is(err, control.ErrNotManager):
		return http.StatusServiceUnavailable, errNotManagerMessage
	case errors.Is(err, control.ErrLocked):
		// Docker's words for a locked manager.
		return http.StatusServiceUnavailable, `Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker swarm unlock" to unlock it.`
	case errors.Is(err, control.ErrWrongUnlockKey):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, control.ErrNoUnlockKey):
		return http.StatusNotFound, "no unlock key is set: " + err.Error()
	case errors.Is(err, api.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, api.ErrConflict):
		// Docker's CLI retries nothing: it shows swarmkit's words.
		return http.StatusConflict, "update out of sequence: " + err.Error()
	case errors.Is(err, api.ErrNameConflict), errors.Is(err, api.ErrExist):
		return http.StatusConflict, err.Error()
	case errors.Is(err, control.ErrInvalidArgument), errors.Is(err, control.ErrInUse), len(api.ValidationErrors(err)) > 0:
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, control.ErrNoLogSource), errors.Is(err, control.ErrNoCA):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, err.Error()
	}
	return http.StatusInternalServerError, err.Error()
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := statusOf(err)
	if code >= 500 && code != http.StatusServiceUnavailable && code != http.StatusNotImplemented {
		s.log.Warn("docker API request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	} else {
		s.log.Debug("docker API request refused", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(code)
		return
	}
	_ = writeJSON(w, code, types.ErrorResponse{Message: msg})
}
