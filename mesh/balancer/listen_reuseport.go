//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package balancer

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort sets SO_REUSEADDR and SO_REUSEPORT on a socket before it binds,
// so several balancers (several nodes sharing a machine, or the same node
// restarting) can listen on one address and port. Linux spreads new
// connections and UDP flows among such sockets by a hash of the client's
// address; the BSDs and macOS deliver to one of them. Either way every
// listener answers correctly, because every node's balancer forwards to any
// healthy backend. The kernel allows the sharing only among sockets of the
// same user that all set SO_REUSEPORT, so a port held by another program
// still fails with EADDRINUSE.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
