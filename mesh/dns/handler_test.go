package dns

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	miekg "github.com/miekg/dns"

	"github.com/apiary-io/apiary/internal/testutil"
)

// recorder is a miekg ResponseWriter that keeps what is written, for
// calling the handler without sockets.
type recorder struct {
	remote  net.Addr
	written []*miekg.Msg
}

func (w *recorder) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8653} }
func (w *recorder) RemoteAddr() net.Addr { return w.remote }
func (w *recorder) WriteMsg(m *miekg.Msg) error {
	w.written = append(w.written, m)
	return nil
}
func (w *recorder) Write([]byte) (int, error) { panic("the server writes messages, not bytes") }
func (w *recorder) Close() error              { return nil }
func (w *recorder) TsigStatus() error         { return nil }
func (w *recorder) TsigTimersOnly(bool)       {}
func (w *recorder) Hijack()                   {}

// handler returns a server with cfg's defaults changed by change, without
// sockets and without upstreams.
func handler(t testing.TB, change func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ResolvConf = ""
	cfg.Logger = testutil.DiscardLogger()
	if change != nil {
		change(&cfg)
	}
	cfg, _, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	return newServer(cfg, cfg.Logger)
}

func udpFrom(addr string) net.Addr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 40000))
}

// A querier sees the records of its view: with View, a network's tasks see
// that network's services only.
func TestEachClientSeesItsView(t *testing.T) {
	front, back := NewTable(), NewTable()
	if err := front.Set(Service{Name: "web", VIPs: []netip.Addr{netip.MustParseAddr("10.0.1.2")}}); err != nil {
		t.Fatal(err)
	}
	if err := back.Set(Service{Name: "db", VIPs: []netip.Addr{netip.MustParseAddr("10.0.2.2")}}); err != nil {
		t.Fatal(err)
	}
	frontNet, backNet := netip.MustParsePrefix("10.0.1.0/24"), netip.MustParsePrefix("10.0.2.0/24")
	s := handler(t, func(c *Config) {
		c.View = func(client netip.Addr) Records {
			switch {
			case frontNet.Contains(client):
				return front
			case backNet.Contains(client):
				return back
			}
			return nil
		}
	})
	for _, tc := range []struct {
		client, name string
		rcode        int
	}{
		{"10.0.1.7", "web.apiary.internal.", miekg.RcodeSuccess},
		{"10.0.1.7", "db.apiary.internal.", miekg.RcodeNameError},
		{"10.0.2.7", "db.apiary.internal.", miekg.RcodeSuccess},
		{"10.0.2.7", "web.apiary.internal.", miekg.RcodeNameError},
		{"192.0.2.1", "web.apiary.internal.", miekg.RcodeNameError}, // no view
		{"192.0.2.1", "web.", miekg.RcodeRefused},                   // forwarded, and no upstreams
	} {
		w := &recorder{remote: udpFrom(tc.client)}
		s.ServeDNS(w, new(miekg.Msg).SetQuestion(tc.name, miekg.TypeA))
		if len(w.written) != 1 || w.written[0].Rcode != tc.rcode {
			t.Errorf("%s from %s: %v, want %s", tc.name, tc.client, w.written, miekg.RcodeToString[tc.rcode])
		}
	}
}

func TestParseReverse(t *testing.T) {
	for _, a := range []string{"10.0.0.1", "255.255.255.255", "0.0.0.0", "fd00::2", "2001:db8::ff00:42:8329", "::"} {
		name, err := miekg.ReverseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := splitDomain(name, DefaultDomain)
		got, ok := parseReverse(rel)
		if !ok || got != netip.MustParseAddr(a) {
			t.Errorf("parseReverse(%q) = %v, %v; want %s", rel, got, ok, a)
		}
	}
	for _, bad := range []string{
		"in-addr.arpa", "1.2.3.in-addr.arpa", "1.2.3.4.5.in-addr.arpa", "256.0.0.1.in-addr.arpa",
		"01.0.0.10.in-addr.arpa", "-1.0.0.10.in-addr.arpa", "x.0.0.10.in-addr.arpa",
		"1.0.ip6.arpa", "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
		"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
	} {
		if got, ok := parseReverse(bad); ok {
			t.Errorf("parseReverse(%q) = %v, want no address", bad, got)
		}
	}
}

