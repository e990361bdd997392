package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/raft"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/api/session"
)

// Every sentinel error of the control, worker-session and CA contracts,
// returned wrapped by a server, comes back to a client over real gRPC as
// an error for which errors.Is holds, with a status code that is not
// Unknown. (Where two packages that do not link each other name the same
// condition, pki's and the session's "node removed", either side's
// sentinel matches.)
func TestSentinelsSurviveTheWire(t *testing.T) {
	cases := []struct {
		contract string
		sent     error
		want     []error
	}{
		{"control", control.ErrInvalidArgument, nil},
		{"control", control.ErrNotManager, nil},
		{"control", control.ErrNoLogSource, nil},
		{"control", control.ErrNoCA, nil},
		{"control", api.ErrNotFound, nil},
		{"control", api.ErrConflict, nil},
		{"control", api.ErrExist, nil},
		{"control", api.ErrNameConflict, nil},
		{"local", control.ErrManagerLeave, nil},
		{"session", session.ErrSessionInvalid, nil},
		{"session", session.ErrNodeRemoved, []error{pki.ErrNodeRemoved}},
		{"session", pki.ErrNodeRemoved, []error{session.ErrNodeRemoved}},
		{"session", session.ErrNotRunning, nil},
		{"session", session.ErrBadRequest, nil},
		{"ca", pki.ErrTokenMalformed, nil},
		{"ca", pki.ErrTokenVersion, nil},
		{"ca", pki.ErrTokenWrongCA, nil},
		{"ca", pki.ErrTokenInvalid, nil},
		{"ca", pki.ErrNotAuthenticated, nil},
		{"ca", pki.ErrNodeRemoved, nil},
		{"ca", pki.ErrPermissionDenied, nil},
		{"ca", pki.ErrBadCSR, nil},
		{"ca", pki.ErrNoSigningKey, nil},
		{"ca", pki.ErrRotationInProgress, nil},
		{"ca", pki.ErrNoRotation, nil},
		{"ca", pki.ErrBadCertificate, nil},
		{"raft", raft.ErrRemoved, nil},
	}
	for _, tc := range cases {
		sent := fmt.Errorf("while doing this for that: %w", tc.sent)
		s := grpc.NewServer()
		switch tc.contract {
		case "control", "raft":
			control.RegisterAPI(s, control.UnimplementedAPI{Err: sent}, nil)
		case "local":
			control.RegisterLocal(s, control.UnimplementedLocal{Err: sent}, nil)
		case "session":
			session.RegisterAPI(s, session.UnimplementedAPI{Err: sent}, nil)
		case "ca":
			pki.RegisterCertificateIssuer(s, pki.UnimplementedCertificateIssuer{Err: sent}, nil)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(l)
		conn, err := swarm.DialInsecure(l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		switch tc.contract {
		case "control", "raft":
			_, err = control.NewAPIClient(conn).GetService(ctx, "web")
		case "local":
			err = control.NewLocalClient(conn).Leave(ctx, false)
		case "session":
			_, err = session.NewAPIClient(conn).Register(ctx, &session.RegisterRequest{NodeID: "n"})
		case "ca":
			_, err = pki.NewCAClient(conn).IssueNodeCertificate(ctx, &pki.IssueRequest{})
		}
		conn.Close()
		s.Stop()
		for _, want := range append([]error{tc.sent}, tc.want...) {
			if !errors.Is(err, want) {
				t.Errorf("%s: %q came back as %v, which is not %q", tc.contract, tc.sent, err, want)
			}
		}
		if c := status.Code(err); c == codes.Unknown || c == codes.OK {
			t.Errorf("%s: %q came back with code %s", tc.contract, tc.sent, c)
		}
		if err != nil && err.Error() != sent.Error() {
			t.Errorf("%s: message %q, want %q", tc.contract, err.Error(), sent.Error())
		}
	}
}
