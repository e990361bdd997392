//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package balancer

import "syscall"

// reusePort does nothing where SO_REUSEPORT is missing (Windows, where
// SO_REUSEADDR would let another program steal the port, and the rarer
// Unix systems): there each address and port has one listener, so nodes
// sharing such a machine need addresses of their own.
func reusePort(network, address string, c syscall.RawConn) error { return nil }