// fuzzTable is the world FuzzServeDNS queries: every shape of name.
func fuzzTable(t testing.TB) *Table {
	table := NewTable()
	for _, s := range []Service{
		{
			Name: "web", Aliases: []string{"front"},
			VIPs:  []netip.Addr{netip.MustParseAddr("127.77.0.2"), netip.MustParseAddr("fd00::2")},
			Ports: []Port{{Name: "http", Protocol: "tcp", Target: 80}},
			Tasks: []Task{
				{Name: "web.1.a", Addr: netip.MustParseAddr("10.0.0.1"), HostPorts: map[uint16]uint16{80: 31000}},
				{Name: "web.2.b", Addr: netip.MustParseAddr("fd00::10")},
			},
		},
		{Name: "db", Ports: []Port{{Protocol: "udp", Target: 53}}, Tasks: []Task{{Name: "db.1.c", Addr: netip.MustParseAddr("10.0.0.2")}}},
	} {
		if err := table.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	return table
}

// FuzzServeDNS feeds the handler any message that parses (the miekg server
// answers FORMERR to the rest before the handler sees it): it must not
// panic, must answer a query once with its ID and question, in a message
// that packs within the transport's limit.
func FuzzServeDNS(f *testing.F) {
	seed := func(name string, qtype uint16, edns bool) {
		m := new(miekg.Msg).SetQuestion(name, qtype)
		if edns {
			m.SetEdns0(4096, true)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	rev, _ := miekg.ReverseAddr("10.0.0.1")
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.", miekg.TypeA}, {"web.apiary.internal.", miekg.TypeAAAA}, {"tasks.web.apiary.internal.", miekg.TypeA},
		{"front.", miekg.TypeANY}, {"web.1.a.apiary.internal.", miekg.TypeA}, {"_http._tcp.web.", miekg.TypeSRV},
		{"_80._tcp.tasks.web.apiary.internal.", miekg.TypeSRV}, {"_53._udp.db.", miekg.TypeSRV}, {rev, miekg.TypePTR},
		{"apiary.internal.", miekg.TypeSOA}, {"nope.apiary.internal.", miekg.TypeA}, {"example.com.", miekg.TypeA},
		{`we\.b.apiary.internal.`, miekg.TypeA}, {".", miekg.TypeNS},
	} {
		seed(q.name, q.qtype, false)
		seed(q.name, q.qtype, true)
	}
	s := handler(f, func(c *Config) { c.Records = fuzzTable(f) })
	f.Fuzz(func(t *testing.T, b []byte, overTCP bool) {
		r := new(miekg.Msg)
		if err := r.Unpack(b); err != nil {
			return
		}
		w := &recorder{remote: udpFrom("127.0.0.1")}
		if overTCP {
			w.remote = net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:40000"))
		}
		s.ServeDNS(w, r)
		if r.Response {
			if len(w.written) != 0 {
				t.Fatalf("answered a response: %v", w.written)
			}
			return
		}
		if len(w.written) != 1 {
			t.Fatalf("%d answers, want 1", len(w.written))
		}
		resp := w.written[0]
		if resp.Id != r.Id || !resp.Response {
			t.Fatalf("answer ID %d (QR %v), query ID %d", resp.Id, resp.Response, r.Id)
		}
		if len(r.Question) == 1 && !slices.Equal(resp.Question, r.Question) {
			t.Fatalf("answer's question %v, query's %v", resp.Question, r.Question)
		}
		packed, err := resp.Pack()
		if err != nil {
			t.Fatalf("the answer does not pack: %v\n%v", err, resp)
		}
		limit := miekg.MaxMsgSize
		if !overTCP {
			limit = minUDPSize
			if opt := r.IsEdns0(); opt != nil {
				limit = max(minUDPSize, min(int(opt.UDPSize()), DefaultMaxUDPSize))
			}
		}
		if len(packed) > limit {
			t.Fatalf("answer of %d bytes, limit %d", len(packed), limit)
		}
	})
}

// BenchmarkServeDNS is the handler's own cost per query, without sockets:
// what the server adds to miekg/dns and the kernel.
func BenchmarkServeDNS(b *testing.B) {
	s := handler(b, func(c *Config) { c.Records = fuzzTable(b) })
	for _, q := range []struct {
		kind  string
		name  string
		qtype uint16
	}{
		{"vip", "web.apiary.internal.", miekg.TypeA},
		{"tasks", "tasks.web.apiary.internal.", miekg.TypeA},
		{"srv", "_http._tcp.tasks.web.apiary.internal.", miekg.TypeSRV},
		{"nxdomain", "nope.apiary.internal.", miekg.TypeA},
	} {
		b.Run(q.kind, func(b *testing.B) {
			r := new(miekg.Msg).SetQuestion(q.name, q.qtype)
			w := &recorder{remote: udpFrom("127.0.0.1")}
			b.ReportAllocs()
			for range b.N {
				w.written = w.written[:0]
				s.ServeDNS(w, r)
			}
		})
	}
}
