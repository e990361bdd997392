package dispatcher

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// ServiceName is the dispatcher's gRPC service.
const ServiceName = session.APIService

// API is the worker-facing contract (package session): what Dispatcher
// serves and what a worker's agent calls.
type API = session.API

// Serve registers impl as the dispatcher service of s, for a server whose
// calls the pki Authorizer authorized: each call must carry the identity
// of the caller's verified certificate, which the dispatcher binds the
// call to (a call without one is refused: the dispatcher trusts a call
// without an identity to name its node, as it trusts its own process).
func Serve(s grpc.ServiceRegistrar, impl API) {
	session.RegisterAPI(s, impl, requireIdentity)
}

// ServeInsecure registers impl on a server without authentication (a
// plaintext listener on a trusted network, tests): callers are trusted to
// name their node, and an empty NodeID joins a new node, as in-process.
func ServeInsecure(s grpc.ServiceRegistrar, impl API) {
	session.RegisterAPI(s, impl, nil)
}

// requireIdentity refuses a call the authorizer did not vouch for.
func requireIdentity(ctx context.Context, method string) error {
	if _, ok := pki.IdentityFromContext(ctx); !ok {
		return status.Error(codes.Unauthenticated, "dispatcher: the call carries no verified node identity")
	}
	return nil
}

// NewClient returns a client of a remote dispatcher over conn (dialled with
// rpc.DialOptions).
func NewClient(conn grpc.ClientConnInterface) API { return session.NewAPIClient(conn) }

var _ API = (*Dispatcher)(nil)
