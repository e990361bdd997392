package dns_test

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/mesh/dns"
)

func TestNamesOutsideTheClusterAreForwarded(t *testing.T) {
	up := startUpstream(t, func(r *miekg.Msg, _ bool) *miekg.Msg { return reply(r, "192.0.2.7") })
	s := start(t, cluster(t), func(c *dns.Config) { c.Upstreams = []string{up.addr} })
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{"example.com.", "printer.", "_http._tcp.example.com."} {
			before := up.udp.Load() + up.tcp.Load()
			r := ask(t, s, network, name, miekg.TypeA)
			if r.Rcode != miekg.RcodeSuccess || !slices.Equal(addrs(r.Answer), []netip.Addr{ip("192.0.2.7")}) {
				t.Errorf("%s over %s: %s %v, want the upstream's 192.0.2.7", name, network, miekg.RcodeToString[r.Rcode], addrs(r.Answer))
			}
			if after := up.udp.Load() + up.tcp.Load(); after != before+1 {
				t.Errorf("%s over %s: the upstream got %d queries, want 1", name, network, after-before)
			}
		}
	}
	// Over the client's transport.
	if up.udp.Load() != 3 || up.tcp.Load() != 3 {
		t.Errorf("upstream got %d over UDP and %d over TCP, want 3 and 3", up.udp.Load(), up.tcp.Load())
	}
	// An address the cluster does not know is asked upstream too.
	name, _ := miekg.ReverseAddr("192.0.2.7")
	if ask(t, s, "udp", name, miekg.TypePTR); up.udp.Load() != 4 {
		t.Errorf("an unknown reverse name was not forwarded")
	}
	// Names in the cluster are not.
	ask(t, s, "udp", "web.", miekg.TypeA)
	ask(t, s, "udp", "nope.apiary.internal.", miekg.TypeA)
	if up.udp.Load() != 4 {
		t.Errorf("a cluster name was forwarded")
	}
}

func TestForwardingRetriesATruncatedAnswerOverTCP(t *testing.T) {
	up := startUpstream(t, func(r *miekg.Msg, overTCP bool) *miekg.Msg {
		if !overTCP {
			m := new(miekg.Msg).SetReply(r)
			m.Truncated = true
			return m
		}
		return reply(r, "192.0.2.8")
	})
	s := start(t, cluster(t), func(c *dns.Config) { c.Upstreams = []string{up.addr} })
	r := ask(t, s, "udp", "example.com.", miekg.TypeA)
	if r.Truncated || !slices.Equal(addrs(r.Answer), []netip.Addr{ip("192.0.2.8")}) {
		t.Errorf("TC %v, %v; want the upstream's TCP answer 192.0.2.8", r.Truncated, addrs(r.Answer))
	}
	if up.udp.Load() != 1 || up.tcp.Load() != 1 {
		t.Errorf("upstream got %d over UDP and %d over TCP, want 1 and 1", up.udp.Load(), up.tcp.Load())
	}
}

