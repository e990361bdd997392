package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Defaults of Config.
const (
	// DefaultAddr is unprivileged and clear of the ports other resolvers
	// hold on a host: 53 (systemd-resolved, dnsmasq), 5353 (mDNS), 5355
	// (LLMNR), 8600 (Consul). The daemon puts the node's listen host in
	// front of it, so nodes sharing a machine don't collide.
	DefaultAddr = "127.0.0.1:8653"
	// DefaultDomain is the cluster domain. ICANN reserved ".internal" for
	// private use (2024): it will never be a public name we shadow, and a
	// query that leaks out of the cluster ends at the root, not at a
	// registry someone owns. "apiary." alone could one day be delegated.
	DefaultDomain = "apiary.internal."
	// DefaultResolvConf is where the upstream resolvers are read from when
	// Config.Upstreams is empty.
	DefaultResolvConf = "/etc/resolv.conf"
	// DefaultTTL is short because DNS is the live path: a task that fails
	// its health check must leave every answer within a check interval,
	// and whatever a client caches outlives the change by up to a TTL. Two
	// seconds still lets a client that opens many connections at once
	// resolve once. VIPs change rarely, but the same TTL keeps one rule.
	DefaultTTL = 2 * time.Second
	// DefaultForwardTimeout is one upstream's time to answer: below the 5 s
	// after which glibc's stub retries, so a dead upstream costs one
	// SERVFAIL or the next upstream, not the client's whole timeout.
	DefaultForwardTimeout = 2 * time.Second
	// DefaultMaxUDPSize is DNS Flag Day 2020's EDNS buffer size: larger UDP
	// answers fragment, and fragments are dropped on many paths.
	DefaultMaxUDPSize = 1232
	// DefaultMaxAnswers: a thousand addresses is more than any client
	// uses, and a thousand SRV records with their addresses still fit the
	// 64 KiB of a TCP message.
	DefaultMaxAnswers = 1000
	// DefaultMaxConcurrentForwards is Docker's embedded DNS's limit.
	DefaultMaxConcurrentForwards = 1024
	// DefaultMaxTCPConns bounds the goroutines and file descriptors that
	// idle TCP clients can hold; further connections wait in the backlog.
	DefaultMaxTCPConns = 256
	// DefaultTCPIdleTimeout is how long a TCP connection may wait for its
	// next query (RFC 7766 §6.2.3 asks for seconds, not minutes).
	DefaultTCPIdleTimeout = 8 * time.Second
)

// Bounds of Config: values outside them are refused by Listen.
const (
	// MaxDomainLength leaves room in a 253-character name for a relative
	// name of MaxNameLength.
	MaxDomainLength = 50
	// MaxTTL: anything longer defeats DNS as the live path.
	MaxTTL = time.Hour
	// MaxUpstreams is resolv.conf's MAXNS: glibc uses the first three.
	MaxUpstreams = 3
	// MaxForwardTimeout: a client has long given up by then.
	MaxForwardTimeout = 30 * time.Second
	// MaxUDPSizeLimit is RFC 6891's suggested upper EDNS buffer size.
	MaxUDPSizeLimit = 4096
	// MaxAnswersLimit: 4,096 A records are 64 KiB, a TCP message's limit.
	MaxAnswersLimit = 4096
	// MaxConcurrentForwardsLimit bounds the sockets forwarding can open.
	MaxConcurrentForwardsLimit = 65536
	// MaxTCPConnsLimit bounds the file descriptors TCP clients can hold.
	MaxTCPConnsLimit = 65536
	// MaxTCPIdleTimeout: RFC 7766 §6.2.3 asks servers not to hold idle
	// connections for minutes.
	MaxTCPIdleTimeout = 2 * time.Minute
)

// minUDPSize is DNS's UDP payload without EDNS (RFC 1035 §4.2.1).
const minUDPSize = 512

