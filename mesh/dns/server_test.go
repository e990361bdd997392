package dns_test

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	miekg "github.com/miekg/dns"

	"github.com/apiary-io/apiary/mesh/dns"
)

// cluster is a small world: web (VIP mode, two tasks on node 10.0.0.1,
// one on 10.0.0.2), db (dnsrr, alias "database") and an IPv6 service.
func cluster(t testing.TB) *dns.Table {
	t.Helper()
	table := dns.NewTable()
	for _, s := range []dns.Service{
		{
			Name:  "web",
			VIPs:  []netip.Addr{ip("127.77.0.2")},
			Ports: []dns.Port{{Name: "http", Protocol: "tcp", Target: 80, VIPPort: 8080}},
			Tasks: []dns.Task{
				{Name: "web.1.aaa", Addr: ip("10.0.0.1"), HostPorts: map[uint16]uint16{80: 31001}},
				{Name: "web.2.bbb", Addr: ip("10.0.0.1"), HostPorts: map[uint16]uint16{80: 31002}},
				{Name: "web.3.ccc", Addr: ip("10.0.0.2"), HostPorts: map[uint16]uint16{80: 31001}},
			},
		},
		{
			Name:    "db",
			Aliases: []string{"database"},
			Ports:   []dns.Port{{Name: "mysql", Protocol: "tcp", Target: 3306}, {Protocol: "udp", Target: 53}},
			Tasks: []dns.Task{
				{Name: "db.1.ddd", Addr: ip("10.0.0.2"), HostPorts: map[uint16]uint16{3306: 32000}},
				{Name: "db.2.eee", Addr: ip("10.0.0.3")}, // reached on its target port
			},
		},
		{Name: "v6", VIPs: []netip.Addr{ip("fd00::2"), ip("127.77.0.3")}},
	} {
		if err := table.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	return table
}

// sorted returns the addresses of rrs sorted, for comparing sets.
func sorted(rrs []miekg.RR) []netip.Addr {
	a := addrs(rrs)
	slices.SortFunc(a, netip.Addr.Compare)
	return a
}

func TestAddressRecords(t *testing.T) {
	s := start(t, cluster(t), nil)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []netip.Addr
	}{
		{"web.", miekg.TypeA, []netip.Addr{ip("127.77.0.2")}},
		{"web.apiary.internal.", miekg.TypeA, []netip.Addr{ip("127.77.0.2")}},
		{"WEB.Apiary.Internal.", miekg.TypeA, []netip.Addr{ip("127.77.0.2")}},
		{"tasks.web.", miekg.TypeA, []netip.Addr{ip("10.0.0.1"), ip("10.0.0.2")}}, // one per node
		{"tasks.web.apiary.internal.", miekg.TypeA, []netip.Addr{ip("10.0.0.1"), ip("10.0.0.2")}},
		{"db.apiary.internal.", miekg.TypeA, []netip.Addr{ip("10.0.0.2"), ip("10.0.0.3")}}, // dnsrr
		{"database.apiary.internal.", miekg.TypeA, []netip.Addr{ip("10.0.0.2"), ip("10.0.0.3")}},
		{"database.", miekg.TypeA, []netip.Addr{ip("10.0.0.2"), ip("10.0.0.3")}},
		{"web.3.ccc.apiary.internal.", miekg.TypeA, []netip.Addr{ip("10.0.0.2")}},
		{"web.2.bbb.", miekg.TypeA, []netip.Addr{ip("10.0.0.1")}},
		{"v6.apiary.internal.", miekg.TypeAAAA, []netip.Addr{ip("fd00::2")}},
		{"v6.apiary.internal.", miekg.TypeA, []netip.Addr{ip("127.77.0.3")}},
		{"web.apiary.internal.", miekg.TypeAAAA, nil}, // IPv4 only: no records, not NXDOMAIN
		{"web.apiary.internal.", miekg.TypeMX, nil},
		{"apiary.internal.", miekg.TypeA, nil}, // the domain exists
	} {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(fmt.Sprintf("%s/%s/%s", tc.name, miekg.TypeToString[tc.qtype], network), func(t *testing.T) {
				r := ask(t, s, network, tc.name, tc.qtype)
				if r.Rcode != miekg.RcodeSuccess {
					t.Fatalf("rcode %s, want NOERROR", miekg.RcodeToString[r.Rcode])
				}
				if !r.Authoritative {
					t.Error("a cluster answer is not authoritative")
				}
				if got := sorted(r.Answer); !slices.Equal(got, tc.want) {
					t.Errorf("addresses %v, want %v", got, tc.want)
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != 2 || rr.Header().Name != tc.name {
						t.Errorf("record %v: want TTL 2 and the question's name", rr)
					}
				}
			})
		}
	}
}

