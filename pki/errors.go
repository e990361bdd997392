package pki

import "errors"

// Sentinel errors. Every error the package returns wraps one of these (or a
// lower-level cause) with context, so callers test with errors.Is. Errors
// that cross the CA's gRPC service keep their sentinel: the server attaches a
// reason to the status and the client maps it back.
var (
	// ErrTokenMalformed: the string is not APTKN-<version>-<digest>-<secret>.
	ErrTokenMalformed = errors.New("join token is malformed")
	// ErrTokenVersion: a token format this code does not understand.
	ErrTokenVersion = errors.New("join token version is not supported")
	// ErrTokenWrongCA: the token's CA digest is not this cluster's root CA
	// (a token from another cluster, or from before a root rotation).
	ErrTokenWrongCA = errors.New("join token is for a different cluster CA")
	// ErrTokenInvalid: the secret is unknown here, typically because the
	// token was rotated.
	ErrTokenInvalid = errors.New("join token secret is not valid (unknown or rotated)")
	// ErrCAPinMismatch: the manager presented no CA certificate with the
	// digest pinned by the join token; the joiner aborted the TLS handshake
	// before sending anything.
	ErrCAPinMismatch = errors.New("manager's CA does not match the join token")
	// ErrNodeRemoved: the node was removed from the cluster; its certificate
	// is refused even while unexpired.
	ErrNodeRemoved = errors.New("node was removed from the cluster")
	// ErrNotAuthenticated: neither a verified certificate nor a join token.
	ErrNotAuthenticated = errors.New("caller has neither a cluster certificate nor a join token")
	// ErrPermissionDenied: the caller is authenticated but may not do this.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrBadCSR: the certificate signing request is unusable.
	ErrBadCSR = errors.New("certificate signing request rejected")
	// ErrNoSigningKey: this CA record holds no key to sign with (a worker's
	// view, or an external CA that is not configured).
	ErrNoSigningKey = errors.New("no CA signing key available")
	// ErrRotationInProgress / ErrNoRotation guard the root rotation state
	// machine.
	ErrRotationInProgress = errors.New("a root CA rotation is already in progress")
	ErrNoRotation         = errors.New("no root CA rotation is in progress")
	// ErrBadCertificate: a certificate (ours or a peer's) fails validation.
	ErrBadCertificate = errors.New("certificate is not valid for this cluster")
)
