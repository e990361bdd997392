package dns_test

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/apiary-io/apiary/internal/testutil"
	"github.com/apiary-io/apiary/mesh/dns"
)

// queryTimeout is generous: the machine running the tests is loaded, and a
// query that times out fails the test rather than retrying.
const queryTimeout = 10 * time.Second

// start serves table on 127.0.0.1 with the given changes to the defaults;
// without upstreams unless the change sets them.
func start(t testing.TB, table *dns.Table, change func(*dns.Config)) *dns.Server {
	t.Helper()
	cfg := dns.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.ResolvConf = ""
	cfg.Records = table
	cfg.Logger = testutil.DiscardLogger()
	if change != nil {
		change(&cfg)
	}
	s, err := dns.Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// ask sends one question over network ("udp" or "tcp") and returns the
// answer.
func ask(t testing.TB, s *dns.Server, network, name string, qtype uint16) *miekg.Msg {
	t.Helper()
	q := new(miekg.Msg).SetQuestion(name, qtype)
	return exchange(t, s.Addr().String(), network, q)
}

func exchange(t testing.TB, addr, network string, q *miekg.Msg) *miekg.Msg {
	t.Helper()
	c := &miekg.Client{Net: network, Timeout: queryTimeout}
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", q.Question[0].Name, miekg.TypeToString[q.Question[0].Qtype], network, err)
	}
	if r.Id != q.Id {
		t.Fatalf("answer ID %d, query ID %d", r.Id, q.Id)
	}
	return r
}

// addrs returns the addresses of the A and AAAA records of rrs, in order.
func addrs(rrs []miekg.RR) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *miekg.A:
			a, _ := netip.AddrFromSlice(rr.A)
			out = append(out, a.Unmap())
		case *miekg.AAAA:
			a, _ := netip.AddrFromSlice(rr.AAAA)
			out = append(out, a)
		}
	}
	return out
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// upstream is a fake upstream resolver on 127.0.0.1, UDP and TCP on one
// port, answering with answer (nil: never answers).
type upstream struct {
	addr     string
	udp, tcp atomic.Int64 // queries received over each transport
}

func startUpstream(t testing.TB, answer func(r *miekg.Msg, overTCP bool) *miekg.Msg) *upstream {
	t.Helper()
	u := &upstream{}
	handler := func(overTCP bool) miekg.Handler {
		return miekg.HandlerFunc(func(w miekg.ResponseWriter, r *miekg.Msg) {
			if overTCP {
				u.tcp.Add(1)
			} else {
				u.udp.Add(1)
			}
			if m := answer(r, overTCP); m != nil {
				w.WriteMsg(m)
			}
		})
	}
	pc, ln := listenBoth(t)
	u.addr = pc.LocalAddr().String()
	udp := &miekg.Server{PacketConn: pc, Handler: handler(false)}
	tcp := &miekg.Server{Listener: ln, Handler: handler(true)}
	for _, srv := range []*miekg.Server{udp, tcp} {
		up := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(up) }
		go srv.ActivateAndServe()
		<-up
	}
	t.Cleanup(func() {
		udp.Shutdown()
		tcp.Shutdown()
	})
	return u
}

// listenBoth binds UDP and TCP on one free port of 127.0.0.1.
func listenBoth(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("no port of 127.0.0.1 free for both UDP and TCP")
	return nil, nil
}

// reply answers r with one A record of addr.
func reply(r *miekg.Msg, addr string) *miekg.Msg {
	m := new(miekg.Msg).SetReply(r)
	m.Answer = []miekg.RR{&miekg.A{
		Hdr: miekg.RR_Header{Name: r.Question[0].Name, Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 60},
		A:   ip(addr).AsSlice(),
	}}
	return m
}