// Config configures a Server.
type Config struct {
	// Addr is HOST:PORT to listen on, UDP and TCP on the same port. Port 0
	// picks a free port (Server.Addr reports it).
	Addr string
	// Domain is the cluster domain, fully qualified or not ("apiary.internal"):
	// "web.<Domain>" names the service web. Names inside it that the
	// records do not know are answered NXDOMAIN.
	Domain string
	// Upstreams are the resolvers names outside the cluster are forwarded
	// to, "IP" or "IP:PORT" (port 53 by default), tried in order. Empty
	// means the nameservers of ResolvConf. At most MaxUpstreams.
	Upstreams []string
	// ResolvConf is read for upstreams when Upstreams is empty (its first
	// MaxUpstreams nameservers, read once at Listen). Empty, or a file
	// that does not exist, means no upstreams: names outside the cluster
	// are answered REFUSED.
	ResolvConf string
	// TTL of every answer, in whole seconds (0 asks clients not to cache);
	// at most MaxTTL.
	TTL time.Duration
	// ForwardTimeout is how long one upstream has to answer (over UDP then
	// TCP, when the UDP answer is truncated); at most MaxForwardTimeout.
	ForwardTimeout time.Duration
	// MaxUDPSize caps a UDP answer, whatever buffer size a client
	// advertises (EDNS0); larger answers are truncated with TC set, and the
	// client asks again over TCP. Also the size of the buffer UDP queries
	// are read into. 512 to MaxUDPSizeLimit.
	MaxUDPSize int
	// MaxAnswers caps the records of one answer, over any transport: a
	// service with more healthy tasks is answered with a random subset.
	// 1 to MaxAnswersLimit.
	MaxAnswers int
	// MaxConcurrentForwards caps the queries being forwarded at once; one
	// more is answered SERVFAIL. 1 to MaxConcurrentForwardsLimit.
	MaxConcurrentForwards int
	// MaxTCPConns caps open TCP connections. 1 to MaxTCPConnsLimit.
	MaxTCPConns int
	// TCPIdleTimeout closes a TCP connection that sends no query for that
	// long. At most MaxTCPIdleTimeout.
	TCPIdleTimeout time.Duration
	// Records answers the cluster's names for every client, unless View is
	// set. One of Records and View must be set.
	Records Records
	// View, when set, picks the records a client sees from its source
	// address: a per-network view on a data path where a task's address
	// tells its network. A nil result means the client sees no cluster
	// names (those in the domain are NXDOMAIN, others are forwarded).
	View func(client netip.Addr) Records
	// Logger receives the server's messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns every default; set Records (or View) before Listen.
func DefaultConfig() Config {
	return Config{
		Addr:                  DefaultAddr,
		Domain:                DefaultDomain,
		ResolvConf:            DefaultResolvConf,
		TTL:                   DefaultTTL,
		ForwardTimeout:        DefaultForwardTimeout,
		MaxUDPSize:            DefaultMaxUDPSize,
		MaxAnswers:            DefaultMaxAnswers,
		MaxConcurrentForwards: DefaultMaxConcurrentForwards,
		MaxTCPConns:           DefaultMaxTCPConns,
		TCPIdleTimeout:        DefaultTCPIdleTimeout,
	}
}

// validate checks c and returns it with the domain lower-case and fully
// qualified and the upstreams parsed.
func (c Config) validate() (Config, []netip.AddrPort, error) {
	fail := func(field, format string, args ...any) (Config, []netip.AddrPort, error) {
		return c, nil, fmt.Errorf("dns: config: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if c.Addr == "" {
		return fail("Addr", "must not be empty (HOST:PORT)")
	}
	domain := strings.TrimSuffix(strings.ToLower(c.Domain), ".")
	if len(domain) > MaxDomainLength {
		return fail("Domain", "must be at most %d characters, got %d", MaxDomainLength, len(domain))
	}
	if err := checkName(domain); err != nil {
		return fail("Domain", "%v", err)
	}
	c.Domain = domain + "."
	if len(c.Upstreams) > MaxUpstreams {
		return fail("Upstreams", "at most %d, got %d", MaxUpstreams, len(c.Upstreams))
	}
	var ups []netip.AddrPort
	for i, u := range c.Upstreams {
		ap, err := parseUpstream(u)
		if err != nil {
			return fail(fmt.Sprintf("Upstreams[%d]", i), "%v", err)
		}
		ups = append(ups, ap)
	}
	switch {
	case c.TTL < 0 || c.TTL > MaxTTL:
		return fail("TTL", "must be between 0 and %v, got %v", MaxTTL, c.TTL)
	case c.ForwardTimeout <= 0 || c.ForwardTimeout > MaxForwardTimeout:
		return fail("ForwardTimeout", "must be above 0 and at most %v, got %v", MaxForwardTimeout, c.ForwardTimeout)
	case c.MaxUDPSize < minUDPSize || c.MaxUDPSize > MaxUDPSizeLimit:
		return fail("MaxUDPSize", "must be between %d and %d, got %d", minUDPSize, MaxUDPSizeLimit, c.MaxUDPSize)
	case c.MaxAnswers < 1 || c.MaxAnswers > MaxAnswersLimit:
		return fail("MaxAnswers", "must be between 1 and %d, got %d", MaxAnswersLimit, c.MaxAnswers)
	case c.MaxConcurrentForwards < 1 || c.MaxConcurrentForwards > MaxConcurrentForwardsLimit:
		return fail("MaxConcurrentForwards", "must be between 1 and %d, got %d", MaxConcurrentForwardsLimit, c.MaxConcurrentForwards)
	case c.MaxTCPConns < 1 || c.MaxTCPConns > MaxTCPConnsLimit:
		return fail("MaxTCPConns", "must be between 1 and %d, got %d", MaxTCPConnsLimit, c.MaxTCPConns)
	case c.TCPIdleTimeout <= 0 || c.TCPIdleTimeout > MaxTCPIdleTimeout:
		return fail("TCPIdleTimeout", "must be above 0 and at most %v, got %v", MaxTCPIdleTimeout, c.TCPIdleTimeout)
	case c.Records == nil && c.View == nil:
		return fail("Records", "one of Records and View must be set")
	case c.Records != nil && c.View != nil:
		return fail("View", "set Records or View, not both")
	}
	return c, ups, nil
}

// parseUpstream reads "IP" or "IP:PORT"; names are refused, since
// resolving them would need the resolver being configured.
func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, fmt.Errorf("%q: port must not be 0", s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.AddrPort{}, errors.New(`want "IP" or "IP:PORT", got ` + fmt.Sprintf("%q", s))
	}
	return netip.AddrPortFrom(a.Unmap(), 53), nil
}
