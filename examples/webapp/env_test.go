package webapp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/mesh/dns"
)

// started runs the app with args and env until the test ends and returns
// the address it prints it listens on.
func started(t *testing.T, args []string, env map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, args, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("exit code %d", c)
			}
		case <-time.After(10 * time.Second):
			t.Error("the app did not stop")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no listening line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	_, addr, ok := strings.Cut(strings.TrimSpace(line), "listening on http://")
	if !ok {
		t.Fatalf("no address in %q", line)
	}
	return addr
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

func TestListensWhereTheEnvironmentSays(t *testing.T) {
	port := freeTCPPort(t)
	addr := started(t, nil, map[string]string{EnvHost: "127.0.0.1", EnvPort: port})
	if addr != "127.0.0.1:"+port {
		t.Fatalf("listening on %s, want APIARY_HOST:PORT 127.0.0.1:%s", addr, port)
	}
	if code, body, _ := get(t, "http://"+addr+"/health"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /health = %d %q", code, body)
	}
}

func TestListenAddrPrecedence(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "127.0.0.1:0"},
		{map[string]string{EnvPort: "8080"}, ":8080"},
		{map[string]string{EnvHost: "127.0.0.2", EnvPort: "8080"}, "127.0.0.2:8080"},
		{map[string]string{EnvHost: "::1", EnvPort: "8080"}, "[::1]:8080"},
		{map[string]string{"WEBAPP_LISTEN": "127.0.0.3:9", EnvHost: "127.0.0.2", EnvPort: "8080"}, "127.0.0.3:9"},
	} {
		if got := listenAddr(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("env %v: listen on %q, want %q", tc.env, got, tc.want)
		}
	}
	// The flag wins over the environment.
	addr := started(t, []string{"-listen", "127.0.0.1:0"}, map[string]string{EnvHost: "127.0.0.1", EnvPort: "1"})
	if strings.HasSuffix(addr, ":1") {
		t.Errorf("listening on %s: the environment won over -listen", addr)
	}
}

// dnsServer is a node DNS server on loopback answering from table.
func dnsServer(t *testing.T, table *dns.Table) string {
	t.Helper()
	cfg := dns.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.ResolvConf = "" // no upstreams: other names are refused
	cfg.Records = table
	s, err := dns.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr().String()
}

// backend is a service answering with its name and the path asked.
func backend(t *testing.T, name string) uint16 {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s answered %s for host %s", name, r.URL.Path, r.Host)
	}))
	t.Cleanup(s.Close)
	return netip.MustParseAddrPort(s.Listener.Addr().String()).Port()
}

func TestCallResolvesThroughTheNodesDNS(t *testing.T) {
	loop := netip.MustParseAddr("127.0.0.1")
	dbPort, cachePort := backend(t, "db"), backend(t, "cache")
	table := dns.NewTable()
	// db has a VIP and a VIP port other than its target port (the host
	// data path outside Linux): only SRV tells where to reach it.
	if err := table.Set(dns.Service{Name: "db", VIPs: []netip.Addr{loop}, Ports: []dns.Port{{Protocol: "tcp", Target: 5432, VIPPort: dbPort}}}); err != nil {
		t.Fatal(err)
	}
	// cache has no port of that number: reached on its address and the
	// port asked.
	if err := table.Set(dns.Service{Name: "cache", VIPs: []netip.Addr{loop}}); err != nil {
		t.Fatal(err)
	}
	addr := started(t, nil, map[string]string{EnvHost: "127.0.0.1", EnvPort: freeTCPPort(t), EnvDNS: dnsServer(t, table)})

	code, body, h := get(t, "http://"+addr+"/call?name=db&port=5432&path=/rows")
	if code != http.StatusOK || body != "db answered /rows for host db:5432" || h.Get(CalledAddrHeader) != fmt.Sprintf("127.0.0.1:%d", dbPort) {
		t.Errorf("call db = %d %q (reached %s), want db's answer through its VIP port %d", code, body, h.Get(CalledAddrHeader), dbPort)
	}
	code, body, _ = get(t, fmt.Sprintf("http://%s/call?name=cache&port=%d", addr, cachePort))
	if code != http.StatusOK || !strings.HasPrefix(body, "cache answered / ") {
		t.Errorf("call cache = %d %q, want cache's answer", code, body)
	}
	// A name the cluster does not know fails, saying so.
	code, body, _ = get(t, "http://"+addr+"/call?name=nothing.apiary.internal")
	if code != http.StatusBadGateway || !strings.Contains(body, "call nothing.apiary.internal: resolve:") {
		t.Errorf("call an unknown name = %d %q, want 502 naming it", code, body)
	}
}

func TestCallRefusesBadParameters(t *testing.T) {
	h := Handler("v1", "")
	for q, want := range map[string]string{
		"":                                  "name: required",
		"?name=a/b":                         `name "a/b": not a host name`,
		"?name=db&port=0":                   `port "0": want 1 to 65535`,
		"?name=db&port=70000":               `port "70000": want 1 to 65535`,
		"?name=db&path=rows":                `path "rows": must start with /`,
		"?name=" + strings.Repeat("a", 254): "name: 254 bytes, at most 253",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/call"+q, nil))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/call%s = %d %q, want 400 %q", q, rec.Code, rec.Body, want)
		}
	}
}

// Without APIARY_DNS the system's resolver is used: "localhost" resolves.
func TestCallWithTheSystemResolver(t *testing.T) {
	port := backend(t, "local")
	addr := started(t, nil, map[string]string{EnvHost: "127.0.0.1", EnvPort: freeTCPPort(t)})
	code, body, _ := get(t, fmt.Sprintf("http://%s/call?name=localhost&port=%d&path=/x", addr, port))
	if code != http.StatusOK || !strings.HasPrefix(body, "local answered /x") {
		t.Errorf("call localhost = %d %q", code, body)
	}
}