// silent returns the address of a UDP socket on 127.0.0.1 that never answers.
func silent(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// closedPort returns an address of 127.0.0.1 where no UDP socket listens.
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestForwardingFailsWithSERVFAIL(t *testing.T) {
	s := start(t, cluster(t), func(c *dns.Config) {
		c.Upstreams = []string{silent(t)}
		c.ForwardTimeout = 100 * time.Millisecond
	})
	r := ask(t, s, "udp", "example.com.", miekg.TypeA)
	if r.Rcode != miekg.RcodeServerFailure {
		t.Errorf("a silent upstream: %s, want SERVFAIL", miekg.RcodeToString[r.Rcode])
	}
	// The cluster's own names do not depend on upstreams.
	if r := ask(t, s, "udp", "web.", miekg.TypeA); len(r.Answer) != 1 {
		t.Errorf("web with a silent upstream: %d records, want 1", len(r.Answer))
	}
}

func TestForwardingMovesToTheNextUpstream(t *testing.T) {
	refusing := startUpstream(t, func(r *miekg.Msg, _ bool) *miekg.Msg {
		return new(miekg.Msg).SetRcode(r, miekg.RcodeRefused)
	})
	good := startUpstream(t, func(r *miekg.Msg, _ bool) *miekg.Msg { return reply(r, "192.0.2.9") })
	// The first has nothing listening: the kernel refuses at once, so the
	// failover needs no timeout (a silent one is TestForwardingFailsWithSERVFAIL's).
	s := start(t, cluster(t), func(c *dns.Config) {
		c.Upstreams = []string{closedPort(t), refusing.addr, good.addr}
	})
	r := ask(t, s, "udp", "example.com.", miekg.TypeA)
	if !slices.Equal(addrs(r.Answer), []netip.Addr{ip("192.0.2.9")}) {
		t.Errorf("%s %v, want the third upstream's 192.0.2.9", miekg.RcodeToString[r.Rcode], addrs(r.Answer))
	}
	if refusing.udp.Load() != 1 {
		t.Errorf("the refusing upstream was asked %d times, want 1", refusing.udp.Load())
	}
	// The upstream's NXDOMAIN is an answer, passed on.
	nx := startUpstream(t, func(r *miekg.Msg, _ bool) *miekg.Msg { return new(miekg.Msg).SetRcode(r, miekg.RcodeNameError) })
	s2 := start(t, cluster(t), func(c *dns.Config) { c.Upstreams = []string{nx.addr, good.addr} })
	if r := ask(t, s2, "tcp", "nope.example.", miekg.TypeA); r.Rcode != miekg.RcodeNameError {
		t.Errorf("upstream NXDOMAIN passed on as %s", miekg.RcodeToString[r.Rcode])
	}
}

func TestWithoutUpstreamsOtherNamesAreRefused(t *testing.T) {
	s := start(t, cluster(t), nil)
	r := ask(t, s, "udp", "example.com.", miekg.TypeA)
	if r.Rcode != miekg.RcodeRefused || r.RecursionAvailable {
		t.Errorf("%s, RA %v; want REFUSED without RA", miekg.RcodeToString[r.Rcode], r.RecursionAvailable)
	}
}

func TestForwardsBeyondTheLimitAreSERVFAIL(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, func(r *miekg.Msg, _ bool) *miekg.Msg {
		<-release
		return reply(r, "192.0.2.11")
	})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the upstream's shutdown, which waits for its handlers
	s := start(t, cluster(t), func(c *dns.Config) {
		c.Upstreams = []string{up.addr}
		c.MaxConcurrentForwards = 1
		c.ForwardTimeout = dns.MaxForwardTimeout // the first forward holds its slot until released
	})
	first := make(chan *miekg.Msg, 1)
	go func() {
		c := &miekg.Client{Net: "tcp", Timeout: queryTimeout}
		r, _, err := c.Exchange(new(miekg.Msg).SetQuestion("slow.example.", miekg.TypeA), s.Addr().String())
		if err != nil {
			r = nil
		}
		first <- r
	}()
	testutil.Eventually(t, queryTimeout, "the first query to reach the upstream", func() bool { return up.tcp.Load() == 1 })
	if r := ask(t, s, "udp", "other.example.", miekg.TypeA); r.Rcode != miekg.RcodeServerFailure {
		t.Errorf("a second forward at the limit: %s, want SERVFAIL", miekg.RcodeToString[r.Rcode])
	}
	if up.udp.Load() != 0 {
		t.Error("the second query reached the upstream")
	}
	// Cluster names are not forwards: the limit does not touch them.
	if r := ask(t, s, "udp", "web.", miekg.TypeA); len(r.Answer) != 1 {
		t.Errorf("web at the forwarding limit: %d records, want 1", len(r.Answer))
	}
	unblock()
	if r := <-first; r == nil || !slices.Equal(addrs(r.Answer), []netip.Addr{ip("192.0.2.11")}) {
		t.Errorf("the first query: %v, want the upstream's answer", r)
	}
	if r := ask(t, s, "udp", "other.example.", miekg.TypeA); r.Rcode != miekg.RcodeSuccess {
		t.Errorf("a forward once the slot is free: %s, want NOERROR", miekg.RcodeToString[r.Rcode])
	}
}

// Close ends the forwards in flight instead of waiting for their timeout:
// with a 30 s ForwardTimeout, a Close that waited would give up after its
// 5 s grace and say so.
func TestCloseEndsForwardsInFlight(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	received := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 512)
		if _, _, err := pc.ReadFrom(buf); err == nil {
			received <- struct{}{}
		}
	}()
	cfg := dns.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.Records = cluster(t)
	cfg.Upstreams = []string{pc.LocalAddr().String()}
	cfg.ForwardTimeout = 30 * time.Second
	s, err := dns.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan *miekg.Msg, 1)
	go func() {
		c := &miekg.Client{Net: "udp", Timeout: time.Minute}
		r, _, _ := c.Exchange(new(miekg.Msg).SetQuestion("example.com.", miekg.TypeA), s.Addr().String())
		answered <- r
	}()
	<-received // the query is at the upstream
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := <-answered; r == nil || r.Rcode != miekg.RcodeServerFailure {
		t.Errorf("the query in flight got %v, want SERVFAIL", r)
	}
}

// A server whose upstream is its own address does not ask itself, which
// would loop until every query timed out: it has no upstream left.
func TestAServerListedAsItsOwnUpstreamRefusesInsteadOfLooping(t *testing.T) {
	var s *dns.Server
	for attempt := 0; s == nil; attempt++ {
		// A port free a moment ago; another process may take it first.
		pc, ln := listenBoth(t)
		addr := pc.LocalAddr().String()
		pc.Close()
		ln.Close()
		cfg := dns.DefaultConfig()
		cfg.Addr = addr
		cfg.Upstreams = []string{addr}
		cfg.Records = cluster(t)
		var err error
		if s, err = dns.Listen(cfg); err != nil && attempt == 2 {
			t.Fatal(err)
		}
	}
	defer s.Close()
	if r := ask(t, s, "udp", "example.com.", miekg.TypeA); r.Rcode != miekg.RcodeRefused {
		t.Errorf("%s, want REFUSED (no upstream but itself)", miekg.RcodeToString[r.Rcode])
	}
}