// srvRecord is an SRV record reduced to what the tests compare.
type srvRecord struct {
	target string
	port   uint16
}

func srvs(rrs []miekg.RR) []srvRecord {
	var out []srvRecord
	for _, rr := range rrs {
		if srv, ok := rr.(*miekg.SRV); ok {
			out = append(out, srvRecord{srv.Target, srv.Port})
		}
	}
	slices.SortFunc(out, func(a, b srvRecord) int {
		return cmp.Or(strings.Compare(a.target, b.target), cmp.Compare(a.port, b.port))
	})
	return out
}

func TestSRVRecords(t *testing.T) {
	s := start(t, cluster(t), nil)
	webTasks := []srvRecord{
		{"web.1.aaa.apiary.internal.", 31001},
		{"web.2.bbb.apiary.internal.", 31002},
		{"web.3.ccc.apiary.internal.", 31001},
	}
	for _, tc := range []struct {
		name      string
		want      []srvRecord
		wantExtra []netip.Addr
	}{
		// By port name and by target port, per task.
		{"_http._tcp.tasks.web.apiary.internal.", webTasks, []netip.Addr{ip("10.0.0.1"), ip("10.0.0.1"), ip("10.0.0.2")}},
		{"_80._tcp.tasks.web.", webTasks, []netip.Addr{ip("10.0.0.1"), ip("10.0.0.1"), ip("10.0.0.2")}},
		// A service with a VIP: one record, the VIP and its port.
		{"_http._tcp.web.apiary.internal.", []srvRecord{{"web.apiary.internal.", 8080}}, []netip.Addr{ip("127.77.0.2")}},
		// dnsrr: per task; a task without a host port is reached on its target.
		{"_mysql._tcp.db.apiary.internal.", []srvRecord{{"db.1.ddd.apiary.internal.", 32000}, {"db.2.eee.apiary.internal.", 3306}}, []netip.Addr{ip("10.0.0.2"), ip("10.0.0.3")}},
		{"_3306._tcp.database.", []srvRecord{{"db.1.ddd.apiary.internal.", 32000}, {"db.2.eee.apiary.internal.", 3306}}, []netip.Addr{ip("10.0.0.2"), ip("10.0.0.3")}},
		{"_53._udp.db.apiary.internal.", []srvRecord{{"db.1.ddd.apiary.internal.", 53}, {"db.2.eee.apiary.internal.", 53}}, []netip.Addr{ip("10.0.0.2"), ip("10.0.0.3")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ask(t, s, "udp", tc.name, miekg.TypeSRV)
			if r.Rcode != miekg.RcodeSuccess {
				t.Fatalf("rcode %s, want NOERROR", miekg.RcodeToString[r.Rcode])
			}
			if got := srvs(r.Answer); !slices.Equal(got, tc.want) {
				t.Errorf("SRV %v, want %v", got, tc.want)
			}
			if got := sorted(r.Extra); !slices.Equal(got, tc.wantExtra) {
				t.Errorf("additional addresses %v, want %v", got, tc.wantExtra)
			}
			// Each target resolves to the address given with it.
			for _, rr := range r.Answer {
				target := rr.(*miekg.SRV).Target
				for _, extra := range r.Extra {
					if extra.Header().Name == target {
						if a := ask(t, s, "udp", target, extra.Header().Rrtype); !slices.Equal(addrs(a.Answer)[:1], addrs([]miekg.RR{extra})) {
							t.Errorf("%s resolves to %v, the additional record says %v", target, addrs(a.Answer), extra)
						}
					}
				}
			}
		})
	}
	// An SRV name asked for another type exists, with no records.
	if r := ask(t, s, "udp", "_http._tcp.web.apiary.internal.", miekg.TypeA); r.Rcode != miekg.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("A of an SRV name: %s with %d records, want NOERROR and none", miekg.RcodeToString[r.Rcode], len(r.Answer))
	}
}

