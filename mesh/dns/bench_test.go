package dns_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/apiary-io/apiary/mesh/dns"
)

// BenchmarkQueriesUDP measures queries per second over UDP on loopback:
// parallel clients, each with its own socket and one query in flight,
// against one server (docs/benchmarks.md, "DNS server (issue 15)"), beside
// the floor of a miekg/dns server that does nothing but answer.
//
//	go test -run '^$' -bench BenchmarkQueriesUDP ./mesh/dns/
func BenchmarkQueriesUDP(b *testing.B) {
	table := dns.NewTable()
	web := dns.Service{Name: "web", VIPs: []netip.Addr{netip.MustParseAddr("127.77.0.2")}, Ports: []dns.Port{{Name: "http", Protocol: "tcp", Target: 80}}}
	for i := range 10 {
		web.Tasks = append(web.Tasks, dns.Task{Name: fmt.Sprintf("web.%d.x", i), Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})})
	}
	if err := table.Set(web); err != nil {
		b.Fatal(err)
	}
	up := startUpstream(b, func(r *miekg.Msg, _ bool) *miekg.Msg { return reply(r, "192.0.2.1") })
	s := start(b, table, func(c *dns.Config) { c.Upstreams = []string{up.addr} })
	ours := s.Addr().String()
	for _, q := range []struct {
		kind  string
		addr  string
		name  string
		qtype uint16
	}{
		// The floor: a bare miekg/dns server answering one fixed record
		// (the fake upstream), asked directly.
		{"miekg-floor", up.addr, "example.com.", miekg.TypeA},
		{"vip", ours, "web.apiary.internal.", miekg.TypeA},
		{"tasks-10", ours, "tasks.web.apiary.internal.", miekg.TypeA},
		{"srv-10", ours, "_http._tcp.tasks.web.apiary.internal.", miekg.TypeSRV},
		{"forwarded", ours, "example.com.", miekg.TypeA},
	} {
		b.Run(q.kind+"/clients=1", func(b *testing.B) {
			c := newBenchClient(b, q.addr, q.name, q.qtype)
			defer c.conn.Close()
			for range b.N {
				if !c.query(b) {
					return
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
		b.Run(q.kind+"/clients=64", func(b *testing.B) {
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				c := newBenchClient(b, q.addr, q.name, q.qtype)
				defer c.conn.Close()
				for pb.Next() {
					if !c.query(b) {
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// benchClient is one client socket with one query in flight.
type benchClient struct {
	conn *miekg.Conn
	m    *miekg.Msg
}

func newBenchClient(b *testing.B, addr, name string, qtype uint16) *benchClient {
	conn, err := (&miekg.Client{Net: "udp"}).Dial(addr)
	if err != nil {
		b.Fatal(err)
	}
	return &benchClient{conn: conn, m: new(miekg.Msg).SetQuestion(name, qtype)}
}

// query asks once and reports whether an answer with records came back.
func (c *benchClient) query(b *testing.B) bool {
	c.m.Id = miekg.Id()
	c.conn.SetDeadline(time.Now().Add(queryTimeout))
	if err := c.conn.WriteMsg(c.m); err != nil {
		b.Error(err)
		return false
	}
	r, err := c.conn.ReadMsg()
	if err != nil || r.Id != c.m.Id || len(r.Answer) == 0 {
		b.Errorf("answer %v, %v", r, err)
		return false
	}
	return true
}
