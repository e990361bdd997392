package balancer

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Config.
const (
	// DefaultConnectTimeout bounds a TCP connect to one backend. A backend
	// on a live node answers a loopback or LAN connect in well under a
	// millisecond; a second is long enough for a loaded node and short
	// enough that a retry on another backend still feels like one connect.
	DefaultConnectTimeout = time.Second
	// DefaultDrainTimeout is how long connections to a backend that left
	// (or a service that was removed) may stay open: long enough for
	// requests in flight to finish, short enough that a task being stopped
	// (Swarm's stop grace period is 10 s) is not held up.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultUDPIdleTimeout ends a UDP flow after this long without a
	// datagram either way (Linux conntrack's unreplied UDP timeout is 30 s;
	// DNS and most request/response protocols finish far sooner).
	DefaultUDPIdleTimeout = 30 * time.Second
	// DefaultMaxConnections caps a service's open TCP connections on one
	// balancer unless its Options say otherwise.
	DefaultMaxConnections = 65536
	// DefaultMaxUDPFlows caps a service's UDP flows (one connected socket
	// each) on one balancer unless its Options say otherwise.
	DefaultMaxUDPFlows = 16384
	// DefaultKeepAlive is the TCP keepalive period on both sides of a
	// proxied connection (Go's own default): it finds dead peers, it never
	// cuts an idle but live connection.
	DefaultKeepAlive = 15 * time.Second
)

// Bounds of Config's durations.
const (
	// MaxTimeout bounds ConnectTimeout, DrainTimeout and UDPIdleTimeout.
	MaxTimeout = 24 * time.Hour
	// MinUDPIdleTimeout keeps a flow from expiring between a request and
	// its answer.
	MinUDPIdleTimeout = 10 * time.Millisecond
)

// Config configures a Proxy. Zero fields take their defaults.
type Config struct {
	// ConnectTimeout bounds each TCP connect to a backend; a connect that
	// fails or times out is retried on another eligible backend, so a
	// client sees a failure only when none accepts.
	ConnectTimeout time.Duration
	// DrainTimeout is how long open connections to a backend that left, or
	// of a service that was removed, are kept before they are closed.
	DrainTimeout time.Duration
	// UDPIdleTimeout ends a UDP flow after this long without a datagram.
	// TCP connections have no idle timeout: long-lived idle connections
	// (databases, websockets) must not be cut.
	UDPIdleTimeout time.Duration
	// MaxConnections is a TCP service's default cap on open connections.
	MaxConnections int
	// MaxUDPFlows is a UDP service's default cap on flows.
	MaxUDPFlows int
	// KeepAlive is the TCP keepalive period on both sides of a connection;
	// negative turns keepalives off.
	KeepAlive time.Duration
	// Logger receives the proxy's messages; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		ConnectTimeout: DefaultConnectTimeout,
		DrainTimeout:   DefaultDrainTimeout,
		UDPIdleTimeout: DefaultUDPIdleTimeout,
		MaxConnections: DefaultMaxConnections,
		MaxUDPFlows:    DefaultMaxUDPFlows,
		KeepAlive:      DefaultKeepAlive,
	}
}

// withDefaults fills zero fields and checks the others.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	orDefault(&c.ConnectTimeout, d.ConnectTimeout)
	orDefault(&c.DrainTimeout, d.DrainTimeout)
	orDefault(&c.UDPIdleTimeout, d.UDPIdleTimeout)
	orDefault(&c.MaxConnections, d.MaxConnections)
	orDefault(&c.MaxUDPFlows, d.MaxUDPFlows)
	orDefault(&c.KeepAlive, d.KeepAlive)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	for _, f := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"ConnectTimeout", c.ConnectTimeout, 1},
		{"DrainTimeout", c.DrainTimeout, 1},
		{"UDPIdleTimeout", c.UDPIdleTimeout, MinUDPIdleTimeout},
	} {
		if f.v < f.min || f.v > MaxTimeout {
			return c, fmt.Errorf("balancer: Config.%s %v: want %v to %v", f.name, f.v, f.min, MaxTimeout)
		}
	}
	if c.MaxConnections < 0 || c.MaxConnections > MaxConnectionsLimit {
		return c, fmt.Errorf("balancer: Config.MaxConnections %d: want 1 to %d", c.MaxConnections, MaxConnectionsLimit)
	}
	if c.MaxUDPFlows < 0 || c.MaxUDPFlows > MaxConnectionsLimit {
		return c, fmt.Errorf("balancer: Config.MaxUDPFlows %d: want 1 to %d", c.MaxUDPFlows, MaxConnectionsLimit)
	}
	return c, nil
}

func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