func TestPTRRecords(t *testing.T) {
	s := start(t, cluster(t), nil)
	for _, tc := range []struct {
		addr string
		want []string
	}{
		{"127.77.0.2", []string{"web.apiary.internal."}},
		{"10.0.0.1", []string{"web.1.aaa.apiary.internal.", "web.2.bbb.apiary.internal."}},
		{"fd00::2", []string{"v6.apiary.internal."}},
	} {
		name, err := miekg.ReverseAddr(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		r := ask(t, s, "udp", name, miekg.TypePTR)
		var got []string
		for _, rr := range r.Answer {
			got = append(got, rr.(*miekg.PTR).Ptr)
		}
		slices.Sort(got)
		if r.Rcode != miekg.RcodeSuccess || !slices.Equal(got, tc.want) {
			t.Errorf("PTR %s: %s %v, want NOERROR %v", name, miekg.RcodeToString[r.Rcode], got, tc.want)
		}
	}
}

func TestUnknownNamesInTheDomainAreNXDOMAIN(t *testing.T) {
	s := start(t, cluster(t), nil)
	for _, name := range []string{
		"nope.apiary.internal.",
		"tasks.nope.apiary.internal.",
		"web.9.zzz.apiary.internal.",
		"_https._tcp.web.apiary.internal.", // a port web does not have
		"_http._udp.web.apiary.internal.",  // the right name, the wrong protocol
		"_http._tcp.nope.apiary.internal.",
		"a.b.c.web.apiary.internal.",
	} {
		for _, qtype := range []uint16{miekg.TypeA, miekg.TypeAAAA, miekg.TypeSRV} {
			r := ask(t, s, "udp", name, qtype)
			if r.Rcode != miekg.RcodeNameError || len(r.Answer) != 0 || !r.Authoritative {
				t.Errorf("%s %s: %s, %d records, AA %v; want an authoritative NXDOMAIN", name, miekg.TypeToString[qtype], miekg.RcodeToString[r.Rcode], len(r.Answer), r.Authoritative)
			}
		}
	}
}

func TestAnswersOverUDPAreTruncatedAndComeWholeOverTCP(t *testing.T) {
	table := dns.NewTable()
	svc := dns.Service{Name: "big"}
	for i := range 300 {
		svc.Tasks = append(svc.Tasks, dns.Task{Name: fmt.Sprintf("big.%d.x", i), Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})})
	}
	if err := table.Set(svc); err != nil {
		t.Fatal(err)
	}
	s := start(t, table, nil)

	// No EDNS0: 512 bytes, TC set.
	r := ask(t, s, "udp", "big.apiary.internal.", miekg.TypeA)
	r.Compress = true // as it was sent, to measure it
	packed, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || len(packed) > 512 || len(r.Answer) == 0 || len(r.Answer) >= 300 {
		t.Errorf("over UDP: TC %v, %d bytes, %d records; want TC, at most 512 bytes, some but not all of 300 records", r.Truncated, len(packed), len(r.Answer))
	}
	// EDNS0 with a 4096-byte buffer: capped at MaxUDPSize (1232).
	q := new(miekg.Msg).SetQuestion("big.apiary.internal.", miekg.TypeA)
	q.SetEdns0(4096, false)
	r2 := exchange(t, s.Addr().String(), "udp", q)
	r2.Compress = true
	packed2, err := r2.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Truncated || len(packed2) > dns.DefaultMaxUDPSize || len(r2.Answer) <= len(r.Answer) {
		t.Errorf("over UDP with EDNS0: TC %v, %d bytes, %d records; want TC, at most %d bytes, more than the %d without EDNS0", r2.Truncated, len(packed2), len(r2.Answer), dns.DefaultMaxUDPSize, len(r.Answer))
	}
	// TCP: all of them.
	r3 := ask(t, s, "tcp", "big.apiary.internal.", miekg.TypeA)
	if r3.Truncated || len(r3.Answer) != 300 {
		t.Errorf("over TCP: TC %v, %d records; want all 300", r3.Truncated, len(r3.Answer))
	}
	// SRV with its additional records, too.
	if err := table.Set(dns.Service{Name: "big", Tasks: svc.Tasks, Ports: []dns.Port{{Name: "http", Protocol: "tcp", Target: 80}}}); err != nil {
		t.Fatal(err)
	}
	r4 := ask(t, s, "udp", "_http._tcp.big.apiary.internal.", miekg.TypeSRV)
	if !r4.Truncated || len(r4.Answer) >= 300 {
		t.Errorf("SRV over UDP: TC %v, %d records; want TC and fewer than 300", r4.Truncated, len(r4.Answer))
	}
	if r5 := ask(t, s, "tcp", "_http._tcp.big.apiary.internal.", miekg.TypeSRV); r5.Truncated || len(r5.Answer) != 300 || len(r5.Extra) != 300 {
		t.Errorf("SRV over TCP: TC %v, %d records, %d additional; want 300 and 300", r5.Truncated, len(r5.Answer), len(r5.Extra))
	}
}

