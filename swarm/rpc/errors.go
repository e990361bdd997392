package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain tags the reasons Apiary attaches to its status errors
// (google.rpc.ErrorInfo.domain).
const ErrorDomain = "apiary.io"

// ErrUnavailable: the other side could not be reached.
var ErrUnavailable = errors.New("unavailable")

type registered struct {
	errs []error // the sentinels of a reason: every side's own
	code codes.Code
}

var (
	regMu    sync.RWMutex
	byReason = map[string]*registered{}
	// order keeps registration order, so that the most specific sentinel
	// a package registers first wins when an error wraps several.
	order []string
)

// RegisterError makes err (a sentinel compared with errors.Is) travel
// across the wire as the reason reason (a stable UPPER_SNAKE name), with
// the gRPC status code code. Packages register their sentinels in init.
//
// Several sentinels may share a reason when packages that do not link each
// other name the same condition (pki's and the worker contract's "node
// removed"): an error received with that reason matches each of them that
// the receiving program registered. They must share the code.
func RegisterError(reason string, err error, code codes.Code) {
	regMu.Lock()
	defer regMu.Unlock()
	r, ok := byReason[reason]
	if !ok {
		r = &registered{code: code}
		byReason[reason] = r
		order = append(order, reason)
	}
	if r.code != code {
		panic(fmt.Sprintf("rpc: reason %s registered with codes %s and %s", reason, r.code, code))
	}
	for _, e := range r.errs {
		if e == err {
			return
		}
	}
	r.errs = append(r.errs, err)
}

// remoteError is an error received from the other side: its status (for
// status.Code) and the sentinel it wrapped (for errors.Is).
type remoteError struct {
	st *status.Status
	is []error
}

func (e *remoteError) Error() string              { return e.st.Message() }
func (e *remoteError) Unwrap() []error            { return e.is }
func (e *remoteError) GRPCStatus() *status.Status { return e.st }

// ToStatus turns a server-side error into a gRPC status error carrying the
// reason of the registered sentinel it wraps, so the client can restore it.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		// Already a status: made by an authorizer, or received from a
		// call this one made (then it keeps its reason).
		return err
	}
	regMu.RLock()
	for _, reason := range order {
		r := byReason[reason]
		for _, s := range r.errs {
			if errors.Is(err, s) {
				regMu.RUnlock()
				return WithReason(r.code, reason, err.Error())
			}
		}
	}
	regMu.RUnlock()
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// WithReason is a status error with code, message msg and the ErrorInfo
// detail naming reason.
func WithReason(code codes.Code, reason, msg string) error {
	st, derr := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
	if derr != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// FromStatus turns a client-side gRPC error back into an error that wraps
// the sentinel the server's error wrapped (when it was registered).
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if reason := Reason(st); reason != "" {
		regMu.RLock()
		r, ok := byReason[reason]
		regMu.RUnlock()
		if ok {
			return &remoteError{st: st, is: slices.Clone(r.errs)}
		}
	}
	switch st.Code() {
	case codes.Canceled:
		return &remoteError{st: st, is: []error{context.Canceled}}
	case codes.DeadlineExceeded:
		return &remoteError{st: st, is: []error{context.DeadlineExceeded}}
	case codes.Unavailable:
		return &remoteError{st: st, is: []error{ErrUnavailable}}
	}
	return &remoteError{st: status.New(st.Code(), fmt.Sprintf("%s: %s", st.Code(), st.Message()))}
}

// Reason returns the Apiary reason a status carries, or "".
func Reason(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == ErrorDomain {
			return info.Reason
		}
	}
	return ""
}
