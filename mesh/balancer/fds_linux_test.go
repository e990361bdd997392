//go:build linux

package balancer

import (
	"os"
	"testing"

	"github.com/apiary-io/apiary/internal/testutil"
)

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// An idle proxied connection holds its two sockets and nothing else: no
// splice pipe (two more descriptors per direction) while it waits.
func TestIdleConnectionsHoldNoPipe(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	addService(t, p, fe, Options{}, startBackend(t, "a").backend())
	before := openFDs(t)
	const n = 20
	for range n {
		g := dialGreeted(t, fe)
		g.echo(t, "a message, so both directions have copied")
		t.Cleanup(func() { g.conn.Close() })
	}
	testutil.Eventually(t, waitFor, "20 open connections", func() bool { return statsOf(t, p, fe).Active == n })
	// Per connection: the client's socket, the balancer's two, the
	// backend's one.
	if got, want := openFDs(t)-before, 4*n; got > want {
		t.Fatalf("%d idle connections opened %d descriptors, want at most %d", n, got, want)
	}
}
