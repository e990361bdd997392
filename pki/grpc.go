package pki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// The CA's gRPC service is written by hand (no protoc in this build): a
// grpc.ServiceDesc whose messages are the Go structs above, carried by a
// JSON codec selected per call through the content-subtype, so it shares a
// server with protobuf services without affecting them.
const (
	// CAServiceName is the gRPC service of the CA.
	CAServiceName = "apiary.pki.NodeCA"
	// MethodIssueNodeCertificate is its one method, for Policy entries.
	MethodIssueNodeCertificate = "/" + CAServiceName + "/IssueNodeCertificate"
	// CodecName is the content-subtype of the JSON codec.
	CodecName = "apiary-pki-json"
	// errorDomain tags the reasons attached to the CA's status errors.
	errorDomain = "pki.apiary.io"
)

func init() { encoding.RegisterCodec(jsonCodec{}) }

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return CodecName }

// caService is the handler type of the service description.
type caService interface {
	IssueNodeCertificate(ctx context.Context, req *IssueRequest) (*IssueResponse, error)
}

var caServiceDesc = grpc.ServiceDesc{
	ServiceName: CAServiceName,
	HandlerType: (*caService)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "IssueNodeCertificate",
		Handler:    issueHandler,
	}},
	Metadata: "pki/grpc.go",
}

func issueHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(IssueRequest)
	if err := dec(req); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "pki: decode IssueRequest: %v", err)
	}
	call := func(ctx context.Context, r any) (any, error) {
		resp, err := srv.(caService).IssueNodeCertificate(ctx, r.(*IssueRequest))
		if err != nil {
			return nil, toStatus(err)
		}
		return resp, nil
	}
	if interceptor == nil {
		return call(ctx, req)
	}
	return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: MethodIssueNodeCertificate}, call)
}

// RegisterCAService serves ca on s. Put an Authorizer with a Policy that
// allows RoleAnonymous for MethodIssueNodeCertificate in front of it (joiners
// have no certificate yet); the CA authenticates them by their token.
func RegisterCAService(s grpc.ServiceRegistrar, ca *CAServer) {
	s.RegisterService(&caServiceDesc, ca)
}

// NewCAClient returns a CertificateIssuer that calls the CA service over
// conn. Errors keep their sentinel (errors.Is(err, ErrTokenInvalid), ...).
func NewCAClient(conn grpc.ClientConnInterface) CertificateIssuer { return caClient{conn} }

type caClient struct{ conn grpc.ClientConnInterface }

func (c caClient) IssueNodeCertificate(ctx context.Context, req *IssueRequest) (*IssueResponse, error) {
	resp := new(IssueResponse)
	if err := c.conn.Invoke(ctx, MethodIssueNodeCertificate, req, resp, grpc.CallContentSubtype(CodecName)); err != nil {
		return nil, fromStatus(err)
	}
	return resp, nil
}

// reasons maps sentinels to status codes and stable reason strings.
var reasons = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{ErrTokenMalformed, codes.InvalidArgument, "TOKEN_MALFORMED"},
	{ErrTokenVersion, codes.InvalidArgument, "TOKEN_VERSION"},
	{ErrTokenWrongCA, codes.Unauthenticated, "TOKEN_WRONG_CA"},
	{ErrTokenInvalid, codes.Unauthenticated, "TOKEN_INVALID"},
	{ErrNotAuthenticated, codes.Unauthenticated, "NOT_AUTHENTICATED"},
	{ErrNodeRemoved, codes.PermissionDenied, "NODE_REMOVED"},
	{ErrPermissionDenied, codes.PermissionDenied, "PERMISSION_DENIED"},
	{ErrBadCSR, codes.InvalidArgument, "BAD_CSR"},
	{ErrNoSigningKey, codes.FailedPrecondition, "NO_SIGNING_KEY"},
}

func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			st, derr := status.New(r.code, err.Error()).WithDetails(&errdetails.ErrorInfo{Reason: r.reason, Domain: errorDomain})
			if derr != nil {
				return status.Error(r.code, err.Error())
			}
			return st.Err()
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// statusError keeps the gRPC status (for status.Code) and the sentinel (for
// errors.Is) of a CA error received over the wire.
type statusError struct {
	st       *status.Status
	sentinel error
}

func (e *statusError) Error() string              { return e.st.Message() }
func (e *statusError) GRPCStatus() *status.Status { return e.st }
func (e *statusError) Unwrap() error              { return e.sentinel }

func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.Domain != errorDomain {
			continue
		}
		for _, r := range reasons {
			if r.reason == info.Reason {
				return &statusError{st: st, sentinel: r.err}
			}
		}
	}
	return fmt.Errorf("pki: CA call failed: %w", err)
}
