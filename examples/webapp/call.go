package webapp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// /call?name=db&port=80&path=/ fetches http://<name>:<port><path> and
// answers with what came back (its status and at most maxCallBody of its
// body; the header X-Called-Addr says which address answered). The name is
// resolved through the node's DNS server: first as SRV
// "_<port>._tcp.<name>", which gives the address and port that reach the
// service (its VIP and VIP port, or a task's node and host port), else as
// A/AAAA, reached on port itself. port is the service's target port
// (default 80); path defaults to "/". Without the node's DNS server
// ($APIARY_DNS empty: the app runs outside a cluster) the system's resolver
// looks the name up as A/AAAA only: SRV names are the cluster DNS's.
//
// Through the node's DNS server the name is asked fully qualified ("db."),
// so the host's search domains are not tried first: that server answers
// the cluster's bare names.

const (
	// callTimeout bounds one /call: resolution, connection and answer.
	callTimeout = 10 * time.Second
	// maxCallBody bounds the body /call relays.
	maxCallBody = 1 << 20
	// maxNameLen is the longest DNS name (RFC 1035).
	maxNameLen = 253
	// CalledAddrHeader names the address /call reached.
	CalledAddrHeader = "X-Called-Addr"
)

// caller serves /call.
type caller struct {
	res    *net.Resolver
	custom bool // res asks the node's DNS server, not the system's
	client *http.Client
}

func newCaller(dns string) *caller {
	c := &caller{res: net.DefaultResolver, client: &http.Client{Timeout: callTimeout}}
	if dns != "" {
		c.custom = true
		c.res = &net.Resolver{
			PreferGo: true, // only Go's resolver takes Dial
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, dns)
			},
		}
	}
	return c
}

// callRequest is a /call's parameters, checked.
type callRequest struct {
	name, path string
	port       uint16
}

func parseCall(r *http.Request) (callRequest, error) {
	q := r.URL.Query()
	c := callRequest{name: q.Get("name"), path: q.Get("path"), port: 80}
	switch {
	case c.name == "":
		return c, fmt.Errorf("name: required (the service to call)")
	case len(c.name) > maxNameLen:
		return c, fmt.Errorf("name: %d bytes, at most %d", len(c.name), maxNameLen)
	case strings.ContainsAny(c.name, "/:@?# "):
		return c, fmt.Errorf("name %q: not a host name", c.name)
	}
	if p := q.Get("port"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return c, fmt.Errorf("port %q: want 1 to 65535", p)
		}
		c.port = uint16(n)
	}
	if c.path == "" {
		c.path = "/"
	} else if !strings.HasPrefix(c.path, "/") {
		return c, fmt.Errorf("path %q: must start with /", c.path)
	}
	return c, nil
}

func (c *caller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := parseCall(r)
	if err != nil {
		http.Error(w, "call: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	addr, err := c.resolve(ctx, req.name, req.port)
	if err != nil {
		http.Error(w, fmt.Sprintf("call %s: %v", req.name, err), http.StatusBadGateway)
		return
	}
	out, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+req.path, nil)
	if err != nil {
		http.Error(w, fmt.Sprintf("call %s: %v", req.name, err), http.StatusBadRequest)
		return
	}
	out.Host = net.JoinHostPort(req.name, strconv.Itoa(int(req.port)))
	resp, err := c.client.Do(out)
	if err != nil {
		http.Error(w, fmt.Sprintf("call %s at %s: %v", req.name, addr, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set(CalledAddrHeader, addr)
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, maxCallBody))
}

// resolve returns the HOST:PORT that reaches port of the service name.
func (c *caller) resolve(ctx context.Context, name string, port uint16) (string, error) {
	host, p := name, port
	if c.custom {
		if !strings.HasSuffix(host, ".") {
			host += "."
		}
		if _, srvs, err := c.res.LookupSRV(ctx, strconv.Itoa(int(port)), "tcp", host); err == nil && len(srvs) > 0 {
			host, p = srvs[0].Target, srvs[0].Port
		}
	}
	addrs, err := c.res.LookupHost(ctx, host)
	if err != nil {
		return "", fmt.Errorf("resolve: %w", err)
	}
	return net.JoinHostPort(addrs[0], strconv.Itoa(int(p))), nil
}