func TestMaxAnswersBoundsEveryTransport(t *testing.T) {
	table := dns.NewTable()
	svc := dns.Service{Name: "big"}
	for i := range 50 {
		svc.Tasks = append(svc.Tasks, dns.Task{Name: fmt.Sprintf("big.%d.x", i), Addr: netip.AddrFrom4([4]byte{10, 1, 0, byte(i)})})
	}
	if err := table.Set(svc); err != nil {
		t.Fatal(err)
	}
	s := start(t, table, func(c *dns.Config) { c.MaxAnswers = 7 })
	seen := make(map[netip.Addr]bool)
	for range 20 {
		r := ask(t, s, "tcp", "tasks.big.", miekg.TypeA)
		if len(r.Answer) != 7 || r.Truncated {
			t.Fatalf("%d records, TC %v; want 7, no TC", len(r.Answer), r.Truncated)
		}
		for _, a := range addrs(r.Answer) {
			seen[a] = true
		}
	}
	// The 7 are a random subset: 20 answers cover more than one subset
	// (the chance they do not is 20 times (7/50)^7, about 1e-5).
	if len(seen) <= 7 {
		t.Errorf("20 answers of 7 of 50 addresses covered only %d addresses", len(seen))
	}
}

func TestAddressesAreShuffled(t *testing.T) {
	table := dns.NewTable()
	svc := dns.Service{Name: "rr"}
	for i := range 5 {
		svc.Tasks = append(svc.Tasks, dns.Task{Name: fmt.Sprintf("rr.%d.x", i), Addr: netip.AddrFrom4([4]byte{10, 2, 0, byte(i)})})
	}
	if err := table.Set(svc); err != nil {
		t.Fatal(err)
	}
	s := start(t, table, nil)
	first := make(map[netip.Addr]int)
	for range 50 {
		r := ask(t, s, "udp", "rr.", miekg.TypeA)
		if len(r.Answer) != 5 {
			t.Fatalf("%d records, want 5", len(r.Answer))
		}
		first[addrs(r.Answer)[0]]++
	}
	// Fifty answers in random order start with one address in 5 * (1/5)^50
	// of runs: never.
	if len(first) < 2 {
		t.Errorf("50 answers all started with the same address: %v", first)
	}
}

func TestAChangeIsSeenByTheNextQuery(t *testing.T) {
	table := cluster(t)
	s := start(t, table, nil)
	if r := ask(t, s, "udp", "tasks.web.apiary.internal.", miekg.TypeA); len(r.Answer) != 2 {
		t.Fatalf("before: %d records, want 2", len(r.Answer))
	}
	// Node 10.0.0.1's tasks fail their health check: the caller sets the
	// service without them.
	if err := table.Set(dns.Service{
		Name:  "web",
		VIPs:  []netip.Addr{ip("127.77.0.2")},
		Ports: []dns.Port{{Name: "http", Protocol: "tcp", Target: 80}},
		Tasks: []dns.Task{{Name: "web.3.ccc", Addr: ip("10.0.0.2")}},
	}); err != nil {
		t.Fatal(err)
	}
	if got := addrs(ask(t, s, "udp", "tasks.web.apiary.internal.", miekg.TypeA).Answer); !slices.Equal(got, []netip.Addr{ip("10.0.0.2")}) {
		t.Errorf("after the change: %v, want [10.0.0.2]", got)
	}
	if r := ask(t, s, "udp", "web.1.aaa.apiary.internal.", miekg.TypeA); r.Rcode != miekg.RcodeNameError {
		t.Errorf("a task gone: %s, want NXDOMAIN", miekg.RcodeToString[r.Rcode])
	}
	table.Delete("web")
	if r := ask(t, s, "tcp", "web.apiary.internal.", miekg.TypeA); r.Rcode != miekg.RcodeNameError {
		t.Errorf("a service removed: %s, want NXDOMAIN", miekg.RcodeToString[r.Rcode])
	}
}

