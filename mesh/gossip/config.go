package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// DefaultPort is the gossip port, Docker Swarm's and Serf's (TCP and UDP).
const DefaultPort = 7946

// Config configures a Member. Start from DefaultConfig.
type Config struct {
	// NodeID names this node in gossip; it must equal the CommonName of
	// Identity's certificate, since receivers check that it does.
	NodeID string
	// BindAddr and BindPort are where it listens (UDP and TCP). Port 0
	// picks a free port (tests); Member.Port says which.
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what others dial; empty and 0
	// mean the bind address and port.
	AdvertiseAddr string
	AdvertisePort int

	// PrimaryKey encrypts what this node sends (AES-GCM; 16, 24 or 32
	// bytes); AcceptedKeys also decrypt what it receives. Gossip is always
	// encrypted: a peer without one of these keys cannot take part.
	PrimaryKey   []byte
	AcceptedKeys [][]byte

	// Identity signs this node's entries; Verifier checks everyone's.
	Identity Identity
	Verifier Verifier
	// Admit, if set, makes a semantic check of a remote entry that passed
	// the signature check ("this node really runs that task"); an error
	// drops the entry (Stats.Rejected). It is not called for tombstones
	// nor for this node's own entries. It runs on gossip's receive path,
	// so it must be quick, and it must not call back into the Member.
	Admit func(owner, network, table, key string, value []byte) error

	// Failure detection and dissemination (memberlist's). The defaults are
	// memberlist's LAN profile with probes five times as frequent (every
	// 200 ms, 100 ms for the direct answer), so that a node that stops
	// answering is declared dead, and its entries gone everywhere, within
	// about 2 s (the routing mesh's target; the LAN profile, this package's
	// default before, took 6 to 8 s; docs/benchmarks.md has both). A
	// silent node is probed within about ProbeInterval (each member probes
	// one other per interval, so the dead one about once per interval),
	// suspected when neither it (within ProbeTimeout) nor IndirectChecks
	// other members on its behalf answer by the end of the interval, and
	// declared dead after the suspicion timeout: SuspicionMult ×
	// max(1, log10 n) × ProbeInterval once SuspicionMult − 2 other members
	// confirm the suspicion by failing their own probes (none needed below
	// 4 nodes): 0.8 s up to 10 nodes, 1.6 s at 100, 2.4 s at 1,000.
	// Without the confirmations it is SuspicionMaxTimeoutMult times that
	// (4.8 s, 9.6 s, 14.4 s), which is how long one member's mistaken
	// suspicion leaves the node to refute it. Requiring two confirmations
	// is what keeps false deaths rare at this pace: with one (SuspicionMult
	// 3) death came 0.3 s sooner but live members were declared dead under
	// load. A node starved of CPU for a second or more can still be
	// declared dead; it then refutes, rejoins, and its entries are fetched
	// again (see NotifyJoin). memberlist's Lifeguard stretches the probe
	// interval and timeout of a member that misses answers itself (up to 8
	// times), so a starved member does not accuse healthy ones.
	// GossipInterval is 100 ms rather than memberlist's 200 ms, for entry
	// convergence within a second at 100 nodes.
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	IndirectChecks          int
	GossipInterval          time.Duration
	GossipNodes             int
	RetransmitMult          int
	PushPullInterval        time.Duration
	TCPTimeout              time.Duration

	// ReapTime is how long a tombstone, and the memory of a node that went
	// down, are kept. It must be longer than an update takes to reach
	// every node (push/pull included), or a late copy of a deleted entry
	// can come back. Docker's NetworkDB keeps tombstones 30 minutes.
	ReapTime time.Duration
	// PendingTimeout is how long an entry is held while its owner is not
	// yet known as alive or its certificate has not arrived.
	PendingTimeout time.Duration

	// Logger receives memberlist's and this package's logs; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults; NodeID, keys, Identity and Verifier
// must still be set.
func DefaultConfig() Config {
	return Config{
		BindAddr:                "0.0.0.0",
		BindPort:                DefaultPort,
		ProbeInterval:           200 * time.Millisecond,
		ProbeTimeout:            100 * time.Millisecond,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 6,
		IndirectChecks:          3,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		PushPullInterval:        30 * time.Second,
		TCPTimeout:              10 * time.Second,
		ReapTime:                30 * time.Minute,
		PendingTimeout:          30 * time.Second,
	}
}

func (c *Config) validate() error {
	if err := checkName("Config.NodeID", c.NodeID); err != nil {
		return err
	}
	if c.BindAddr == "" || net.ParseIP(c.BindAddr) == nil {
		return fmt.Errorf("gossip: Config.BindAddr %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return fmt.Errorf("gossip: Config.AdvertiseAddr %q is not an IP address", c.AdvertiseAddr)
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"BindPort", c.BindPort}, {"AdvertisePort", c.AdvertisePort}} {
		if p.v < 0 || p.v > 65535 {
			return fmt.Errorf("gossip: Config.%s %d is not a port", p.name, p.v)
		}
	}
	if err := checkKey("Config.PrimaryKey", c.PrimaryKey); err != nil {
		return err
	}
	for i, k := range c.AcceptedKeys {
		if err := checkKey(fmt.Sprintf("Config.AcceptedKeys[%d]", i), k); err != nil {
			return err
		}
	}
	if c.Verifier == nil {
		return errors.New("gossip: Config.Verifier is nil")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval}, {"PushPullInterval", c.PushPullInterval},
		{"TCPTimeout", c.TCPTimeout}, {"ReapTime", c.ReapTime}, {"PendingTimeout", c.PendingTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("gossip: Config.%s is %v, must be positive", d.name, d.v)
		}
	}
	if c.ProbeTimeout > c.ProbeInterval {
		return fmt.Errorf("gossip: Config.ProbeTimeout %v is longer than ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"SuspicionMult", c.SuspicionMult}, {"SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult},
		{"IndirectChecks", c.IndirectChecks}, {"GossipNodes", c.GossipNodes}, {"RetransmitMult", c.RetransmitMult},
	} {
		if n.v < 1 {
			return fmt.Errorf("gossip: Config.%s is %d, must be at least 1", n.name, n.v)
		}
	}
	return nil
}

// checkKey checks an AES key as memberlist's keyring wants it.
func checkKey(field string, k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	case 0:
		return fmt.Errorf("gossip: %s is empty: gossip is always encrypted", field)
	}
	return fmt.Errorf("gossip: %s is %d bytes; an AES key is 16, 24 or 32", field, len(k))
}
