package dns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"time"

	miekg "github.com/miekg/dns"
)

// errForwardBusy: MaxConcurrentForwards queries are being forwarded.
var errForwardBusy = errors.New("too many queries being forwarded")

// forwarder sends the queries the cluster does not answer to the upstream
// resolvers, over the transport the client used.
type forwarder struct {
	upstreams []string // "IP:PORT", tried in order
	udp, tcp  *miekg.Client
	slots     chan struct{} // one per query being forwarded
	timeout   time.Duration // one upstream's time to answer
	log       *slog.Logger
}

func newForwarder(upstreams []netip.AddrPort, cfg Config, log *slog.Logger) *forwarder {
	f := &forwarder{
		udp:     &miekg.Client{Net: "udp", Timeout: cfg.ForwardTimeout},
		tcp:     &miekg.Client{Net: "tcp", Timeout: cfg.ForwardTimeout},
		slots:   make(chan struct{}, cfg.MaxConcurrentForwards),
		timeout: cfg.ForwardTimeout,
		log:     log,
	}
	for _, u := range upstreams {
		f.upstreams = append(f.upstreams, u.String())
	}
	return f
}

// forward asks the upstreams in turn and returns the first answer that is
// neither SERVFAIL nor REFUSED (glibc's stub moves on for those too), else
// the last such answer, else an error. The answer carries r's ID.
func (f *forwarder) forward(ctx context.Context, r *miekg.Msg, overTCP bool) (*miekg.Msg, error) {
	select {
	case f.slots <- struct{}{}:
		defer func() { <-f.slots }()
	default:
		return nil, errForwardBusy
	}
	// A fresh ID per upstream query: the client's ID is its own, and a
	// guessable one helps whoever would spoof the upstream's answer.
	q := r.Copy()
	q.Id = miekg.Id()
	var last *miekg.Msg
	var errs []error
	for _, up := range f.upstreams {
		resp, err := f.exchange(ctx, q, up, overTCP)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", up, err))
			continue
		}
		resp.Id = r.Id
		if resp.Rcode == miekg.RcodeServerFailure || resp.Rcode == miekg.RcodeRefused {
			last = resp
			continue
		}
		return resp, nil
	}
	if last != nil {
		return last, nil
	}
	return nil, errors.Join(errs...)
}

// exchange asks one upstream: over TCP for a TCP client; over UDP for a UDP
// client, again over TCP when the UDP answer is truncated (the client gets
// as much of it as its buffer holds).
func (f *forwarder) exchange(ctx context.Context, q *miekg.Msg, up string, overTCP bool) (*miekg.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout) // UDP and the TCP retry together
	defer cancel()
	c := f.udp
	if overTCP {
		c = f.tcp
	}
	resp, err := exchangeOnce(ctx, c, q, up)
	if err == nil && resp.Truncated && !overTCP {
		resp, err = exchangeOnce(ctx, f.tcp, q, up)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || !sameQuestion(resp.Question[0], q.Question[0]) {
		return nil, errors.New("answer is for another question")
	}
	return resp, nil
}

// exchangeOnce sends q to up and reads the answer. miekg's exchange takes
// only the context's deadline; closing the connection when ctx is done is
// what ends a forward in flight when the server closes.
func exchangeOnce(ctx context.Context, c *miekg.Client, q *miekg.Msg, up string) (*miekg.Msg, error) {
	conn, err := c.DialContext(ctx, up)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(ctx, q, conn)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return resp, err
}

func sameQuestion(a, b miekg.Question) bool {
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && equalFoldASCII(a.Name, b.Name)
}

// equalFoldASCII compares names as DNS does: ASCII letters fold, nothing else.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// readResolvConf returns the first MaxUpstreams nameservers of path; a file
// that does not exist means none.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	if path == "" {
		return nil, nil
	}
	cc, err := miekg.ClientConfigFromFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns: reading upstreams from %s: %w", path, err)
	}
	var ups []netip.AddrPort
	for _, s := range cc.Servers {
		ap, err := parseUpstream(net.JoinHostPort(s, cc.Port))
		if err != nil {
			return nil, fmt.Errorf("dns: reading upstreams from %s: nameserver %w", path, err)
		}
		if len(ups) < MaxUpstreams {
			ups = append(ups, ap)
		}
	}
	return ups, nil
}

// withoutSelf drops the upstreams that are this server: forwarding to
// ourselves would loop until the timeout. An upstream is us if it has our
// port and our address, or, when we listen on every address, a loopback
// or local one.
func withoutSelf(ups []netip.AddrPort, self netip.AddrPort) []netip.AddrPort {
	var local map[netip.Addr]bool
	if self.Addr().IsUnspecified() {
		local = localAddrs()
	}
	var kept []netip.AddrPort
	for _, u := range ups {
		a := u.Addr().WithZone("")
		isSelf := u.Port() == self.Port() &&
			(a == self.Addr() || self.Addr().IsUnspecified() && (a.IsLoopback() || a.IsUnspecified() || local[a]))
		if !isSelf {
			kept = append(kept, u)
		}
	}
	return kept
}

// localAddrs returns the host's interface addresses.
func localAddrs() map[netip.Addr]bool {
	local := make(map[netip.Addr]bool)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return local
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			local[p.Addr().Unmap()] = true
		}
	}
	return local
}
