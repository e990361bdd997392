package dns_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/mesh/dns"
)

func TestListenRefusesABadConfig(t *testing.T) {
	for _, tc := range []struct {
		problem string
		change  func(*dns.Config)
	}{
		{"Addr: must not be empty", func(c *dns.Config) { c.Addr = "" }},
		{`Addr: want HOST:PORT, got "127.0.0.1"`, func(c *dns.Config) { c.Addr = "127.0.0.1" }},
		{"Domain: must not be empty", func(c *dns.Config) { c.Domain = "" }},
		{"Domain: must be at most 50 characters", func(c *dns.Config) { c.Domain = strings.Repeat("a", 51) }},
		{"Domain: ", func(c *dns.Config) { c.Domain = "my cluster" }},
		{"Upstreams: at most 3, got 4", func(c *dns.Config) { c.Upstreams = []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"} }},
		{`Upstreams[1]: want "IP" or "IP:PORT", got "dns.example"`, func(c *dns.Config) { c.Upstreams = []string{"192.0.2.1", "dns.example"} }},
		{`Upstreams[0]: "192.0.2.1:0": port must not be 0`, func(c *dns.Config) { c.Upstreams = []string{"192.0.2.1:0"} }},
		{"TTL: must be between 0 and 1h0m0s, got -1s", func(c *dns.Config) { c.TTL = -time.Second }},
		{"TTL: ", func(c *dns.Config) { c.TTL = 2 * time.Hour }},
		{"ForwardTimeout: ", func(c *dns.Config) { c.ForwardTimeout = 0 }},
		{"ForwardTimeout: ", func(c *dns.Config) { c.ForwardTimeout = time.Minute }},
		{"MaxUDPSize: must be between 512 and 4096, got 511", func(c *dns.Config) { c.MaxUDPSize = 511 }},
		{"MaxUDPSize: ", func(c *dns.Config) { c.MaxUDPSize = 65535 }},
		{"MaxAnswers: must be between 1 and 4096, got 0", func(c *dns.Config) { c.MaxAnswers = 0 }},
		{"MaxConcurrentForwards: ", func(c *dns.Config) { c.MaxConcurrentForwards = 0 }},
		{"MaxTCPConns: ", func(c *dns.Config) { c.MaxTCPConns = 1 << 20 }},
		{"TCPIdleTimeout: ", func(c *dns.Config) { c.TCPIdleTimeout = 0 }},
		{"Records: one of Records and View must be set", func(c *dns.Config) { c.Records = nil }},
		{"View: set Records or View, not both", func(c *dns.Config) {
			c.View = func(netip.Addr) dns.Records { return nil }
		}},
	} {
		t.Run(tc.problem, func(t *testing.T) {
			cfg := dns.DefaultConfig()
			cfg.Addr = "127.0.0.1:0"
			cfg.ResolvConf = ""
			cfg.Records = dns.NewTable()
			tc.change(&cfg)
			s, err := dns.Listen(cfg)
			if err == nil {
				s.Close()
				t.Fatal("Listen accepted it")
			}
			if want := "dns: config: " + tc.problem; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want it to start with %q", err, want)
			}
		})
	}
}

func TestTheDomainMayBeGivenWithoutItsDot(t *testing.T) {
	s := start(t, cluster(t), func(c *dns.Config) { c.Domain = "Example.Cluster" })
	if r := ask(t, s, "udp", "web.example.cluster.", 1); len(r.Answer) != 1 {
		t.Errorf("web.example.cluster.: %d records, want 1", len(r.Answer))
	}
}
