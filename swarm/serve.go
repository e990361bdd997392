package swarm

import (
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
	"github.com/apiary-io/apiary/swarm/dispatcher"
	"github.com/apiary-io/apiary/swarm/rpc"
)

// ServeInsecure answers the manager's gRPC services — the dispatcher for
// workers and the control API for clients — on l until the manager stops,
// in plaintext and without authentication: any peer that reaches l may
// call anything, and workers are trusted to name their node. Use it on a
// private network or in tests; swarm.Node serves the same services over
// mutual TLS. It returns nil once the manager stops, or the listener's
// error.
func (m *Manager) ServeInsecure(l net.Listener) error {
	return m.serve(l, true)
}

// ServeControl answers the control API alone on l until the manager stops,
// in plaintext and without authentication: serve it on a Unix socket whose
// file permissions decide who may connect (as swarm.Node's control socket
// and docker.sock are).
func (m *Manager) ServeControl(l net.Listener) error {
	return m.serve(l, false)
}

func (m *Manager) serve(l net.Listener, workers bool) error {
	s := grpc.NewServer()
	control.RegisterAPI(s, m.control, nil)
	if workers {
		dispatcher.ServeInsecure(s, m.dispatcher)
	}
	m.serversMu.Lock()
	if m.stopped {
		m.serversMu.Unlock()
		return nil
	}
	m.servers = append(m.servers, s)
	m.serversMu.Unlock()
	err := s.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// DialInsecure connects to a manager's gRPC services at target ("host:port"
// of ServeInsecure, or "unix:///path/to/control.sock") in plaintext.
func DialInsecure(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, rpc.DialOptions()...)
	conn, err := grpc.NewClient(target, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return conn, nil
}

// DialClient returns a Client of the control API at target (see
// client.Dial) and the function that closes it.
func DialClient(target string, opts ...grpc.DialOption) (*Client, func() error, error) {
	c, err := client.Dial(target, opts...)
	if err != nil {
		return nil, nil, err
	}
	return c, c.Close, nil
}
