package balancer

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/mesh/balancer/proxyproto"
)

// startProxyV2Backend reads the PROXY header of each connection and
// answers "<source> <destination>\n", then echoes.
func startProxyV2Backend(t testing.TB, addr string) *testBackend {
	t.Helper()
	return startBackendWith(t, "v2", addr, func(c net.Conn) {
		h, err := proxyproto.Read(c)
		if err != nil {
			fmt.Fprintf(c, "error: %v\n", err)
			return
		}
		fmt.Fprintf(c, "%s %s\n", h.Source, h.Destination)
	})
}

func TestProxyV2HeaderCarriesTheClientAddress(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			if host == "::1" {
				ln, err := net.Listen("tcp6", "[::1]:0")
				if err != nil {
					t.Skipf("no IPv6 loopback here: %v", err)
				}
				ln.Close()
			}
			p := newProxy(t, Config{})
			fe := Frontend{Addr: freeAddr(t, host, TCP), Protocol: TCP}
			be := startProxyV2Backend(t, net.JoinHostPort(host, "0"))
			addService(t, p, fe, Options{ProxyProtocol: ProxyV2}, be.backend())

			c := dial(t, fe)
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%s %s\n", addrPortOf(t, c.LocalAddr()), fe.Addr)
			if line != want {
				t.Fatalf("backend saw %q, want %q (the client's address, then the frontend's)", line, want)
			}
		})
	}
}

// Without the option nothing precedes the client's bytes.
func TestNoProxyHeaderByDefault(t *testing.T) {
	p := newProxy(t, Config{})
	fe := freeFrontend(t, TCP)
	be := startProxyV2Backend(t, "127.0.0.1:0")
	addService(t, p, fe, Options{}, be.backend())
	c := dial(t, fe)
	fmt.Fprintf(c, "GET / HTTP/1.1\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "no PROXY protocol v2 signature") {
		t.Fatalf("backend said %q, want it to find no header", line)
	}
}
