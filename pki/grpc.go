package pki

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/apiary-io/apiary/swarm/rpc"
)

// The CA's gRPC service is CertificateIssuer's, generated (ca_rpc.go): its
// messages are the Go structs above, carried by rpc's codec, and its errors
// keep their sentinel across the wire.
const (
	// CAServiceName is the gRPC service of the CA.
	CAServiceName = CertificateIssuerService
	// MethodIssueNodeCertificate is its one method, for Policy entries.
	MethodIssueNodeCertificate = "/" + CAServiceName + "/IssueNodeCertificate"
	// CodecName is the content-subtype of the codec (rpc's).
	CodecName = rpc.CodecName
)

func init() {
	for _, r := range []struct {
		reason string
		err    error
		code   codes.Code
	}{
		{"TOKEN_MALFORMED", ErrTokenMalformed, codes.InvalidArgument},
		{"TOKEN_VERSION", ErrTokenVersion, codes.InvalidArgument},
		{"TOKEN_WRONG_CA", ErrTokenWrongCA, codes.Unauthenticated},
		{"TOKEN_INVALID", ErrTokenInvalid, codes.Unauthenticated},
		{"NOT_AUTHENTICATED", ErrNotAuthenticated, codes.Unauthenticated},
		{"NODE_REMOVED", ErrNodeRemoved, codes.PermissionDenied},
		{"PERMISSION_DENIED", ErrPermissionDenied, codes.PermissionDenied},
		{"BAD_CSR", ErrBadCSR, codes.InvalidArgument},
		{"NO_SIGNING_KEY", ErrNoSigningKey, codes.FailedPrecondition},
		{"ROTATION_IN_PROGRESS", ErrRotationInProgress, codes.FailedPrecondition},
		{"NO_ROTATION", ErrNoRotation, codes.FailedPrecondition},
		{"BAD_CERTIFICATE", ErrBadCertificate, codes.InvalidArgument},
	} {
		rpc.RegisterError(r.reason, r.err, r.code)
	}
}

// RegisterCAService serves ca on s. Put an Authorizer with a Policy that
// allows RoleAnonymous for MethodIssueNodeCertificate in front of it (joiners
// have no certificate yet); the CA authenticates them by their token.
func RegisterCAService(s grpc.ServiceRegistrar, ca *CAServer) {
	RegisterCertificateIssuer(s, ca, nil)
}

// NewCAClient returns a CertificateIssuer that calls the CA service over
// conn. Errors keep their sentinel (errors.Is(err, ErrTokenInvalid), ...).
func NewCAClient(conn grpc.ClientConnInterface) CertificateIssuer {
	return NewCertificateIssuerClient(conn, grpc.CallContentSubtype(CodecName))
}

// toStatus is rpc.ToStatus: the authorizer's refusals carry reasons too.
func toStatus(err error) error { return rpc.ToStatus(err) }