func TestQueriesTheServerDoesNotServe(t *testing.T) {
	s := start(t, cluster(t), nil)
	addr := s.Addr().String()

	two := new(miekg.Msg).SetQuestion("web.", miekg.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if r := exchange(t, addr, "udp", two); r.Rcode != miekg.RcodeFormatError {
		t.Errorf("two questions: %s, want FORMERR", miekg.RcodeToString[r.Rcode])
	}
	notify := new(miekg.Msg).SetNotify("web.")
	if r := exchange(t, addr, "udp", notify); r.Rcode != miekg.RcodeNotImplemented {
		t.Errorf("NOTIFY: %s, want NOTIMP", miekg.RcodeToString[r.Rcode])
	}
	chaos := new(miekg.Msg).SetQuestion("version.bind.", miekg.TypeTXT)
	chaos.Question[0].Qclass = miekg.ClassCHAOS
	if r := exchange(t, addr, "tcp", chaos); r.Rcode != miekg.RcodeRefused {
		t.Errorf("class CHAOS: %s, want REFUSED", miekg.RcodeToString[r.Rcode])
	}
	v1 := new(miekg.Msg).SetQuestion("web.", miekg.TypeA)
	v1.SetEdns0(1232, false)
	v1.IsEdns0().SetVersion(1)
	if r := exchange(t, addr, "udp", v1); r.Rcode != miekg.RcodeBadVers {
		t.Errorf("EDNS version 1: %s, want BADVERS", miekg.RcodeToString[r.Rcode])
	}
	// EDNS0 version 0 is answered with our buffer size.
	v0 := new(miekg.Msg).SetQuestion("web.", miekg.TypeA)
	v0.SetEdns0(4096, true)
	r := exchange(t, addr, "udp", v0)
	if opt := r.IsEdns0(); opt == nil || opt.UDPSize() != dns.DefaultMaxUDPSize || !opt.Do() {
		t.Errorf("EDNS0 answer's OPT %v, want buffer %d and DO echoed", opt, dns.DefaultMaxUDPSize)
	}
}

func TestGarbageDoesNotStopTheServer(t *testing.T) {
	s := start(t, cluster(t), nil)
	conn, err := (&miekg.Client{Net: "udp"}).Dial(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	valid, err := new(miekg.Msg).SetQuestion("web.", miekg.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	for _, junk := range [][]byte{
		{},
		{0x12},
		make([]byte, 12),          // a header and nothing
		valid[:len(valid)-3],      // cut in the question
		append(valid, 0xff, 0x00), // trailing bytes
		{0, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 3, 'a'}, // 65535 questions claimed
	} {
		if _, err := conn.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	tcp, err := (&miekg.Client{Net: "tcp"}).Dial(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tcp.Conn.Write([]byte{0x00, 0x05, 1, 2, 3}) // a short message, then hang up
	tcp.Close()
	if r := ask(t, s, "udp", "web.", miekg.TypeA); len(r.Answer) != 1 {
		t.Errorf("after garbage over UDP: %d records, want 1", len(r.Answer))
	}
	if r := ask(t, s, "tcp", "web.", miekg.TypeA); len(r.Answer) != 1 {
		t.Errorf("after garbage over TCP: %d records, want 1", len(r.Answer))
	}
}

func TestCloseStopsServing(t *testing.T) {
	cfg := dns.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.ResolvConf = ""
	cfg.Records = cluster(t)
	s, err := dns.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if !addr.Addr().IsLoopback() || addr.Port() == 0 {
		t.Fatalf("Addr() = %v, want 127.0.0.1 and the port chosen", addr)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	c := &miekg.Client{Net: "tcp", Timeout: queryTimeout}
	if _, _, err := c.Exchange(new(miekg.Msg).SetQuestion("web.", miekg.TypeA), addr.String()); err == nil {
		t.Error("a closed server answered over TCP")
	}
}
