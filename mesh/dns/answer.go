package dns

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	miekg "github.com/miekg/dns"
)

// answer is what the cluster's records say about one question.
type answer struct {
	records []miekg.RR // the answer section
	extra   []miekg.RR // addresses of SRV targets, so clients need no second query
	// known: the name is the cluster's, even with no record of the type
	// asked (NOERROR with no answers, "NODATA"); otherwise it is unknown
	// (NXDOMAIN inside the domain, forwarded outside it).
	known bool
}

// lookup answers a question about rel, a name relative to the domain (or
// a bare name), from recs. Names are tried in this order, so that a
// service whose own name looks like one of the later shapes still wins:
//
//	_<port>._<proto>.<service> and _<port>._<proto>.tasks.<service>: SRV
//	<service> or an alias: its VIPs, or its tasks' addresses (dnsrr)
//	<task>: the task's address
//	tasks.<service>: the addresses of its tasks
func (s *Server) lookup(recs Records, qname string, qtype uint16, rel string) answer {
	if srv, ok := parseSRV(rel); ok {
		return s.lookupSRV(recs, qname, qtype, srv)
	}
	if svc, ok := recs.Service(rel); ok {
		if len(svc.VIPs) > 0 {
			return answer{records: s.addrRecords(qname, qtype, svc.VIPs), known: true}
		}
		return answer{records: s.addrRecords(qname, qtype, taskAddrs(svc.Tasks)), known: true}
	}
	if task, ok := recs.Task(rel); ok {
		return answer{records: s.addrRecords(qname, qtype, []netip.Addr{task.Addr}), known: true}
	}
	if name, ok := strings.CutPrefix(rel, "tasks."); ok {
		if svc, ok := recs.Service(name); ok {
			return answer{records: s.addrRecords(qname, qtype, taskAddrs(svc.Tasks)), known: true}
		}
	}
	return answer{}
}

// lookupSRV answers "_<port>._<proto>.<rest>": one record per task, or,
// for "<service>" with VIPs, one record for the VIPs. The targets are the
// names of the tasks (of the service), fully qualified, which resolve to
// the address that reaches them: on the host data path, their node's.
// A port the service does not have makes the name unknown.
func (s *Server) lookupSRV(recs Records, qname string, qtype uint16, n srvName) answer {
	svc, ok := recs.Service(n.rest)
	viaVIP := ok && len(svc.VIPs) > 0
	if !ok {
		name, isTasks := strings.CutPrefix(n.rest, "tasks.")
		if !isTasks {
			return answer{}
		}
		if svc, ok = recs.Service(name); !ok {
			return answer{}
		}
	}
	i := slices.IndexFunc(svc.Ports, n.matches)
	if i < 0 {
		return answer{}
	}
	if qtype != miekg.TypeSRV {
		return answer{known: true}
	}
	port := svc.Ports[i]
	if viaVIP {
		target := s.fqdn(svc.Name)
		vipPort := port.VIPPort
		if vipPort == 0 {
			vipPort = port.Target
		}
		return answer{
			records: []miekg.RR{s.srvRecord(qname, target, vipPort)},
			extra:   s.addrRecords(target, miekg.TypeANY, svc.VIPs),
			known:   true,
		}
	}
	tasks := shuffle(slices.Clone(svc.Tasks), s.cfg.MaxAnswers) // the records' slice is shared
	a := answer{known: true}
	for _, t := range tasks {
		target := s.fqdn(t.Name)
		a.records = append(a.records, s.srvRecord(qname, target, t.port(port.Target)))
		a.extra = append(a.extra, s.addrRecord(target, t.Addr))
	}
	return a
}

// lookupPTR answers a reverse name from the names recs gives its address.
func (s *Server) lookupPTR(recs Records, qname string, qtype uint16, rel string) answer {
	addr, ok := parseReverse(rel)
	if !ok {
		return answer{}
	}
	names := recs.Names(addr)
	if len(names) == 0 {
		return answer{}
	}
	a := answer{known: true}
	if qtype != miekg.TypePTR {
		return a
	}
	for _, name := range names[:min(len(names), s.cfg.MaxAnswers)] {
		a.records = append(a.records, &miekg.PTR{Hdr: s.header(qname, miekg.TypePTR), Ptr: s.fqdn(name)})
	}
	return a
}

// addrRecords returns the A (or AAAA, or both for ANY) records of the
// addresses, in random order (clients that take the first address then
// spread over the backends) and at most MaxAnswers of them.
func (s *Server) addrRecords(qname string, qtype uint16, addrs []netip.Addr) []miekg.RR {
	var want func(netip.Addr) bool
	switch qtype {
	case miekg.TypeA:
		want = netip.Addr.Is4
	case miekg.TypeAAAA:
		want = netip.Addr.Is6
	case miekg.TypeANY:
		want = func(netip.Addr) bool { return true }
	default:
		return nil
	}
	picked := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if want(a) {
			picked = append(picked, a)
		}
	}
	picked = shuffle(picked, s.cfg.MaxAnswers)
	rrs := make([]miekg.RR, len(picked))
	for i, a := range picked {
		rrs[i] = s.addrRecord(qname, a)
	}
	return rrs
}

func (s *Server) addrRecord(name string, a netip.Addr) miekg.RR {
	if a.Is4() {
		return &miekg.A{Hdr: s.header(name, miekg.TypeA), A: net.IP(a.AsSlice())}
	}
	return &miekg.AAAA{Hdr: s.header(name, miekg.TypeAAAA), AAAA: net.IP(a.AsSlice())}
}

// srvRecord gives every target the same priority and weight: the caller
// gave healthy tasks only, and the order is random already.
func (s *Server) srvRecord(qname, target string, port uint16) miekg.RR {
	return &miekg.SRV{Hdr: s.header(qname, miekg.TypeSRV), Priority: 0, Weight: 1, Port: port, Target: target}
}

func (s *Server) header(name string, rrtype uint16) miekg.RR_Header {
	return miekg.RR_Header{Name: name, Rrtype: rrtype, Class: miekg.ClassINET, Ttl: s.ttl}
}

// fqdn returns a relative name in the cluster's domain.
func (s *Server) fqdn(rel string) string { return rel + "." + s.domain }

// taskAddrs returns the distinct addresses of tasks: on the host data path
// tasks on one node share its address, and one record per node is enough
// (SRV records tell their ports apart).
func taskAddrs(tasks []Task) []netip.Addr {
	addrs := make([]netip.Addr, len(tasks))
	for i, t := range tasks {
		addrs[i] = t.Addr
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs)
}

// shuffle puts xs in random order, in place, and returns at most n of them.
func shuffle[T any](xs []T, n int) []T {
	rand.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	return xs[:min(n, len(xs))]
}
