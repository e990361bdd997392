package swarm

import "net"

// ListenSocket listens on a Unix socket at path that only its owner may
// use (mode 0600 from the first moment it exists, replacing a stale
// one), as the control socket does: apiaryd serves the Docker Engine API
// on DATA_DIR/docker.sock with it.
func ListenSocket(path string) (net.Listener, error) { return listenControlSocket(path) }
