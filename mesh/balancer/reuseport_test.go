//go:build linux

package balancer

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/apiary-io/apiary/internal/testutil"
)

// Two nodes sharing a machine both listen on a service's address and port;
// Linux spreads clients between them by a hash of the client's address, so
// connections from fresh source ports reach both, and each forwards to its
// own backend here to tell them apart.
func TestTwoBalancersShareAFrontend(t *testing.T) {
	fe := freeFrontend(t, TCP)
	node1, node2 := newProxy(t, Config{}), newProxy(t, Config{})
	addService(t, node1, fe, Options{}, startBackend(t, "via-node1").backend())
	addService(t, node2, fe, Options{}, startBackend(t, "via-node2").backend())

	seen := map[string]int{}
	testutil.EventuallyWhy(t, waitFor, "both nodes serving the shared frontend", func() (bool, string) {
		g := dialGreeted(t, fe)
		g.conn.Close()
		seen[g.name]++
		return len(seen) == 2, "served by " + strings.Join(keys(seen), ", ")
	})

	// UDP too.
	ufe := freeFrontend(t, UDP)
	addService(t, node1, ufe, Options{}, startUDPBackend(t, "via-node1"))
	addService(t, node2, ufe, Options{}, startUDPBackend(t, "via-node2"))
	useen := map[string]int{}
	testutil.EventuallyWhy(t, waitFor, "both nodes serving the shared UDP frontend", func() (bool, string) {
		c := udpClient(t, ufe)
		name, _, _ := strings.Cut(ask(t, c, "x"), ":")
		c.Close()
		useen[name]++
		return len(useen) == 2, "served by " + strings.Join(keys(useen), ", ")
	})
}

func keys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A port held by a program that did not ask to share it is an error that
// names the frontend.
func TestPortTakenIsABindErrorNamingTheAddress(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fe := Frontend{Addr: addrPortOf(t, ln.Addr()), Protocol: TCP}
	p := newProxy(t, Config{})
	err = p.UpsertService(Service{Frontend: fe})
	var be *BindError
	if !errors.As(err, &be) || be.Frontend != fe || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err = %v, want a *BindError for %s wrapping EADDRINUSE", err, fe)
	}
	if !strings.Contains(err.Error(), fe.Addr.String()) {
		t.Fatalf("error %q does not name %s", err, fe.Addr)
	}
	if len(p.Stats()) != 0 {
		t.Fatalf("a service that could not listen was kept: %+v", p.Stats())
	}
}
