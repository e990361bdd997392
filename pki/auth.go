package pki

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Policy maps a gRPC method ("/pkg.Service/Method") or a whole service
// ("/pkg.Service/*") to the roles allowed to call it. A method that matches
// no entry is refused: forgetting a method denies it rather than opening it.
type Policy map[string][]Role

// CAPolicy is the entry for the CA service: anyone may call it, since
// joiners have no certificate and the CA checks their token itself.
func CAPolicy() Policy {
	return Policy{MethodIssueNodeCertificate: {RoleAnonymous, RoleManager, RoleWorker}}
}

// Merge returns a policy with p's entries and then others' (later wins).
func (p Policy) Merge(others ...Policy) Policy {
	out := Policy{}
	for _, q := range append([]Policy{p}, others...) {
		for k, v := range q {
			out[k] = slices.Clone(v)
		}
	}
	return out
}

func (p Policy) roles(method string) ([]Role, bool) {
	if r, ok := p[method]; ok {
		return r, true
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		if r, ok := p[method[:i+1]+"*"]; ok {
			return r, true
		}
	}
	return nil, false
}

// Authorizer checks every call against a Policy using the role in the
// caller's verified certificate, and refuses removed nodes. It never reads a
// role from the request: a request field is whatever the caller wrote, the
// certificate is what the cluster's CA signed.
type Authorizer struct {
	policy  Policy
	removed RemovedNodes
	logger  *slog.Logger
}

// NewAuthorizer returns an authorizer for policy; removed answers which node
// IDs were removed (the swarm package's store, or a MemState).
func NewAuthorizer(policy Policy, removed RemovedNodes, logger *slog.Logger) *Authorizer {
	if logger == nil {
		logger = slog.Default()
	}
	return &Authorizer{policy: policy.Merge(), removed: removed, logger: logger}
}

// Authorize decides whether the caller of ctx may call method. It returns
// the caller's identity (ok false for an allowed anonymous caller) or a gRPC
// status error: Unauthenticated without a usable certificate,
// PermissionDenied for a wrong role or a removed node.
func (a *Authorizer) Authorize(ctx context.Context, method string) (id Identity, ok bool, err error) {
	allowed, known := a.policy.roles(method)
	if !known {
		return Identity{}, false, status.Errorf(codes.PermissionDenied, "pki: method %s is not in the authorization policy", method)
	}
	id, err = PeerIdentityFromContext(ctx)
	if err != nil {
		if slices.Contains(allowed, RoleAnonymous) && anonymousOK(ctx) {
			return Identity{}, false, nil
		}
		return Identity{}, false, status.Errorf(codes.Unauthenticated, "pki: %s requires a verified cluster certificate: %v", method, err)
	}
	if a.removed != nil && a.removed.IsRemoved(id.NodeID) {
		a.logger.Warn("pki: refused removed node", "node", id.NodeID, "method", method)
		return Identity{}, false, toStatus(fmt.Errorf("pki: node %s may not call %s: %w", id.NodeID, method, ErrNodeRemoved))
	}
	if !slices.Contains(allowed, id.Role) {
		return Identity{}, false, status.Errorf(codes.PermissionDenied, "pki: node %s has role %s; %s requires %s", id.NodeID, id.Role, method, rolesString(allowed))
	}
	return id, true, nil
}

// anonymousOK reports whether the peer connected over TLS without sending a
// certificate. A certificate that was sent but did not verify must not fall
// back to anonymous access, and a join token must never cross plaintext.
func anonymousOK(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(info.State.PeerCertificates) == 0
}

func rolesString(rs []Role) string {
	var s []string
	for _, r := range rs {
		s = append(s, string(r))
	}
	return strings.Join(s, " or ")
}

// TapHandle authorizes a call from its headers, before gRPC reads a byte of
// its request (an interceptor runs only after the request was read and
// decoded), and gives the handler a context holding the caller's Identity
// (IdentityFromContext). Install it with grpc.InTapHandle.
func (a *Authorizer) TapHandle() tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		id, ok, err := a.Authorize(ctx, info.FullMethodName)
		if err != nil {
			return nil, err
		}
		if ok {
			ctx = contextWithIdentity(ctx, id)
		}
		return ctx, nil
	}
}

// UnaryServerInterceptor authorizes unary calls and puts the caller's
// Identity in the handler's context (IdentityFromContext).
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id, ok, err := a.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		if ok {
			ctx = contextWithIdentity(ctx, id)
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams.
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id, ok, err := a.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if ok {
			ss = &identityStream{ServerStream: ss, ctx: contextWithIdentity(ss.Context(), id)}
		}
		return handler(srv, ss)
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }
